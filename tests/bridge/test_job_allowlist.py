"""Anyone who can write to the bridge's Redis must not run code in a worker of the apps.

rq imports and calls whatever function (and callbacks) a job names. These tests put hand-crafted
jobs on a back office's intake queue, as an attacker holding the portal's Redis credentials could,
and run the real ``flask worker``: a job naming anything but the bridge's delivery function, a
callback other than the bridge's own failure callback, or a dependency is refused before anything
is imported, logged by job id only and left in rq's failed registry, never run.
"""

from __future__ import annotations

import http.server
import secrets
import threading
import uuid
from pathlib import Path
from typing import Any

from rq import Callback
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer
from rq.webhook import Webhook

from bridge.queues import get_queue
from bridge.relay import DELIVER, DELIVER_BATCH, ON_FAILURE
from tests.bridge.conftest import INTAKE


class Trap:
    """A module that leaves a file behind when it is imported, and another when its function is called."""

    def __init__(self, tmp_path: Path) -> None:
        self.name = f"trap_{secrets.token_hex(4)}"
        self.directory = tmp_path / "trap"
        self.directory.mkdir()
        self.imported = tmp_path / "trap-imported"
        self.called = tmp_path / "trap-called"
        (self.directory / f"{self.name}.py").write_text(
            "from pathlib import Path\n"
            f"Path({str(self.imported)!r}).touch()\n"
            "def spring(*args, **kwargs):\n"
            f"    Path({str(self.called)!r}).touch()\n")

    @property
    def function(self) -> str:
        """The dotted name of the trap's function."""
        return f"{self.name}.spring"

    def env(self, bridged: Any) -> dict[str, str]:
        """The worker's environment, with the trap importable (as any module on the worker's path is)."""
        return {"PYTHONPATH": f"{self.directory}:{bridged.env.get('PYTHONPATH', '')}".rstrip(":")}

    def sprung(self) -> list[str]:
        """What the trap left behind."""
        return [p.name for p in (self.imported, self.called) if p.exists()]


def _run_worker(bridged: Any, trap: Trap) -> str:
    """Run the back office's real ``flask worker`` on the intake queue until it is empty; its log."""
    process = bridged.start_worker("backoffice", INTAKE, burst=True, cli=True, env=trap.env(bridged))
    log = ""
    try:
        process.wait(60)
    finally:
        log = bridged.worker_log(process)
    assert process.returncode == 0, log
    return log


def _failed(bridged: Any) -> list[str]:
    connection = bridged.redis.client()
    return FailedJobRegistry(INTAKE, connection=connection, serializer=JSONSerializer).get_job_ids()


def _status(bridged: Any, job_id: str) -> Any:
    return Job.fetch(job_id, connection=bridged.redis.client(), serializer=JSONSerializer).get_status()


def test_a_job_naming_another_function_is_refused_before_import_and_never_runs(bridged, tmp_path):
    trap = Trap(tmp_path)
    touched = tmp_path / f"pwned-{secrets.token_hex(4)}"
    marker = f"ARGS-{secrets.token_hex(6)}"
    queue = get_queue(INTAKE, bridged.redis.client())
    shell = str(uuid.uuid4())
    queue.enqueue_call("subprocess.run", args=[["sh", "-c", f"touch {touched} # {marker}"]], job_id=shell)
    imported = str(uuid.uuid4())
    queue.enqueue_call(trap.function, args=[marker], kwargs={"note": marker}, job_id=imported)

    log = _run_worker(bridged, trap)

    assert not touched.exists(), "a job naming subprocess.run ran a shell command in the worker"
    assert trap.sprung() == [], f"the worker imported or called a function a job named: {trap.sprung()}"
    assert sorted(_failed(bridged)) == sorted([shell, imported])
    assert {_status(bridged, shell), _status(bridged, imported)} == {JobStatus.FAILED}
    assert queue.count == 0
    assert shell in log and imported in log
    assert marker not in log, "the worker logged a refused job's arguments"
    assert "refused" in log


def test_a_job_with_a_foreign_success_or_failure_callback_is_refused_and_nothing_is_imported(bridged, tmp_path):
    trap = Trap(tmp_path)
    marker = f"ARGS-{secrets.token_hex(6)}"
    queue = get_queue(INTAKE, bridged.redis.client())
    # The delivery function itself, with an envelope it dead-letters (the job ends normally): success callback.
    on_success = str(uuid.uuid4())
    queue.enqueue_call(DELIVER, args=[str(uuid.uuid4()), marker], job_id=on_success,
                       on_success=Callback(trap.function), on_failure=Callback(ON_FAILURE))
    # Without its arguments the delivery function raises: failure callback.
    on_failure = str(uuid.uuid4())
    queue.enqueue_call(DELIVER, args=[], job_id=on_failure, on_failure=Callback(trap.function))
    on_stopped = str(uuid.uuid4())
    queue.enqueue_call(DELIVER, args=[str(uuid.uuid4()), marker], job_id=on_stopped,
                       on_stopped=Callback(trap.function))

    log = _run_worker(bridged, trap)

    assert trap.sprung() == [], f"the worker imported or called a callback a job named: {trap.sprung()}"
    assert sorted(_failed(bridged)) == sorted([on_success, on_failure, on_stopped])
    assert bridged.rows(bridged.bo_app, "dead") == [], "a refused job was run (its envelope was dead-lettered)"
    assert all(job_id in log for job_id in (on_success, on_failure, on_stopped))
    assert marker not in log


