"""What a forking intake worker prepares in its parent must not outlive a change: a CRL published later counts at once.

The worker builds its trust anchors, schemas and mappers once before the first fork (``bridge.worker.prepare_parent``);
revocation lists are read again at every check, so a certificate J-LIS revokes after the worker started is refused
by the very next job.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.backoffice.case_fixtures import sign_part
from tests.bridge.conftest import INTAKE
from tests.bridge.pipeline import CERTIFICATE, _scalar_rows
from tests.portal_fixtures import Cards


def _payload(jws: str, receipt: str) -> dict[str, object]:
    from core import clock

    return {"receiptNumber": receipt, "kind": "certificate", "moveId": None, "submittedAt": clock.utcnow().isoformat(),
            "signedApplication": jws}


def _case(bridged, receipt: str) -> tuple[str, str] | None:
    rows = _scalar_rows(bridged.bo_app, f"SELECT status, findings FROM application_case WHERE receipt_number = "
                                        f"'{receipt}'")
    return (str(rows[0][0]), str(rows[0][1])) if rows else None


@contextmanager
def _worker_on_a_fresh_engine(bridged, app, url: str, queue: str) -> Iterator[tuple[Any, Any]]:
    """A worker made for ``queue`` of ``app`` on an engine of its own (never connected before); its lent connection
    is given up and the app's engine put back afterwards."""
    from bridge.worker import make_worker
    from core.db import make_engine

    engine, used = make_engine(url), app.extensions["engine"]
    app.extensions["engine"] = engine
    worker = None
    try:
        worker = make_worker(app, queue, connection=bridged.redis.client())
        yield worker, engine
    finally:
        if worker is not None and worker.lender is not None:
            worker.lender.give_up()
        app.extensions["engine"] = used
        engine.dispose()


def test_a_certificate_revoked_after_the_worker_started_is_refused_by_the_next_job(bridged, jlis_config, tmp_path):
    cards = Cards(jlis_config, tmp_path)
    card = cards.issue(name="花巻　失効", address="岩手県花巻市大通り一丁目9番地")
    before, after = (sign_part(card, jlis_config, "certificate", {**CERTIFICATE, "purpose": purpose})[0]
                     for purpose in ("提出用", "確認用"))
    worker = bridged.start_worker("backoffice", INTAKE, cli=True)
    first, second = f"R{uuid.uuid4().hex[:12]}", f"R{uuid.uuid4().hex[:12]}"
    bridged.send("application.submitted", [_payload(before, first)])
    bridged.relay(bridged.portal_app)
    bridged.wait_for(lambda: _case(bridged, first) is not None, timeout=60)
    assert "signature_refused" not in _case(bridged, first)[1]

    cards.revoke(card, slot="sign")  # J-LIS publishes a new CRL while the worker runs
    bridged.send("application.submitted", [_payload(after, second)])
    bridged.relay(bridged.portal_app)
    bridged.wait_for(lambda: _case(bridged, second) is not None, timeout=60)
    status, findings = _case(bridged, second)
    assert status == "returned" and "signature_refused" in findings, (status, findings)
    assert worker.poll() is None  # the same worker, started before the revocation


def test_a_worker_sets_up_the_database_dialect_before_its_first_fork_and_keeps_only_the_connection_it_lends(bridged):
    """SQLAlchemy sets a dialect up on an engine's first connection (several queries); done in the parent, every
    horse inherits it instead of doing it again for each job. The parent's pool hands no connection down: the
    one connection it keeps is the one it lends to each horse in turn (bridge.lending)."""
    from bridge.worker import make_worker
    from core.db import make_engine

    engine, used = make_engine(bridged.env["BACKOFFICE_DATABASE_URL"]), bridged.bo_app.extensions["engine"]
    bridged.bo_app.extensions["engine"] = engine
    worker = None
    try:
        assert engine.dialect.server_version_info is None  # never connected yet
        worker = make_worker(bridged.bo_app, INTAKE, connection=bridged.redis.client())
        assert engine.dialect.server_version_info is not None
        assert (engine.pool.checkedin(), engine.pool.checkedout()) == (0, 0)
        assert worker.lender is not None and worker.lender.connection is not None
        assert not worker.lender.connection.closed
    finally:
        if worker is not None and worker.lender is not None:
            worker.lender.give_up()
        bridged.bo_app.extensions["engine"] = used
        engine.dispose()


def test_a_worker_starts_while_the_database_is_unreachable_and_leaves_the_set_up_to_its_jobs(bridged, caplog):
    """The parent's one connection is an optimisation: a database that is down at start must not stop the worker."""
    from bridge.worker import make_worker
    from core.db import make_engine

    engine, used = make_engine("postgresql+psycopg://127.0.0.1:1/nowhere"), bridged.bo_app.extensions["engine"]
    bridged.bo_app.extensions["engine"] = engine
    try:
        worker = make_worker(bridged.bo_app, INTAKE, connection=bridged.redis.client())
        assert worker.queue_names() == [INTAKE]
        assert "each job will set up its own" in caplog.text
    finally:
        bridged.bo_app.extensions["engine"] = used
        engine.dispose()


