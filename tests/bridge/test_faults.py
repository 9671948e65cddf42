"""Fault tests: Redis restarted empty, a work-horse killed once or every time (each on a redis-server of its own)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time

import pytest
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from core import clock
from tests.bridge.conftest import INTAKE, _process_children

REPUBLISH_AFTER = dt.timedelta(seconds=2)


def test_redis_restarted_empty_with_jobs_queued_delivers_everything_exactly_once_through_republish(bridged):
    ids = bridged.send("test.note", [{"n": i} for i in range(20)])
    published_at = clock.utcnow()
    assert bridged.relay(bridged.portal_app, now=published_at, republish_after=REPUBLISH_AFTER) == 20
    assert bridged.redis.client().llen(f"rq:queue:{INTAKE}") == 20

    bridged.redis.shutdown_nosave()
    bridged.redis.start()
    assert bridged.redis.client().dbsize() == 0  # every queued job is gone

    # Before the timeout nothing is republished; after it, the outbox puts every message back.
    assert bridged.relay(bridged.portal_app, now=published_at + dt.timedelta(seconds=1)) == 0
    assert bridged.relay(bridged.portal_app, now=published_at + REPUBLISH_AFTER, republish_after=REPUBLISH_AFTER) == 20
    bridged.run_burst("backoffice", INTAKE)
    assert bridged.effects() == (20, 20)  # the count oracle: all delivered, none twice
    assert {p.message_id for p in bridged.rows(bridged.bo_app, "processed")} == set(ids)

    # A republish that overtakes the acks (the worker was faster than the timeout) changes nothing either.
    bridged.redis.client().flushdb()
    assert bridged.relay(bridged.portal_app, now=published_at + dt.timedelta(seconds=30),
                         republish_after=REPUBLISH_AFTER) == 20
    bridged.run_burst("backoffice", INTAKE)
    assert bridged.effects() == (20, 20)
    assert len(bridged.rows(bridged.bo_app, "outbox")) == 40  # each delivery acknowledged


def test_a_work_horse_killed_mid_job_is_retried_within_seconds_and_takes_effect_once(bridged):
    [message_id] = bridged.send("test.note", [{"n": 1, "sleep": 3}])
    assert bridged.relay(bridged.portal_app) == 1
    worker = bridged.start_worker("backoffice", INTAKE)
    connection = bridged.redis.client()

    def started() -> bool:
        return Job.fetch(message_id, connection=connection, serializer=JSONSerializer).get_status() == JobStatus.STARTED

    bridged.wait_for(started, timeout=30, interval=0.1)
    time.sleep(1)  # inside the handler's sleep: the processed row is written, not committed
    horses = [pid for pid in _process_children(worker.pid) if os.getpgid(pid) == pid]
    assert len(horses) == 1, horses
    killed_at = time.monotonic()
    os.kill(horses[0], signal.SIGKILL)  # as the OOM killer would

    bridged.wait_for(lambda: bridged.effects() == (1, 1), timeout=60)
    recovered = time.monotonic() - killed_at
    print(f"\nwork-horse killed: applied {recovered:.1f} s later")
    assert bridged.effects() == (1, 1) and len(bridged.rows(bridged.bo_app, "processed")) == 1
    assert worker.poll() is None  # the worker itself lived on
    assert "Work-horse terminated unexpectedly" in bridged.worker_log(worker)
    assert bridged.rows(bridged.bo_app, "dead") == []


@pytest.mark.parametrize("bridge_settings", [{"BRIDGE_RETRY_INTERVALS": "0"}], indirect=True)
def test_a_message_that_kills_its_work_horse_every_time_is_dead_lettered_after_its_retries(bridged, bridge_settings):
    [crashing] = bridged.send("test.crash", [{}])
    good = bridged.send("test.note", [{"n": 1}])
    assert bridged.relay(bridged.portal_app) == 2
    bridged.run_burst("backoffice", INTAKE)
    [dead] = bridged.rows(bridged.bo_app, "dead")
    assert (dead.message_id, dead.reason) == (crashing, "retries_exhausted")
    assert "work-horse died" in dead.detail
    assert bridged.effects() == (1, 1)
    assert [p.message_id for p in bridged.rows(bridged.bo_app, "processed")] == good