def test_a_job_naming_webhooks_is_refused_and_nothing_is_sent(bridged):
    calls: list[str] = []

    class Listener(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            calls.append(self.path)
            self.send_response(204)
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Listener)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    job_id = str(uuid.uuid4())
    # The delivery function with an envelope it dead-letters: the job would end "finished", then "failed" below.
    get_queue(INTAKE, bridged.redis.client()).enqueue_call(
        DELIVER, args=[str(uuid.uuid4()), "x"], job_id=job_id,
        webhooks=[Webhook(url, "finished"), Webhook(url, "failed", method="POST")])
    try:
        process = bridged.start_worker("backoffice", INTAKE, burst=True, cli=True)
        assert process.wait(60) == 0, bridged.worker_log(process)
    finally:
        server.shutdown()
        server.server_close()
    assert calls == [], "the worker called a webhook a job named"
    assert _failed(bridged) == [job_id]


def test_a_job_with_a_dependency_is_refused(bridged):
    [message_id] = bridged.send("test.note", [{"n": 1}])
    envelope = next(r.envelope for r in bridged.rows(bridged.portal_app, "outbox") if r.id == message_id)
    connection = bridged.redis.client()
    queue = get_queue(INTAKE, connection)
    # Put on the queue by hand, as rq would once a dependency finished: the job names its dependency.
    job = Job.create(DELIVER, args=[message_id, envelope], id=message_id, connection=connection,
                     serializer=JSONSerializer, origin=INTAKE, depends_on=[str(uuid.uuid4())],
                     on_failure=Callback(ON_FAILURE))
    job.set_status(JobStatus.QUEUED, pipeline=None)
    job.save()
    queue.push_job_id(job.id)

    process = bridged.start_worker("backoffice", INTAKE, burst=True)  # with the test handlers: test.note
    assert process.wait(60) == 0, bridged.worker_log(process)

    assert bridged.effects() == (0, 0), "a job with a dependency ran"
    assert _failed(bridged) == [message_id]
    assert message_id in bridged.worker_log(process)


def test_a_batch_job_the_relay_would_never_make_is_refused_before_it_runs(bridged):
    ids = bridged.send("test.note", [{"n": i} for i in range(51)])
    envelopes = {r.id: r.envelope for r in bridged.rows(bridged.portal_app, "outbox")}
    pairs = [[m, envelopes[m]] for m in ids]
    queue = get_queue(INTAKE, bridged.redis.client())
    crafted = {
        "too many": [pairs],  # more messages than any batch (50)
        "one message": [pairs[:1]],
        "a message twice": [[pairs[0], pairs[0], pairs[1]]],
        "not a pair": [[pairs[0], [pairs[1][0], pairs[1][1], "extra"]]],
        "not strings": [[pairs[0], [pairs[1][0], {"envelope": pairs[1][1]}]]],
        "two lists": [pairs[:2], pairs[2:4]],
    }
    jobs = {what: queue.enqueue_call(DELIVER_BATCH, args=args, on_failure=Callback(ON_FAILURE)).id
            for what, args in crafted.items()}

    process = bridged.start_worker("backoffice", INTAKE, burst=True)
    assert process.wait(60) == 0, bridged.worker_log(process)

    assert bridged.effects() == (0, 0), "a batch the relay never makes was run"
    assert sorted(_failed(bridged)) == sorted(jobs.values())
    assert bridged.worker_log(process).count("its arguments are not a batch of deliveries") == len(crafted)
    assert queue.count == 0 and len(get_queue(INTAKE, bridged.redis.client()).get_job_ids()) == 0


def test_a_delivery_job_as_the_relay_enqueues_it_still_runs(bridged):
    bridged.send("test.note", [{"n": 1}])
    assert bridged.relay(bridged.portal_app) == 1
    bridged.run_burst("backoffice", INTAKE)
    assert bridged.effects() == (1, 1)
    assert _failed(bridged) == []


def test_a_job_record_rq_cannot_read_is_refused_and_the_worker_goes_on_delivering(bridged):
    """A record with a bad field made rq's dequeue raise: the worker quit, and the id stayed in progress for ever.

    Its restarted successor found it again at its first maintenance and quit again, so one hand-written
    record in Redis stopped a city's intake. A record too large to decompress is refused the same way.
    """
    import zlib

    connection = bridged.redis.client()
    queue = get_queue(INTAKE, connection)
    unreadable = {}
    for field, value in (("status", "bogus"), ("created_at", "yesterday"), ("timeout", "forever"),
                         ("data", zlib.compress(b"[" * (64 * 1024 * 1024)))):
        job_id = str(uuid.uuid4())
        job = Job.create(DELIVER, args=[str(uuid.uuid4()), "x"], id=job_id, connection=connection,
                         serializer=JSONSerializer, origin=INTAKE)
        job.set_status(JobStatus.QUEUED, pipeline=None)
        job.save()
        connection.hset(job.key, field, value)
        queue.push_job_id(job_id)
        unreadable[field] = job_id
    bridged.send("test.note", [{"n": 1}])
    assert bridged.relay(bridged.portal_app) == 1  # a real delivery waits behind them

    process = bridged.start_worker("backoffice", INTAKE, burst=True)  # with the test handlers: test.note
    assert process.wait(120) == 0, bridged.worker_log(process)
    log = bridged.worker_log(process)

    assert bridged.effects() == (1, 1), f"the delivery behind unreadable records never ran: {log[-2000:]}"
    assert sorted(_failed(bridged)) == sorted(unreadable.values())
    assert connection.lrange(queue.intermediate_queue_key, 0, -1) == [], "an unreadable job stayed in progress"
    assert all(job_id in log for job_id in unreadable.values())
