"""The operation log (R6): hash chain, signed checkpoints, append-only trigger, `audit verify`."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import select, text

from backoffice.models import AuditLog


def _append(bo_app, n):
    from backoffice.extensions import db
    from backoffice.services import audit

    with bo_app.test_request_context("/"):
        for i in range(n):
            audit.record("test.action", target_type="thing", target_id=i, detail={"i": i})
            db.session.commit()


def _verify(bo_app):
    from backoffice.extensions import db
    from backoffice.services import audit

    with bo_app.app_context():
        return audit.chain().verify(db.session)


def _raw(bo_app, *statements):
    """Tamper as a database superuser would: around the append-only trigger."""
    engine = bo_app.extensions["engine"]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        for stmt, params in statements:
            conn.execute(text(stmt), params)


def _cli(bo_app, *args):
    return bo_app.test_cli_runner().invoke(args=list(args))


@pytest.mark.sqlite
def test_an_untouched_chain_verifies(bo_app):
    _append(bo_app, 5)
    result = _verify(bo_app)
    assert result.ok and result.rows == 5
    out = _cli(bo_app, "audit", "verify")
    assert out.exit_code == 0 and "5 rows" in out.output


@pytest.mark.sqlite
def test_an_edited_row_is_caught_and_named(bo_app):
    _append(bo_app, 6)
    _raw(bo_app, ("UPDATE audit_log SET action = 'innocent' WHERE seq = 3", {}))
    result = _verify(bo_app)
    assert not result.ok and result.first_bad == 3
    out = _cli(bo_app, "audit", "verify")
    assert out.exit_code == 1 and "row 3" in out.output


@pytest.mark.sqlite
def test_an_edit_that_also_rewrites_the_stored_canonical_text_is_caught(bo_app):
    _append(bo_app, 4)
    from backoffice.extensions import db

    with bo_app.app_context():
        row = db.session.get(AuditLog, 2)
        canonical = json.loads(row.canonical)
    canonical["actor"] = "someone-else"
    _raw(bo_app, ("UPDATE audit_log SET actor = 'someone-else', canonical = :c WHERE seq = 2",
                  {"c": json.dumps(canonical)}))
    assert _verify(bo_app).first_bad == 2


@pytest.mark.sqlite
def test_a_deleted_row_is_caught(bo_app):
    _append(bo_app, 6)
    _raw(bo_app, ("DELETE FROM audit_log WHERE seq = 4", {}))
    result = _verify(bo_app)
    assert not result.ok and result.first_bad == 4


@pytest.mark.sqlite
def test_an_inserted_row_is_caught(bo_app):
    _append(bo_app, 4)
    from backoffice.extensions import db

    with bo_app.app_context():
        row = db.session.get(AuditLog, 2)
        cols = {c: getattr(row, c) for c in ("ts", "actor", "action", "outcome", "detail", "canonical", "prev_hash",
                                              "row_hash")}
    # Shift rows 3.. up by one and forge a row 3 that copies row 2's content.
    _raw(bo_app, ("UPDATE audit_log SET seq = seq + 100 WHERE seq >= 3", {}),
         ("UPDATE audit_log SET seq = seq - 99 WHERE seq >= 103", {}),
         ("INSERT INTO audit_log (seq, ts, actor, action, outcome, detail, canonical, prev_hash, row_hash) "
          "VALUES (3, :ts, :actor, :action, :outcome, :detail, :canonical, :prev_hash, :row_hash)", cols))
    result = _verify(bo_app)
    assert not result.ok and result.first_bad == 3


@pytest.mark.sqlite
def test_the_newest_rows_cut_off_are_caught_by_the_checkpoint(bo_app):
    _append(bo_app, 8)
    # Remove the last three rows and move the head back so the chain itself is consistent.
    from backoffice.extensions import db

    with bo_app.app_context():
        fifth = db.session.get(AuditLog, 5).row_hash
    _raw(bo_app, ("DELETE FROM audit_log WHERE seq > 5", {}),
         ("UPDATE audit_head SET seq = 5, head_hash = :h", {"h": fifth}))
    result = _verify(bo_app)
    assert not result.ok and "cut off" in result.reason


@pytest.mark.sqlite
def test_a_chain_rebuilt_from_scratch_with_the_key_is_caught_by_the_signed_checkpoints(bo_app):
    from backoffice.extensions import db
    from core.audit import GENESIS, canonical_entry, chain_hash

    _append(bo_app, 5)
    # Someone with the HMAC key rewrites history: a different actor everywhere, a consistent new chain.
    with bo_app.app_context():
        rows = db.session.execute(select(AuditLog).order_by(AuditLog.seq)).scalars().all()
        prev, statements = GENESIS, []
        for row in rows:
            row.actor = "rewritten"
            canonical = canonical_entry(row)
            new_hash = chain_hash(bo_app.config["AUDIT_HMAC_KEY"], prev, row.seq, canonical)
            params = {"c": canonical, "p": prev, "h": new_hash, "s": row.seq}
            statements.append(("UPDATE audit_log SET actor = 'rewritten', canonical = :c, prev_hash = :p, "
                               "row_hash = :h WHERE seq = :s", params))
            prev = new_hash
        db.session.rollback()
    statements.append(("UPDATE audit_head SET head_hash = :h", {"h": prev}))
    _raw(bo_app, *statements)
    result = _verify(bo_app)
    assert not result.ok and "checkpoint" in result.reason


@pytest.mark.sqlite
def test_a_chain_rebuilt_without_the_key_is_caught_at_the_first_row(bo_app):
    _append(bo_app, 3)
    _raw(bo_app, ("UPDATE audit_log SET row_hash = :h WHERE seq = 1", {"h": "ab" * 32}))
    assert _verify(bo_app).first_bad == 1


def test_a_forged_checkpoint_is_refused(bo_app):
    _append(bo_app, 2)
    path = Path(bo_app.config["AUDIT_CHECKPOINT_PATH"])
    cp = json.loads(path.read_text().splitlines()[-1])
    cp["seq"] = 99
    path.write_text(path.read_text() + json.dumps(cp) + "\n")
    result = _verify(bo_app)
    assert not result.ok and "signature" in result.reason


def test_postgresql_refuses_update_and_delete_on_the_log(bo_app):
    _append(bo_app, 2)
    engine = bo_app.extensions["engine"]
    for stmt in ("UPDATE audit_log SET action = 'x' WHERE seq = 1", "DELETE FROM audit_log WHERE seq = 1",
                 "TRUNCATE audit_log"):
        with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
            conn.execute(text(stmt))
    assert _verify(bo_app).ok


def test_concurrent_writers_do_not_fork_the_chain(bo_app):
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            _append(bo_app, 15)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    result = _verify(bo_app)
    assert result.ok and result.rows == 60


def test_sequence_numbers_are_gapless_after_a_rolled_back_append(bo_app):
    from backoffice.extensions import db
    from backoffice.services import audit

    _append(bo_app, 2)
    with bo_app.test_request_context("/"):
        audit.record("test.rolled_back")
        db.session.rollback()
    _append(bo_app, 1)
    with bo_app.app_context():
        assert db.session.execute(select(AuditLog.seq).order_by(AuditLog.seq)).scalars().all() == [1, 2, 3]
    assert _verify(bo_app).ok
