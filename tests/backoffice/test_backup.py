"""Backups that restore (R17): the restore drill on real PostgreSQL with pg_dump and pg_restore, and the refusals."""

from __future__ import annotations

import json
import secrets
import shutil

import pytest
from sqlalchemy import create_engine, select, text

from backoffice.models import IssuedCertificate, RecordStatus, Resident
from core.backup import BackupError, _sign, backup_key, read_manifest
from core.fieldcrypto import FieldCipher
from tests.backoffice.case_fixtures import HEAD_NUMBER, WIFE_NUMBER, deliver, make_city, move, staff
from tests.conftest import create_pg_database, drop_pg_database

BACKUP_KEY = secrets.token_hex(32)


def _run(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def _confirm_and_approve(bo_app, backoffice, case_id):
    from backoffice.extensions import db
    from backoffice.services import cases

    with bo_app.test_request_context("/"):
        cases.confirm(db.session, case_id, by=staff(db.session, "clerk_a"))
        db.session.commit()
    code = backoffice.totp("approver_b")
    with bo_app.test_request_context("/"):
        cases.approve(db.session, case_id, by=staff(db.session, "approver_b"), totp_code=code)
        db.session.commit()


def _counts(url):
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = [r[0] for r in conn.execute(text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"))]
            return {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables}
    finally:
        engine.dispose()


def _numbers(url, field_key):
    """Resident id -> decrypted My Number, read straight from a database with the field key."""
    engine = create_engine(url)
    cipher = FieldCipher(field_key)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Resident.id, Resident.my_number_encrypted)
                                .where(Resident.my_number_encrypted.is_not(None)).order_by(Resident.id)).all()
    finally:
        engine.dispose()
    return {rid: cipher.decrypt(blob, context=b"my_number") for rid, blob in rows}


@pytest.fixture
def busy_city(bo_app, backoffice, tmp_path, clock):
    """A seeded ledger on which, through the services, a move-out was approved and a certificate issued."""
    bo_app.config["BACKUP_KEY"] = BACKUP_KEY
    assert _run(bo_app, "seed", "--residents", "200", "--seed", "3").exit_code == 0
    city = make_city(bo_app, tmp_path)
    backoffice.add_staff("clerk_a", "clerk")
    backoffice.add_staff("approver_b", "approver")
    _confirm_and_approve(bo_app, backoffice, deliver(bo_app, city, "move_out", move()))
    clock.advance(minutes=1)  # a fresh TOTP step for the second approval
    certificate = {"type": "certificate", "municipalityCode": "032051", "kind": "juminhyo", "persons": "household",
                   "items": {"householder": True, "honseki": False, "juminhyoCode": False, "myNumber": False},
                   "copies": 1, "purpose": "就職先への提出", "delivery": "post"}
    _confirm_and_approve(bo_app, backoffice, deliver(bo_app, city, "certificate", certificate))
    return city


@pytest.fixture
def fresh_db():
    url = create_pg_database("restore_drill")
    yield url
    drop_pg_database(url)


def _logged(app, action: str) -> dict:
    """The detail of the one operation-log row of ``action`` in the app's live database, naming its actor."""
    from backoffice.extensions import db
    from backoffice.models import AuditLog

    with app.app_context():
        row = db.session.execute(select(AuditLog).where(AuditLog.action == action)).scalar_one()
        assert row.actor.startswith("os:") and row.outcome == "success"
        return json.loads(row.detail)


def test_the_restore_drill_brings_back_every_row_the_my_numbers_and_a_log_that_verifies(
        bo_app, backoffice, busy_city, fresh_db, tmp_path):
    live = bo_app.config["BACKOFFICE_DATABASE_URL"]
    before = _counts(live)
    assert before["issued_certificate"] == 1 and before["resident"] >= 202
    numbers = _numbers(live, bo_app.config["FIELD_ENCRYPTION_KEY"])
    out = tmp_path / "backup-1"

    result = _run(bo_app, "backup", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "Backup of backoffice:032051" in result.output

    dump = (out / "database.dump.enc").read_bytes()
    # Encrypted: no pg_dump header, no name, no My Number in the file.
    assert not dump.startswith(b"PGDMP") and b"PGDMP" not in dump
    for plain in (HEAD_NUMBER.encode(), WIFE_NUMBER.encode(), "宮沢".encode(), b"CREATE TABLE"):
        assert plain not in dump
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["row_counts"] == before and manifest["dump_format"] == "pg_dump -Fc"
    assert manifest["audit"]["seq"] == before["audit_log"]

    # The copy of the whole register is in the live operation log: who took it, where it went, what it held.
    taken = _logged(bo_app, "backup.create")
    assert taken["out"] == str(out.resolve()) and taken["rows"] == sum(before.values())
    # After the backup the city goes on working: the live log and its checkpoints run past the backup.
    assert _run(bo_app, "terminals", "add", "counter-after-backup").exit_code == 0

    restored = _run(bo_app, "restore", "--from", str(out), "--into", fresh_db)
    assert restored.exit_code == 0, restored.output
    assert "row counts match the manifest; audit verify OK" in restored.output
    put_back = _logged(bo_app, "backup.restore")
    assert put_back["from"] == str(out.resolve()) and put_back["rows"] == sum(before.values())

    assert _counts(fresh_db) == before
    restored_numbers = _numbers(fresh_db, bo_app.config["FIELD_ENCRYPTION_KEY"])
    sample = list(numbers)[:: max(1, len(numbers) // 25)]
    assert {rid: restored_numbers[rid] for rid in sample} == {rid: numbers[rid] for rid in sample}
    assert HEAD_NUMBER in restored_numbers.values() and WIFE_NUMBER in restored_numbers.values()

    # The restored database serves the app: its own `audit verify` passes against the checkpoints in the backup,
    # the approved move and the issued certificate are there.
    from backoffice import create_app

    app = create_app({**bo_app.config, "BACKOFFICE_DATABASE_URL": fresh_db,
                      "AUDIT_CHECKPOINT_PATH": str(out / "audit-checkpoints.jsonl")})
    try:
        verify = _run(app, "audit", "verify")
        assert verify.exit_code == 0 and f"verified {before['audit_log']:,} rows" in verify.output
        from backoffice.extensions import db

        with app.app_context():
            assert db.session.execute(select(IssuedCertificate)).scalar_one().case_id
            head = db.session.get(Resident, busy_city["head"])
            # The approved 転出届 came back with the rest: the record removed as a 除票 awaiting its 転出確定.
            assert head.status is RecordStatus.REMOVED and head.planned_moveout_on is not None
    finally:
        app.extensions["engine"].dispose()

    # A second restore into the same database is refused: it is no longer empty.
    again = _run(bo_app, "restore", "--from", str(out), "--into", fresh_db)
    assert again.exit_code == 1 and "check '--into'" in again.output and "not empty" in again.output


def _variant(source, tmp_path, name):
    copy = tmp_path / name
    shutil.copytree(source, copy)
    return copy


def _resign(folder, change):
    key = bytes.fromhex(BACKUP_KEY)
    manifest = read_manifest(folder, key)
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps({**manifest, "hmac": _sign(manifest, key)}))


def test_a_damaged_truncated_or_altered_backup_is_refused_naming_the_check_and_nothing_is_restored(
        bo_app, backoffice, busy_city, fresh_db, tmp_path):
    out = tmp_path / "backup"
    assert _run(bo_app, "backup", "--out", str(out)).exit_code == 0
    size = (out / "database.dump.enc").stat().st_size

    flipped = _variant(out, tmp_path, "flipped")
    with open(flipped / "database.dump.enc", "r+b") as fh:
        fh.seek(size // 2)
        byte = fh.read(1)
        fh.seek(size // 2)
        fh.write(bytes([byte[0] ^ 0x01]))
    truncated = _variant(out, tmp_path, "truncated")
    with open(truncated / "database.dump.enc", "r+b") as fh:
        fh.truncate(size - 100)
    # Cut and re-signed by someone holding the backup key: the chunks themselves still catch it.
    cut_resigned = _variant(out, tmp_path, "cut-resigned")
    with open(cut_resigned / "database.dump.enc", "r+b") as fh:
        fh.truncate(size - 100)
    from core.backup import _file_digest

    def fix_file(manifest):
        file_size, digest = _file_digest(cut_resigned / "database.dump.enc")
        manifest["files"]["database.dump.enc"] = {"size": file_size, "sha256": digest}

    _resign(cut_resigned, fix_file)
    edited = _variant(out, tmp_path, "edited")
    manifest = json.loads((edited / "manifest.json").read_text())
    manifest["row_counts"]["resident"] += 1
    (edited / "manifest.json").write_text(json.dumps(manifest))
    counted_wrong = _variant(out, tmp_path, "counted-wrong")
    _resign(counted_wrong, lambda m: m["row_counts"].__setitem__("resident", m["row_counts"]["resident"] + 1))

    expected = {flipped: "sha256", truncated: "size", cut_resigned: "decryption", edited: "manifest"}
    for folder, check in expected.items():
        result = _run(bo_app, "restore", "--from", str(folder), "--into", fresh_db)
        assert result.exit_code == 1 and f"Restore refused at check '{check}'" in result.output, (folder, result.output)
        assert _counts(fresh_db) == {}, folder  # refused before anything reached the database

    result = _run(bo_app, "restore", "--from", str(counted_wrong), "--into", fresh_db)
    assert result.exit_code == 1 and "check 'row counts'" in result.output and "resident" in result.output

    # Another key opens nothing.
    bo_app.config["BACKUP_KEY"] = secrets.token_hex(32)
    other = create_pg_database("restore_other_key")
    try:
        result = _run(bo_app, "restore", "--from", str(out), "--into", other)
        assert result.exit_code == 1 and "check 'manifest'" in result.output and _counts(other) == {}
    finally:
        drop_pg_database(other)


def test_the_backup_key_must_be_set_and_differ_from_every_app_key(bo_app, tmp_path):
    bo_app.config["BACKUP_KEY"] = ""
    result = _run(bo_app, "backup", "--out", str(tmp_path / "b"))
    assert result.exit_code == 2 and "BACKUP_KEY" in result.output and not (tmp_path / "b").exists()
    bo_app.config["BACKUP_KEY"] = bo_app.config["FIELD_ENCRYPTION_KEY"]
    result = _run(bo_app, "backup", "--out", str(tmp_path / "b"))
    assert result.exit_code == 2 and "must differ from FIELD_ENCRYPTION_KEY" in result.output
    assert bo_app.config["FIELD_ENCRYPTION_KEY"] not in result.output
    with pytest.raises(BackupError):
        backup_key({"BACKUP_KEY": "short"}, ())


@pytest.mark.sqlite
def test_a_backup_restores_on_either_backend_and_an_existing_target_is_refused(bo_app, backoffice, backend, tmp_path):
    bo_app.config["BACKUP_KEY"] = BACKUP_KEY
    backoffice.add_staff("clerk_a", "clerk")
    assert _run(bo_app, "seed", "--residents", "30").exit_code == 0
    out = tmp_path / "backup"
    assert _run(bo_app, "backup", "--out", str(out)).exit_code == 0, "backup"
    if backend == "postgresql":
        into = create_pg_database("restore_small")
    else:
        into = f"sqlite:///{tmp_path / 'restored.db'}"
    try:
        result = _run(bo_app, "restore", "--from", str(out), "--into", into)
        assert result.exit_code == 0, result.output
        engine = create_engine(into)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM resident")).scalar_one() == 30
            assert conn.execute(text("SELECT login_id FROM staff")).scalar_one() == "clerk_a"
        engine.dispose()
        again = _run(bo_app, "restore", "--from", str(out), "--into", into)
        assert again.exit_code == 1 and "not empty" in again.output
    finally:
        if backend == "postgresql":
            drop_pg_database(into)
