"""The portal's backups (R17): its own database and operation log, refused by a back office."""

from __future__ import annotations

import secrets

from sqlalchemy import create_engine, text

from tests.conftest import create_pg_database, drop_pg_database


def test_a_portal_backup_restores_with_its_log_and_a_back_office_refuses_it(portal_app, bo_app, tmp_path):
    from portal.extensions import db
    from portal.services import audit

    key = secrets.token_hex(32)
    portal_app.config["BACKUP_KEY"] = bo_app.config["BACKUP_KEY"] = key
    with portal_app.app_context():
        for n in range(3):
            audit.record(db.session, "portal.test", actor="system", target_type="drill", target_id=str(n))
        db.session.commit()
    out = tmp_path / "portal-backup"
    runner = portal_app.test_cli_runner()
    result = runner.invoke(args=["backup", "--out", str(out)])
    assert result.exit_code == 0 and "Backup of portal" in result.output, result.output
    into = create_pg_database("portal_restore")
    try:
        refused = bo_app.test_cli_runner().invoke(args=["restore", "--from", str(out), "--into", into])
        assert refused.exit_code == 1 and "check 'app'" in refused.output
        restored = runner.invoke(args=["restore", "--from", str(out), "--into", into])
        assert restored.exit_code == 0 and "audit verify OK: verified 3 rows" in restored.output, restored.output
        engine = create_engine(into)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM audit_log WHERE action = 'portal.test'")).scalar_one() == 3
        engine.dispose()
    finally:
        drop_pg_database(into)
