"""Back-office commands: staff, terminals, audit, db grants, seed and demo data (thin wrappers over services)."""

from __future__ import annotations

import secrets
import time
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import func, select

from backoffice.cards.cli import cards_cli
from backoffice.extensions import db
from backoffice.models import Resident, Role, Staff
from backoffice.services import audit
from backoffice.services import staff as staff_service
from backoffice.services import terminals as terminal_service
from core.audit_cli import audit_group
from core.cli import fail, refusals
from core.grants import register_grants_command

staff_cli = AppGroup("staff", help="Manage staff accounts.")
terminals_cli = AppGroup("terminals", help="Register and revoke terminals.")
audit_cli = audit_group(audit.chain, lambda: db.session)


def _fail(message: str) -> None:
    fail(message)


def _refusals() -> Any:
    return refusals(db.session, staff_service.StaffError, terminal_service.TerminalError)


@staff_cli.command("add")
@click.argument("login_id")
@click.option("--name", required=True, help="Full name.")
@click.option("--role", "roles", multiple=True, required=True, type=click.Choice([r.value for r in Role]))
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True, help="Read from stdin/prompt.")
def staff_add(login_id: str, name: str, roles: tuple[str, ...], password: str) -> None:
    """Create an account and print its TOTP provisioning URI (once)."""
    with _refusals():
        staff, secret = staff_service.add_staff(db.session, login_id=login_id, name=name, password=password,
                                                roles=list(roles))
    db.session.commit()
    click.echo(f"Created {staff.login_id} ({', '.join(roles)}).")
    click.echo(f"TOTP: {staff_service.provisioning_uri(staff, secret)}")


def _staff(login_id: str) -> Staff:
    staff = staff_service.get_by_login(db.session, login_id)
    if staff is None:
        _fail(f"login_id: no account {login_id!r}")
    assert staff is not None
    return staff


@staff_cli.command("unlock")
@click.argument("login_id")
def staff_unlock(login_id: str) -> None:
    """Unlock an account locked after repeated failures."""
    staff_service.unlock(db.session, _staff(login_id))
    db.session.commit()
    click.echo(f"Unlocked {login_id}.")


@staff_cli.command("disable")
@click.argument("login_id")
def staff_disable(login_id: str) -> None:
    """Disable an account and end its live sessions."""
    staff_service.disable(db.session, _staff(login_id))
    db.session.commit()
    click.echo(f"Disabled {login_id}.")


@terminals_cli.command("add")
@click.argument("name")
@click.option("--cert-fingerprint", default=None, help="SHA-256 fingerprint of the terminal's client certificate.")
def terminals_add(name: str, cert_fingerprint: str | None) -> None:
    """Register a terminal and print its one-time enrollment code."""
    with _refusals():
        _terminal, code = terminal_service.add_terminal(db.session, name=name, cert_fingerprint=cert_fingerprint)
    db.session.commit()
    click.echo(f"Terminal {name} registered. Enrollment code (valid {terminal_service.ENROLLMENT_HOURS} h): {code}")


@terminals_cli.command("revoke")
@click.argument("name")
def terminals_revoke(name: str) -> None:
    """Revoke a terminal."""
    with _refusals():
        terminal_service.revoke(db.session, name)
    db.session.commit()
    click.echo(f"Revoked {name}.")


@click.command("seed")
@with_appcontext
@click.option("--residents", default=1000, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--seed", "seed_value", default=1, show_default=True, type=int)
def seed(residents: int, seed_value: int) -> None:
    """Load a deterministic synthetic ledger (idempotent for the same seed)."""
    from backoffice.services.seed import seed_ledger

    started = time.perf_counter()
    cfg = current_app.config
    result = seed_ledger(db.session, residents=residents, seed=seed_value, municipality_code=cfg["MUNICIPALITY_CODE"],
                         field_key=cfg["FIELD_ENCRYPTION_KEY"], index_key=cfg["BLIND_INDEX_KEY"])
    audit.record("ledger.seed", detail={"residents": result.residents, "seed": seed_value, "created": result.created})
    db.session.commit()
    elapsed = time.perf_counter() - started
    total = db.session.execute(select(func.count(Resident.id))).scalar_one()
    if result.created:
        click.echo(f"Seeded {result.residents} residents in {result.households} households in {elapsed:.1f} s "
                   f"({total} records in the ledger).")
    else:
        click.echo(f"Already seeded with seed {seed_value}: nothing changed ({total} records in the ledger).")


DEMO_STAFF = [
    ("clerk1", "窓口 一郎", ["clerk"]),
    ("clerk2", "窓口 二郎", ["clerk"]),
    ("approver1", "審査 花子", ["approver", "clerk"]),
    ("number1", "番号 利用", ["number_use", "clerk"]),
    ("admin1", "管理 太郎", ["admin"]),
    ("auditor1", "監査 次郎", ["auditor"]),
]


@click.command("demo")
@with_appcontext
@click.option("--residents", default=1000, show_default=True, type=int)
def demo(residents: int) -> None:
    """When the database is empty: seed a demo ledger, staff of every role and one terminal code."""
    if db.session.execute(select(func.count(Staff.id))).scalar_one():
        click.echo("Demo data already present; nothing changed.")
        return
    from backoffice.services.seed import seed_ledger

    cfg = current_app.config
    seed_ledger(db.session, residents=residents, seed=1, municipality_code=cfg["MUNICIPALITY_CODE"],
                field_key=cfg["FIELD_ENCRYPTION_KEY"], index_key=cfg["BLIND_INDEX_KEY"])
    lines = []
    for login_id, name, roles in DEMO_STAFF:
        password = secrets.token_urlsafe(12)
        _staff, secret = staff_service.add_staff(db.session, login_id=login_id, name=name, password=password,
                                                 roles=roles)
        lines.append(f"  {login_id:<10} password {password:<24} TOTP secret {secret}  roles {','.join(roles)}")
    _terminal, code = terminal_service.add_terminal(db.session, name="demo-terminal")
    db.session.commit()
    click.echo(f"Demo ledger: {residents} residents. Demo staff "
               "(TOTP: any authenticator app, or `oathtool --totp -b SECRET`):")
    click.echo("\n".join(lines))
    click.echo(f"Demo terminal enrollment code: {code}  (enter it at /backoffice/terminal/enroll)")


def register(app: Flask) -> None:
    """Attach the command groups to the app."""
    from core.backup_cli import backup_commands

    backups = backup_commands(lambda: f"backoffice:{current_app.config['MUNICIPALITY_CODE']}",
                              "BACKOFFICE_DATABASE_URL", audit.chain)
    from backoffice.services import retention
    from core.retention_cli import retention_group

    retention_cli = retention_group(retention.rules, audit.chain, lambda: db.session,
                                    lambda: f"backoffice:{current_app.config['MUNICIPALITY_CODE']}")
    from backoffice.watch_cli import watch_cli

    for command in (staff_cli, terminals_cli, audit_cli, seed, demo, cards_cli, *backups, retention_cli, watch_cli):
        app.cli.add_command(command)
    register_grants_command()
