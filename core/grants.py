"""``flask … db grants ROLE``: what the app's own PostgreSQL role may do, and nothing more.

Migrations run as the role that owns the tables; the app runs as another role that gets only
what requests, jobs and commands need. Being no owner, it cannot ``ALTER TABLE … DISABLE
TRIGGER``, drop a trigger or change a table; without TRIGGER and TRUNCATE it cannot add a trigger
or empty a table. On the append-only tables (whose triggers refuse UPDATE and DELETE) it gets
only SELECT and INSERT as well, so two things would have to be broken, not one.

``audit_head`` needs UPDATE: each append moves the head with ``UPDATE … RETURNING``. Moving it
back by hand deletes nothing (the app's role cannot delete log rows), so the rows after it are
still there and ``audit verify`` fails on the head, and the next append collides with the
existing row. A cut needs the owner, and what it removes is already in the signed checkpoint
written after the commit that added it, outside the database.
"""

from __future__ import annotations

import re

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Engine

from core.cli import fail

# Tables whose triggers refuse UPDATE and DELETE (migrations: audit_log, resident_history,
# provision_record, case_event): the app may read and append.
APPEND_ONLY = frozenset({"audit_log", "resident_history", "provision_record", "case_event"})
# Tables whose trigger refuses DELETE only (a resident is never deleted, only marked as left).
NEVER_DELETED = frozenset({"resident"})
# Tables the app touches in one way only.
SPECIAL = {
    "audit_head": ("SELECT", "UPDATE"),  # the single head row: created by the migration, moved by appends
    "alembic_version": ("SELECT",),  # migrations run as the owner
}
ALL = ("SELECT", "INSERT", "UPDATE", "DELETE")
_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def table_privileges(metadata: MetaData) -> dict[str, tuple[str, ...]]:
    """The privileges of the app's role on each table of ``metadata`` (and Alembic's version table)."""
    privileges: dict[str, tuple[str, ...]] = {}
    for name in sorted([*metadata.tables, "alembic_version"]):
        if name in SPECIAL:
            privileges[name] = SPECIAL[name]
        elif name in APPEND_ONLY:
            privileges[name] = ("SELECT", "INSERT")
        elif name in NEVER_DELETED:
            privileges[name] = ("SELECT", "INSERT", "UPDATE")
        else:
            privileges[name] = ALL
    return privileges


def grant_statements(metadata: MetaData, role: str, database: str) -> list[str]:
    """The statements that give ``role`` exactly the app's privileges (idempotent: all revoked first)."""
    if not _ROLE.match(role):
        raise ValueError("ROLE must be a lower-case PostgreSQL name (letters, digits, _; at most 63)")
    statements = [
        f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{role}"',
        f'REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM "{role}"',
        f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"',
        f'GRANT USAGE ON SCHEMA public TO "{role}"',
    ]
    for table, privileges in table_privileges(metadata).items():
        statements.append(f'GRANT {", ".join(privileges)} ON TABLE "{table}" TO "{role}"')
    statements.append(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
    return statements


def _refuse_owner_or_superuser(engine: Engine, role: str) -> None:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = :r"),
                             {"r": role}).scalar_one_or_none()
        if found is None:
            fail(f"ROLE: no PostgreSQL role {role!r} (create it first: CREATE ROLE {role} LOGIN PASSWORD '…')")
        if found:
            fail(f"ROLE: {role} is a superuser or bypasses row security; the app's role must be neither")
        owned = conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = :r"),
                             {"r": role}).scalar_one()
        if owned:
            fail(f"ROLE: {role} owns {owned} tables; the app must run as a role that owns none "
                 "(migrations run as the owner)")


@click.command("grants")
@click.argument("role")
@click.option("--apply", "apply_", is_flag=True, help="Run the statements (as the owner, from *_DATABASE_URL).")
@with_appcontext
def grants_command(role: str, apply_: bool) -> None:
    """Print (or --apply) the GRANTs that let ROLE run this app without owning its tables (PostgreSQL only)."""
    database = current_app.extensions["database"]
    engine: Engine = current_app.extensions["engine"]
    if engine.dialect.name != "postgresql":
        fail("db grants: PostgreSQL only (SQLite has no roles)")
    try:
        statements = grant_statements(database.metadata, role, str(engine.url.database))
    except ValueError as exc:
        fail(str(exc))
    if not apply_:
        click.echo(";\n".join(statements) + ";")
        return
    _refuse_owner_or_superuser(engine, role)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    click.echo(f"Granted {role} what the app needs on {len(statements) - 5} tables of {engine.url.database}.")


def register_grants_command() -> None:
    """Add ``grants`` to Flask-Migrate's ``db`` group (shared by both apps; the app in context decides)."""
    from flask_migrate.cli import db as db_group

    db_group.add_command(grants_command)