def test_a_work_horse_leaves_the_parents_objects_to_the_parent_and_the_parent_keeps_collecting(bridged, tmp_path):
    """A horse whose garbage collector walked the ~160,000 objects it inherits would copy most of the parent's pages
    (about 0.4 s, most of an intake job): they are frozen for the horse, and only for the horse."""
    import gc
    import os
    from types import SimpleNamespace

    from bridge.worker import make_worker

    worker = make_worker(bridged.bo_app, INTAKE, connection=bridged.redis.client())
    seen = tmp_path / "horse.txt"

    def main_work_horse(job, queue):  # what rq's horse would run: here it only reports what its collector sees
        seen.write_text(f"{gc.get_freeze_count()} {len(gc.get_objects())}")
        os._exit(0)

    worker.main_work_horse = main_work_horse
    try:
        worker.fork_work_horse(SimpleNamespace(id="horse-test"), None)
        os.waitpid(worker.horse_pid, 0)
    finally:
        worker.lender.give_up()
    frozen, walked = (int(n) for n in seen.read_text().split())
    assert frozen > 10_000 and walked < frozen  # the inherited heap is out of the horse's collections
    assert gc.get_freeze_count() == 0  # the parent's own objects are collected as before


def _traces(bridged) -> tuple:
    """Everything a delivery writes in the back office: cases, signatures, processed messages, outbox, the log."""
    return tuple(_scalar_rows(bridged.bo_app, f"SELECT count(*) FROM {table}")[0][0] for table in
                 ("application_case", "accepted_signature", "processed_message", "outbox", "audit_log")) + tuple(
        _scalar_rows(bridged.bo_app, "SELECT seq, head_hash FROM audit_head")[0])


def test_a_worker_compiles_the_intake_statements_before_its_first_fork_and_keeps_nothing_of_the_rehearsal(bridged,
                                                                                                      caplog):
    """A horse's compiled statements die with it: the parent compiles them once, by rehearsing applications of its
    own making in transactions it rolls back, so nothing of the rehearsal stays, and the parent's pool holds no
    connection (the one it keeps is lent to its horses)."""
    from backoffice.models import AcceptedSignature, AuditLog, Case, Outbox

    before = _traces(bridged)
    with _worker_on_a_fresh_engine(bridged, bridged.bo_app, bridged.env["BACKOFFICE_DATABASE_URL"], INTAKE) as (
            _worker, engine):
        # Queries go to the engine's cache; the ORM's inserts to each mapper's own: every one a horse inherits.
        compiled = [str(entry) for cache in (engine._compiled_cache, Case.__mapper__._compiled_cache,
                                             Outbox.__mapper__._compiled_cache, AuditLog.__mapper__._compiled_cache,
                                             AcceptedSignature.__mapper__._compiled_cache)
                    for entry in cache.values()]
        assert "rehearsal" not in caplog.text  # each rehearsed application ran to its end
        for statement in ("SELECT application_case.id", "INSERT INTO application_case", "UPDATE audit_head",
                          "INSERT INTO audit_log", "INSERT INTO outbox", "INSERT INTO processed_message",
                          "SELECT resident.id", "SELECT move_out_mover.case_id", "SELECT accepted_signature.case_id",
                          "INSERT INTO accepted_signature"):
            # The operation log's row is written under a CTE that also sets the head hash (core.audit).
            assert any(sql.startswith(statement) or (sql.startswith("WITH") and statement in sql)
                       for sql in compiled), statement
        assert any("JOIN card_record" in sql for sql in compiled)  # the signer by its card
        assert (engine.pool.checkedin(), engine.pool.checkedout()) == (0, 0)
        assert _traces(bridged) == before  # no case, no signature, no outbox row, the operation log untouched


def test_an_ack_worker_compiles_an_acks_statements_before_its_first_fork_and_keeps_nothing_of_the_rehearsal(bridged):
    """Every party's ack jobs ran the same three statements, each compiled in its horse; the parent rehearses an ack
    of an outbox row it writes itself, rolled back."""
    from portal.models import Outbox

    tables = ("outbox", "processed_message")
    before = _counts(bridged.portal_app, tables)
    with _worker_on_a_fresh_engine(bridged, bridged.portal_app, bridged.env["PORTAL_DATABASE_URL"], "ack:portal") as (
            _worker, engine):
        compiled = _compiled(engine, Outbox)
    for statement in ("INSERT INTO processed_message", "SELECT outbox.id", "UPDATE outbox SET state"):
        assert any(sql.startswith(statement) for sql in compiled), statement
    assert _counts(bridged.portal_app, tables) == before  # no outbox row, no processed message


def test_a_status_worker_compiles_a_status_jobs_statements_before_its_first_fork_and_keeps_nothing(bridged, caplog):
    """The portal's status jobs compiled each of their statements in their horse; the parent rehearses a status of
    an application it writes itself, rolled back."""
    from portal.models import Application, ApplicationEvent, Outbox

    tables = ("portal_account", "application", "application_event", "outbox", "processed_message")
    before = _counts(bridged.portal_app, tables)
    with _worker_on_a_fresh_engine(bridged, bridged.portal_app, bridged.env["PORTAL_DATABASE_URL"], "status") as (
            _worker, engine):
        compiled = _compiled(engine, Application, ApplicationEvent, Outbox)
    assert "rehearsal" not in caplog.text  # it ran to its end
    for statement in ("SELECT application.id", "UPDATE application SET", "INSERT INTO application_event",
                      "INSERT INTO outbox", "INSERT INTO processed_message"):
        assert any(sql.startswith(statement) for sql in compiled), statement
    assert _counts(bridged.portal_app, tables) == before  # no account, application, event, ack or processed message


def _counts(app, tables: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(_scalar_rows(app, f"SELECT count(*) FROM {table}")[0][0] for table in tables)


def _compiled(engine, *models) -> list[str]:
    """The SQL in the engine's compiled cache and in each model's mapper's (the ORM's inserts and updates)."""
    return [str(entry) for cache in (engine._compiled_cache, *(m.__mapper__._compiled_cache for m in models))
            for entry in cache.values()]
