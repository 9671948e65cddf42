"""Retention that purges (R16): only what is due goes, in batches, logged per kind; the log still verifies."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from backoffice.models import (
    AuditLog,
    BridgeAlert,
    DeadLetter,
    IdoReason,
    ProcessedMessage,
    RecordStatus,
    Resident,
    ResidentHistory,
    Staff,
    StaffSession,
)
from core import clock as clock_module
from core.retention import verify_archive
from tests.factories import make_household, make_resident


def _run(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def _history(session, resident, when):
    session.add(ResidentHistory(resident_id=resident.id, reason=IdoReason.MOVE_OUT, changed_on=when,
                                recorded_at=clock_module.utcnow(), recorded_by="clerk1", before="{}", after="{}"))


@pytest.fixture
def ledger(bo_app, backoffice, clock, tmp_path):
    """Twelve years of a city: old log rows, a 除票 past 150 years, one just short of it, old and young rows."""
    from backoffice.extensions import db

    bo_app.config["RETENTION_ARCHIVE_DIR"] = str(tmp_path / "archive")
    real_now = clock.now
    clock.now = real_now - dt.timedelta(days=365 * 12)
    for n in range(3):
        backoffice.add_staff(f"old{n}", "clerk")  # old log rows, each commit checkpointed
    clock.now = real_now
    backoffice.add_staff("young1", "clerk")
    today = clock_module.today_jst()
    with bo_app.test_request_context("/"):
        household = make_household(db.session)
        people = {}
        for name, removed in (("ancient", today.replace(year=today.year - 151)),
                              ("almost", today.replace(year=today.year - 149)), ("current", None)):
            person = make_resident(db.session, bo_app.config, household=household, is_householder=name == "current")
            if removed is not None:
                person.status, person.removed_on = RecordStatus.REMOVED, removed
            _history(db.session, person, removed or today)
            people[name] = person.id
        for age, resolved in ((100, True), (10, True), (400, True), (400, False)):
            at = real_now - dt.timedelta(days=age)
            db.session.add(ProcessedMessage(message_id=str(uuid.uuid4()), message_type="application.status",
                                            sender="portal", processed_at=at))
            db.session.add(DeadLetter(message_id=str(uuid.uuid4()), reason="schema", queue="q", created_at=at,
                                      resolved_at=at if resolved else None,
                                      resolution="discarded" if resolved else None))
            db.session.add(BridgeAlert(kind="redis_data_lost", messages=0, detail="", created_at=at))
        # A condition still open after more than a year (a queue nobody has fixed): never purged while open.
        db.session.add(BridgeAlert(kind="queue_unattended", subject="intake:032051", messages=0, detail="",
                                   created_at=real_now - dt.timedelta(days=400)))
        staff_id = db.session.execute(select(func.min(Staff.id))).scalar_one()
        for age in (100, 10):
            at = real_now - dt.timedelta(days=age)
            db.session.add(StaffSession(staff_id=staff_id, token_hash=uuid.uuid4().hex * 2, created_at=at,
                                        last_seen_at=at))
        db.session.commit()
    return people


def _count(bo_app, model, *where):
    from backoffice.extensions import db

    with bo_app.app_context():
        return db.session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def _purge_rows(bo_app):
    from backoffice.extensions import db

    with bo_app.app_context():
        rows = db.session.execute(select(AuditLog).where(AuditLog.action == "retention.purge")
                                  .order_by(AuditLog.seq)).scalars().all()
        return [json.loads(r.detail) for r in rows]


def test_a_dry_run_counts_and_logs_what_is_due_and_deletes_nothing(bo_app, ledger):
    before = {m: _count(bo_app, m) for m in (Resident, ProcessedMessage, DeadLetter, BridgeAlert, AuditLog)}
    result = _run(bo_app, "retention", "run", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "joshu" in result.output and "1 due" in result.output
    marks = {d["kind"]: d for d in _purge_rows(bo_app)}
    assert set(marks) == {"joshu", "sessions", "processed_messages", "dead_letters", "alerts", "audit_log"}
    assert all(d["dry_run"] for d in marks.values())
    assert (marks["joshu"]["rows"], marks["processed_messages"]["rows"], marks["dead_letters"]["rows"],
            marks["alerts"]["rows"], marks["sessions"]["rows"]) == (1, 3, 1, 2, 1)
    assert marks["audit_log"]["rows"] > 0
    after = {m: _count(bo_app, m) for m in (Resident, ProcessedMessage, DeadLetter, BridgeAlert)}
    assert after == {m: v for m, v in before.items() if m is not AuditLog}


def test_the_run_deletes_only_what_is_due_archives_the_old_log_and_the_log_still_verifies(bo_app, ledger, clock):
    old_log_rows = _count(bo_app, AuditLog, AuditLog.ts < clock.now - dt.timedelta(days=366))
    assert old_log_rows >= 3
    result = _run(bo_app, "retention", "run", "--batch", "2")  # small batches: several rounds per kind
    assert result.exit_code == 0, result.output

    from backoffice.extensions import db

    with bo_app.app_context():
        remaining = set(db.session.execute(select(Resident.id)).scalars())
        assert remaining == {ledger["almost"], ledger["current"]}  # only the 除票 past 150 years went
        assert db.session.execute(select(func.count()).select_from(ResidentHistory)
                                  .where(ResidentHistory.resident_id == ledger["ancient"])).scalar_one() == 0
        assert _count(bo_app, ResidentHistory) == 2
    # Younger than their periods: kept. Unresolved dead letters are kept whatever their age.
    assert _count(bo_app, ProcessedMessage) == 1
    assert _count(bo_app, DeadLetter) == 3 and _count(bo_app, DeadLetter, DeadLetter.resolved_at.is_(None)) == 1
    assert _count(bo_app, BridgeAlert) == 3
    assert _count(bo_app, BridgeAlert, BridgeAlert.kind == "queue_unattended") == 1  # open: kept whatever its age
    assert _count(bo_app, StaffSession) == 1
    # The old log rows are archived and gone; the young ones stay; one purge row per kind.
    assert _count(bo_app, AuditLog, AuditLog.ts < clock.now - dt.timedelta(days=366)) == 0
    marks = {d["kind"]: d for d in _purge_rows(bo_app)}
    assert set(marks) == {"joshu", "sessions", "processed_messages", "dead_letters", "alerts", "audit_log"}
    assert marks["joshu"]["rows"] == 1 and marks["audit_log"]["rows"] == old_log_rows
    with bo_app.app_context():
        first = db.session.execute(select(func.min(AuditLog.seq))).scalar_one()
    assert marks["audit_log"]["through_seq"] == first - 1

    from backoffice.services import audit

    archive = Path(bo_app.config["RETENTION_ARCHIVE_DIR"]) / marks["audit_log"]["archive"]
    with bo_app.app_context():
        chain = audit.chain()
        assert verify_archive(chain, archive) == ""
        assert len(archive.read_text().splitlines()) == old_log_rows
    verify = _run(bo_app, "audit", "verify")
    assert verify.exit_code == 0, verify.output

    again = _run(bo_app, "retention", "run")
    assert again.exit_code == 0 and _count(bo_app, Resident) == 2
    assert _run(bo_app, "audit", "verify").exit_code == 0


def test_an_archive_altered_after_the_fact_no_longer_verifies(bo_app, ledger):
    assert _run(bo_app, "retention", "run").exit_code == 0
    from backoffice.services import audit

    mark = next(d for d in _purge_rows(bo_app) if d["kind"] == "audit_log")
    archive = Path(bo_app.config["RETENTION_ARCHIVE_DIR"]) / mark["archive"]
    lines = archive.read_text().splitlines()
    row = json.loads(lines[1])
    row["canonical"] = row["canonical"].replace("old1", "old9")
    lines[1] = json.dumps(row, ensure_ascii=False)
    archive.chmod(0o640)
    archive.write_text("\n".join(lines) + "\n")
    with bo_app.app_context():
        assert verify_archive(audit.chain(), archive) != ""


def test_the_triggers_let_only_the_retention_path_delete_and_only_what_is_due(bo_app, ledger):
    engine = bo_app.extensions["engine"]
    attempts = [
        # Without the retention setting nothing goes, however old.
        ("", f"DELETE FROM resident WHERE id = {ledger['ancient']}"),
        ("", "DELETE FROM audit_log WHERE seq = 1"),
        # With it, nothing younger than the legal floor goes, and nothing is ever changed.
        ("on", f"DELETE FROM resident WHERE id = {ledger['almost']}"),
        ("on", f"DELETE FROM resident_history WHERE resident_id = {ledger['almost']}"),
        ("on", "DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)"),
        ("on", "UPDATE audit_log SET actor = 'someone' WHERE seq = 1"),
        ("on", f"UPDATE resident_history SET recorded_by = 'x' WHERE resident_id = {ledger['ancient']}"),
        ("on", "TRUNCATE audit_log"),
    ]
    for setting, statement in attempts:
        with engine.connect() as conn:
            if setting:
                conn.execute(text("SELECT set_config('juki.retention', 'on', true)"))
            with pytest.raises(DBAPIError, match=r"append-only|never deleted"):
                conn.execute(text(statement))
            conn.rollback()


def test_a_log_prefix_cut_by_hand_fails_verify_even_at_a_checkpoint(bo_app, ledger):
    from backoffice.services import audit

    with bo_app.app_context():
        checkpoint = audit.chain().checkpoints()[1]["seq"]  # a signed checkpoint: cut exactly there
    with bo_app.extensions["engine"].begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("DELETE FROM audit_log WHERE seq <= :s"), {"s": checkpoint})
    verify = _run(bo_app, "audit", "verify")
    assert verify.exit_code == 1 and "no `retention.purge` row records their archive" in verify.output


def test_a_schedule_under_the_legal_minimum_is_refused_naming_the_kind(bo_app):
    bo_app.config["RETENTION_DAYS"] = "joshu=365"
    result = _run(bo_app, "retention", "run")
    assert result.exit_code == 2 and "joshu must be at least" in result.output
    bo_app.config["RETENTION_DAYS"] = "processed_messages=7"
    result = _run(bo_app, "retention", "run", "--dry-run")
    assert result.exit_code == 2 and "processed_messages must be at least 31" in result.output
    bo_app.config["RETENTION_DAYS"] = "drafts=3"
    assert "unknown kind 'drafts'" in _run(bo_app, "retention", "schedule").output
    assert _count(bo_app, AuditLog, AuditLog.action == "retention.purge") == 0
