"""The app's own PostgreSQL role (R6): it runs the app but owns no table, so it cannot switch off the log's guards.

Each test creates a role with a random name, gives it what ``flask … db grants ROLE --apply``
grants (run as the owner, as in production), runs a slice of the app connected as that role,
then tries what someone holding the app's database password would try. The role is dropped.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from tests.conftest import PG_ADMIN_URL, SECRETS, Backoffice

ATTACKS = [
    ("ALTER TABLE audit_log DISABLE TRIGGER ALL", "must be owner"),
    ("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update_delete", "must be owner"),
    ("DROP TRIGGER audit_log_no_update_delete ON audit_log", "must be owner"),
    ("CREATE TRIGGER t_x BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
     "permission denied"),
    ("DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)", "permission denied"),
    ("UPDATE audit_log SET action = 'innocent' WHERE seq = 1", "permission denied"),
    ("TRUNCATE audit_log", "permission denied"),
    ("SET session_replication_role = replica", "permission denied"),
    ("INSERT INTO audit_head (id, seq, head_hash) VALUES (2, 0, 'x')", "permission denied"),
    ("DELETE FROM audit_head", "permission denied"),
    ("ALTER TABLE audit_head OWNER TO CURRENT_USER", "must be owner"),
]
BACKOFFICE_ATTACKS = [
    ("DELETE FROM case_event", "permission denied"),
    ("UPDATE resident_history SET changed_on = changed_on", "permission denied"),
    ("DELETE FROM provision_record", "permission denied"),
    ("DELETE FROM resident", "permission denied"),
    ("ALTER TABLE case_event DISABLE TRIGGER ALL", "must be owner"),
]


@pytest.fixture
def app_role() -> Iterator[dict[str, Any]]:
    """A new login role with a random name; afterwards its grants are dropped in each database, then the role."""
    role = f"juki_app_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
    used: dict[str, Any] = {"role": role, "urls": []}
    yield used
    for url in used["urls"]:
        owner = create_engine(url, isolation_level="AUTOCOMMIT")
        with owner.connect() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
        owner.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP ROLE "{role}"'))
    admin.dispose()


def _as(url: str, role: str) -> str:
    return make_url(url).set(username=role).render_as_string(hide_password=False)


def _grant(app: Any, used: dict[str, Any], url: str) -> None:
    used["urls"].append(url)
    result = app.test_cli_runner().invoke(args=["db", "grants", used["role"], "--apply"])
    assert result.exit_code == 0, f"`db grants {used['role']} --apply` failed: {result.output}"


def _refused(url: str, attacks: list[tuple[str, str]]) -> list[str]:
    """Run each attack in its own transaction; return those that were NOT refused as expected."""
    engine = create_engine(url)
    allowed = []
    for statement, message in attacks:
        try:
            with engine.begin() as conn:
                conn.execute(text(statement))
        except DBAPIError as exc:
            if message not in str(exc.orig):
                allowed.append(f"{statement}: refused for another reason: {exc.orig}")
            continue
        allowed.append(statement)
    engine.dispose()
    return allowed


def test_the_back_office_role_runs_the_app_but_cannot_switch_off_or_cut_the_log(bo_app, backoffice_db_url, app_role,
                                                                                 clock, tmp_path, monkeypatch):
    from backoffice import create_app
    from backoffice.extensions import db
    from backoffice.models import AuditLog, Case, CaseEvent
    from backoffice.services import audit
    from backoffice.services import cases as workflow
    from tests.backoffice.case_fixtures import deliver, make_city, staff

    _grant(bo_app, app_role, backoffice_db_url)
    role_url = _as(backoffice_db_url, app_role["role"])
    keys = ("JLIS_DIRECTORY", "JPKI_AUTH_ANCHORS", "JPKI_SIGN_ANCHORS", "JPKI_CRL_DIRECTORY", "SITE_ORIGIN",
            "BRIDGE_KEY_DIRECTORY", "AUDIT_CHECKPOINT_PATH", "AUDIT_CHECKPOINT_KEY_PATH")
    app = create_app({**{k: bo_app.config[k] for k in keys}, **SECRETS, "APP_ENV": "test",
                      "BACKOFFICE_DATABASE_URL": role_url})
    try:
        with app.app_context():
            assert db.session.execute(text("SELECT current_user")).scalar_one() == app_role["role"]
        # What the app does, as its own role: staff, a terminal, sign-in, a card, a case received and confirmed.
        people = Backoffice(app, clock)
        people.client_for("clerk1", "clerk")
        city = make_city(app, tmp_path)
        case_id = deliver(app, city)
        with app.test_request_context("/"):
            workflow.confirm(db.session, case_id, by=staff(db.session, "clerk1"))
            db.session.commit()
        with app.app_context():
            assert db.session.get(Case, case_id).status.value == "confirmed"
            assert db.session.scalar(select(func.count()).select_from(CaseEvent)) == 2
            rows = db.session.scalar(select(func.count()).select_from(AuditLog))
            assert db.session.scalar(select(AuditLog.action).order_by(AuditLog.seq.desc()).limit(1)) == "case.confirm"
        assert _refused(role_url, ATTACKS + BACKOFFICE_ATTACKS) == []
        with app.app_context():
            result = audit.chain().verify(db.session)
        assert result.ok and result.rows == rows and result.checkpoint_seq == rows, result
    finally:
        app.extensions["engine"].dispose()


def test_the_portal_role_appends_to_its_log_but_cannot_switch_off_or_cut_it(portal_app, portal_db_url, app_role):
    from portal import create_app
    from portal.extensions import db
    from portal.services import audit

    _grant(portal_app, app_role, portal_db_url)
    role_url = _as(portal_db_url, app_role["role"])
    keys = ("JLIS_DIRECTORY", "JPKI_AUTH_ANCHORS", "JPKI_SIGN_ANCHORS", "JPKI_CRL_DIRECTORY", "SITE_ORIGIN",
            "BRIDGE_KEY_DIRECTORY", "REDIS_URL", "REDIS_KEY_PREFIX", "AUDIT_CHECKPOINT_PATH",
            "AUDIT_CHECKPOINT_KEY_PATH")
    app = create_app({**{k: portal_app.config[k] for k in keys}, **SECRETS, "APP_ENV": "test",
                      "PORTAL_DATABASE_URL": role_url})
    try:
        with app.test_request_context("/"):
            audit.record(db.session, "resident.sign_in", actor="resident:1", actor_id=1)
            db.session.commit()
            audit.record(db.session, "resident.sign_out", actor="resident:1", actor_id=1)
            db.session.commit()
        assert _refused(role_url, ATTACKS) == []
        with app.app_context():
            result = audit.chain().verify(db.session)
        assert result.ok and result.rows == 2 and result.checkpoint_seq == 2, result
    finally:
        app.extensions["engine"].dispose()


def test_grants_refuse_the_owner_and_print_only_select_insert_on_the_log(bo_app, backoffice_db_url):
    with bo_app.extensions["engine"].connect() as conn:
        owner = conn.execute(text("SELECT current_user")).scalar_one()
    refused = bo_app.test_cli_runner().invoke(args=["db", "grants", owner, "--apply"])
    assert refused.exit_code == 2 and ("superuser" in refused.output or "owns" in refused.output), refused.output
    printed = bo_app.test_cli_runner().invoke(args=["db", "grants", "juki_app"])
    assert printed.exit_code == 0
    assert 'GRANT SELECT, INSERT ON TABLE "audit_log" TO "juki_app";' in printed.output
    assert 'GRANT SELECT, UPDATE ON TABLE "audit_head" TO "juki_app";' in printed.output
    for privilege in ("TRUNCATE", "TRIGGER", "ALL PRIVILEGES", "REFERENCES"):
        assert privilege not in printed.output
    bad = bo_app.test_cli_runner().invoke(args=["db", "grants", 'x"; DROP TABLE audit_log; --'])
    assert bad.exit_code == 2 and "ROLE" in bad.output


def test_every_table_a_trigger_keeps_append_only_is_granted_select_and_insert_only(bo_app):
    from core.grants import APPEND_ONLY, NEVER_DELETED

    with bo_app.extensions["engine"].connect() as conn:
        guarded = dict(conn.execute(text(
            "SELECT c.relname, string_agg(p.proname, ',') FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_proc p ON p.oid = t.tgfoid WHERE NOT t.tgisinternal "
            "AND (p.proname LIKE '%append_only' OR p.proname LIKE '%never_deleted') GROUP BY c.relname")).all())
    assert {t for t, f in guarded.items() if "append_only" in f} == APPEND_ONLY
    assert {t for t, f in guarded.items() if "never_deleted" in f} == NEVER_DELETED
