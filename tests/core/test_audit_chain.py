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


# -- the tail (issue: a cut at the end of the log must not pass) ----------------------------------


def _own_checkpoint_keys(bo_app, tmp_path):
    """Give this app a checkpoint key pair of its own (the run's shared pair must not be deleted)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private, public = tmp_path / "own-checkpoint.pem", tmp_path / "own-checkpoint.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    bo_app.config.update(AUDIT_CHECKPOINT_KEY_PATH=str(private), AUDIT_CHECKPOINT_PUBLIC_KEY=str(public))
    return private, public


def _cut_tail(bo_app, keep):
    """As the database owner: delete every row after ``keep`` and move the head back to it."""
    from backoffice.extensions import db

    with bo_app.app_context():
        kept = db.session.get(AuditLog, keep).row_hash
    _raw(bo_app, (f"DELETE FROM audit_log WHERE seq > {keep}", {}),
         ("UPDATE audit_head SET seq = :s, head_hash = :h", {"s": keep, "h": kept}))


@pytest.mark.sqlite
def test_a_tail_cut_right_after_the_last_commit_fails_verify_naming_the_cut(bo_app):
    # Each commit appends a row or two, as requests do; no checkpoint command is run.
    _append(bo_app, 7)
    _cut_tail(bo_app, 4)
    result = _verify(bo_app)
    assert not result.ok, "a log cut back from 7 to 4 rows passed verify"
    assert "rows after 4 were cut off" in result.reason and "7" in result.reason
    out = _cli(bo_app, "audit", "verify")
    assert out.exit_code == 1 and "cut off" in out.output


@pytest.mark.sqlite
def test_deleting_the_checkpoint_file_and_its_keys_fails_verify_and_makes_no_new_key(bo_app, tmp_path):
    private, public = _own_checkpoint_keys(bo_app, tmp_path)
    _append(bo_app, 3)
    Path(bo_app.config["AUDIT_CHECKPOINT_PATH"]).unlink()
    private.unlink()
    public.unlink()
    result = _verify(bo_app)
    assert not result.ok, "verify passed with the checkpoint file and its keys deleted"
    out = _cli(bo_app, "audit", "verify")
    assert out.exit_code == 1 and "AUDIT_CHECKPOINT_PUBLIC_KEY" in out.output
    assert not private.exists() and not public.exists(), "verify made a new checkpoint key"


@pytest.mark.sqlite
def test_deleting_only_the_checkpoint_file_fails_verify(bo_app):
    _append(bo_app, 3)
    Path(bo_app.config["AUDIT_CHECKPOINT_PATH"]).unlink()
    result = _verify(bo_app)
    assert not result.ok, "verify passed with the checkpoint file deleted"
    assert "checkpoint file" in result.reason


@pytest.mark.sqlite
def test_the_app_refuses_to_commit_rather_than_make_a_new_signing_key(bo_app, tmp_path):
    private, _public = _own_checkpoint_keys(bo_app, tmp_path)
    _append(bo_app, 1)
    private.unlink()
    with pytest.raises(Exception, match="AUDIT_CHECKPOINT_KEY_PATH"):
        _append(bo_app, 1)
    assert not private.exists(), "a new signing key was made without anyone asking"
    from backoffice.extensions import db

    with bo_app.app_context():
        assert db.session.execute(select(AuditLog.seq)).scalars().all() == [1]


@pytest.mark.sqlite
def test_a_checkpoint_file_begun_again_behind_a_deleted_one_fails_verify(bo_app):
    _append(bo_app, 3)
    _cut_tail(bo_app, 2)
    Path(bo_app.config["AUDIT_CHECKPOINT_PATH"]).unlink()
    # The next commit begins a fresh file at row 3; that alone must not make the cut pass.
    _append(bo_app, 2)
    result = _verify(bo_app)
    assert not result.ok, "a checkpoint file begun after the log had rows hid the cut"
    assert "begins at row 3" in result.reason


@pytest.mark.sqlite
def test_a_checkpoint_file_restarted_by_hand_verifies_and_says_so(bo_app):
    _append(bo_app, 3)
    Path(bo_app.config["AUDIT_CHECKPOINT_PATH"]).unlink()
    assert _cli(bo_app, "audit", "checkpoint").exit_code == 0
    _append(bo_app, 1)
    out = _cli(bo_app, "audit", "verify")
    assert out.exit_code == 0 and "last checkpoint at seq 4" in out.output
    assert "restarted at row 3 by hand" in out.output


@pytest.mark.sqlite
def test_verify_reports_the_last_checkpointed_row_in_japan_time(bo_app):
    _append(bo_app, 5)
    result = _verify(bo_app)
    assert result.ok and result.rows == 5 and result.checkpoint_seq == 5
    out = _cli(bo_app, "audit", "verify")
    assert out.exit_code == 0, out.output
    assert "verified 5 rows; last checkpoint at seq 5 (" in out.output and "JST)" in out.output


@pytest.mark.sqlite
def test_a_checkpoint_signed_later_for_an_earlier_row_does_not_hide_the_cut(bo_app):
    # Whoever holds the signing key can append, not take back: the highest checkpoint still counts.
    from backoffice.extensions import db
    from backoffice.services import audit

    _append(bo_app, 6)
    _cut_tail(bo_app, 3)
    with bo_app.app_context():
        third = db.session.get(AuditLog, 3).row_hash
        audit.chain().write_checkpoint(3, third, force=True)
    result = _verify(bo_app)
    assert not result.ok and "rows after 3 were cut off" in result.reason


@pytest.mark.sqlite
def test_two_signed_checkpoints_that_disagree_about_a_row_fail_verify(bo_app):
    from backoffice.extensions import db
    from backoffice.services import audit

    _append(bo_app, 3)
    with bo_app.app_context():
        audit.chain().write_checkpoint(2, "ab" * 32, force=True)
        db.session.rollback()
    result = _verify(bo_app)
    assert not result.ok and "disagree about row 2" in result.reason


@pytest.mark.sqlite
def test_the_public_key_may_be_given_as_pem_text(bo_app, tmp_path):
    _private, public = _own_checkpoint_keys(bo_app, tmp_path)
    _append(bo_app, 2)
    bo_app.config["AUDIT_CHECKPOINT_PUBLIC_KEY"] = public.read_text()
    public.unlink()
    assert _verify(bo_app).ok
    # Another key's PEM: every checkpoint is refused.
    (tmp_path / "other").mkdir()
    _other, other_public = _own_checkpoint_keys(bo_app, tmp_path / "other")
    bo_app.config["AUDIT_CHECKPOINT_PUBLIC_KEY"] = other_public.read_text()
    result = _verify(bo_app)
    assert not result.ok and "signature" in result.reason


def test_keygen_makes_the_pair_once_and_never_replaces_it(bo_app, tmp_path):
    private, public = tmp_path / "keys" / "cp.pem", tmp_path / "keys" / "cp.pub.pem"
    bo_app.config.update(AUDIT_CHECKPOINT_KEY_PATH=str(private), AUDIT_CHECKPOINT_PUBLIC_KEY=str(public))
    out = _cli(bo_app, "audit", "keygen")
    assert out.exit_code == 0 and private.exists() and public.exists(), out.output
    assert oct(private.stat().st_mode & 0o777) == "0o600"
    before = private.read_bytes()
    again = _cli(bo_app, "audit", "keygen")
    assert again.exit_code == 2 and "never replaced" in again.output
    assert private.read_bytes() == before
    _append(bo_app, 2)
    assert _verify(bo_app).ok


def test_in_development_the_first_commit_makes_the_key_pair_but_verify_never_does(bo_app, tmp_path):
    from backoffice.services import audit  # noqa: F401  (the app's chain)

    private = tmp_path / "dev" / "audit-checkpoint-ed25519.pem"
    public = tmp_path / "dev" / "audit-checkpoint-ed25519.pub.pem"
    bo_app.config.update(APP_ENV="development", AUDIT_CHECKPOINT_KEY_PATH=str(private), AUDIT_CHECKPOINT_PUBLIC_KEY="")
    out = _cli(bo_app, "audit", "verify")
    assert out.exit_code == 1 and not private.exists() and not public.exists()
    _append(bo_app, 2)  # `make run`'s first commit on a fresh instance
    assert private.exists() and public.exists()
    assert _verify(bo_app).ok
    # Once checkpoints exist, a lost key is not made again, even in development.
    private.unlink()
    public.unlink()
    with pytest.raises(Exception, match="AUDIT_CHECKPOINT_KEY_PATH"):
        _append(bo_app, 1)
    assert not private.exists()


def test_in_production_verify_needs_the_public_key_configured(bo_app):
    _append(bo_app, 2)
    bo_app.config.update(APP_ENV="production", AUDIT_CHECKPOINT_PUBLIC_KEY="")
    out = _cli(bo_app, "audit", "verify")
    assert out.exit_code == 1 and "AUDIT_CHECKPOINT_PUBLIC_KEY is not set" in out.output


def test_the_portal_log_is_checkpointed_after_every_commit_and_a_cut_fails_its_verify(portal_app):
    from portal.extensions import db
    from portal.services import audit

    with portal_app.test_request_context("/"):
        for i in range(4):
            audit.record(db.session, "resident.sign_in", actor=f"resident:{i}")
            db.session.commit()
    lines = Path(portal_app.config["AUDIT_CHECKPOINT_PATH"]).read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3, 4]
    out = portal_app.test_cli_runner().invoke(args=["audit", "verify"])
    assert out.exit_code == 0 and "last checkpoint at seq 4" in out.output, out.output
    engine = portal_app.extensions["engine"]
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        kept = conn.execute(text("SELECT row_hash FROM audit_log WHERE seq = 2")).scalar_one()
        conn.execute(text("DELETE FROM audit_log WHERE seq > 2"))
        conn.execute(text("UPDATE audit_head SET seq = 2, head_hash = :h"), {"h": kept})
    out = portal_app.test_cli_runner().invoke(args=["audit", "verify"])
    assert out.exit_code == 1 and "rows after 2 were cut off" in out.output, out.output


def test_the_first_two_commits_checkpointed_out_of_order_still_begin_the_file_at_row_one(bo_app, monkeypatch):
    # Rows 1 and 2 commit one after the other, but row 2's checkpoint reaches the still empty file first (its
    # commit's after-commit step ran sooner). Beginning the file at row 2 would make every later verify report a
    # cut before it that never happened; the second writer waits for the first line instead.
    import time

    from backoffice.extensions import db
    from core.audit import AuditChain

    original = AuditChain.write_checkpoint

    def first_one_late(self, seq, head_hash, **options):
        if seq == 1:
            time.sleep(0.3)
        return original(self, seq, head_hash, **options)

    monkeypatch.setattr(AuditChain, "write_checkpoint", first_one_late)
    first = threading.Thread(target=_append, args=(bo_app, 1))
    first.start()
    for _ in range(100):  # row 1 is committed; its checkpoint is on its way
        with bo_app.app_context():
            if db.session.execute(select(AuditLog.seq)).first() is not None:
                break
        time.sleep(0.01)
    _append(bo_app, 1)
    first.join()
    lines = Path(bo_app.config["AUDIT_CHECKPOINT_PATH"]).read_text().splitlines()
    assert json.loads(lines[0])["start"] == 1
    assert _verify(bo_app).ok
