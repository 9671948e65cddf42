"""A worker process lives through a Redis restart, and stops cleanly on SIGTERM whether idle or after Redis left."""

from __future__ import annotations

import signal

import pytest

from tests.bridge.conftest import INTAKE


def _listening(bridged, worker) -> bool:
    return bridged.worker_log(worker).count("Listening on") >= 1


def test_a_sigterm_while_the_worker_starts_its_scheduler_is_a_clean_stop(bridged):
    """rq logs "Listening on" before it installs its signal handlers; a stop in between must still be clean."""
    from rq import Worker

    worker = bridged.start_worker("backoffice", INTAKE, env={"TEST_WORKER_SLOW_SCHEDULER_START": "3"})
    bridged.wait_for(lambda: "scheduler starting" in bridged.worker_log(worker), timeout=60)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0, bridged.worker_log(worker)
    assert "stopping on request" in bridged.worker_log(worker)
    assert Worker.all(connection=bridged.redis.client()) == [], "a stopped worker must not stay registered"


def test_a_worker_waits_for_redis_to_come_back_and_goes_on_with_the_same_process(bridged):
    worker = bridged.start_worker("backoffice", INTAKE)
    bridged.wait_for(lambda: _listening(bridged, worker), timeout=60)
    bridged.redis.shutdown_nosave()
    bridged.redis.start()
    ids = bridged.send("test.note", [{"n": 1}, {"n": 2}])
    assert bridged.relay(bridged.portal_app) == 2
    bridged.wait_for(lambda: bridged.effects() == (2, 2), timeout=90)
    assert worker.poll() is None  # the same process, not one started by a supervisor
    assert {p.message_id for p in bridged.rows(bridged.bo_app, "processed")} == set(ids)

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0, bridged.worker_log(worker)


def test_an_idle_worker_stops_on_sigterm(bridged):
    worker = bridged.start_worker("backoffice", INTAKE, cli=True)
    bridged.wait_for(lambda: _listening(bridged, worker), timeout=60)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0, bridged.worker_log(worker)
    assert "starts again" not in bridged.worker_log(worker)


def test_redis_going_away_while_a_worker_gets_ready_or_registers_does_not_end_the_process(bridged, monkeypatch):
    """Redis went away while the worker got ready (its rehearsal, slow on a loaded host), or answered the worker's
    wait and then refused the new rq worker's first command: the process waits instead of dying, which had left
    the intake queue with no worker."""
    import redis

    from bridge import worker as bridge_worker

    made: list[str] = []
    waits: list[float] = []

    class Lost:
        name, _stop_requested, connection = "lost", False, None

        def work(self, **_):
            raise redis.ConnectionError("Redis went away under the worker")

    class Stopped:
        name, _stop_requested = "stopped", True

        def work(self, **_):
            return True

    def make_worker(app, queue, *, name=None):
        made.append(queue)
        if len(made) in (1, 3):  # Redis went away while the worker got ready, and again later
            raise redis.ConnectionError("Error 111 connecting: Connection refused")
        if len(made) == 2:
            return Lost()
        return Stopped()

    monkeypatch.setattr(bridge_worker, "make_worker", make_worker)
    monkeypatch.setattr(bridge_worker, "_wait_for_redis", lambda connection, first_wait=1.0: waits.append(first_wait)
                        or True)
    assert bridge_worker.run_worker(bridged.bo_app, INTAKE) is True
    assert made == [INTAKE] * 4 and len(waits) == 3  # it waited for Redis after each loss, and went on


def test_a_stop_whose_redis_teardown_breaks_still_ends_the_process_cleanly(bridged, monkeypatch):
    """After Redis came back, rq's teardown on SIGTERM unsubscribed on the connection its pubsub thread was
    closing and raised "I/O operation on closed file": the worker stopped with status 1, as if it had crashed."""
    from bridge import worker as bridge_worker

    class Stopping:
        name, _stop_requested, connection = "stopping", False, None

        def work(self, **_):
            self._stop_requested = True  # SIGTERM, then rq's teardown
            raise ValueError("I/O operation on closed file.")

    class Crashing(Stopping):
        def work(self, **_):
            raise ValueError("a bug, not a stop")

    monkeypatch.setattr(bridge_worker, "make_worker", lambda app, queue, *, name=None: Stopping())
    assert bridge_worker.run_worker(bridged.bo_app, INTAKE) is False  # returned: a clean stop
    monkeypatch.setattr(bridge_worker, "make_worker", lambda app, queue, *, name=None: Crashing())
    with pytest.raises(ValueError, match="a bug"):  # without a stop, an error still ends the worker loudly
        bridge_worker.run_worker(bridged.bo_app, INTAKE)
