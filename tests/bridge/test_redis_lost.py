"""Fault (e): Redis restarted empty (``SHUTDOWN NOSAVE``) with jobs queued, started and failed.

Every message is delivered exactly once through the production relay's republish, long before
the republish timeout (5 minutes by default): the relay notices that its epoch key vanished while
messages waited for their acks, republishes them at once and writes an alert row.
"""

from __future__ import annotations

import pytest
from rq.registry import FailedJobRegistry, StartedJobRegistry
from sqlalchemy import select

from bridge.outbox import PUBLISHED
from bridge.queues import get_queue
from bridge.relay import REDIS_DATA_LOST, epoch_key
from tests.bridge.conftest import INTAKE, kill_tree
from tests.bridge.pipeline import all_delivered, consistency, oracle, start_relay, submit_many
from tests.bridge.tcpproxy import TcpProxy

# One retry at once: a delivery that fails twice is "failed" in rq within a second.
ONE_QUICK_RETRY = {"BRIDGE_RETRY_INTERVALS": "0"}
FAILED, LATER = 20, 80


def _alerts(app):
    with app.app_context():
        binding = app.extensions["bridge"]
        # The relay's event rows (the table also holds the watched conditions: bridge/alerting.py).
        rows = list(binding.session.execute(select(binding.alerts).where(binding.alerts.subject.is_(None))).scalars())
        binding.session.expunge_all()
        binding.session.rollback()
    return rows


@pytest.mark.parametrize("bridge_settings", [ONE_QUICK_RETRY], indirect=True)
def test_redis_restarted_empty_with_jobs_queued_started_and_failed_delivers_all_once_at_once_with_an_alert(
        bridged, card_pool, backoffice_db_url, bridge_settings):
    from sqlalchemy.engine import make_url

    start_relay(bridged, "portal")  # production timing: republish after 300 s
    connection = bridged.redis.client()
    queue = get_queue(INTAKE, connection)

    # Failed: a worker whose database is unreachable fails each of the first 20 deliveries twice.
    url = make_url(backoffice_db_url)
    dead_database = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    dead_database.cut()
    broken = bridged.start_worker("backoffice", INTAKE, cli=True, env={"BACKOFFICE_DATABASE_URL": url.set(
        host="127.0.0.1", port=dead_database.port).render_as_string(hide_password=False)})
    submit_many(bridged, card_pool, FAILED)
    bridged.wait_for(lambda: len(FailedJobRegistry(queue=queue)) == FAILED, timeout=90)
    kill_tree(broken)
    broken.wait(10)
    dead_database.close()

    # Queued and started: 80 more, published; a worker takes some, and Redis dies under it.
    submit_many(bridged, card_pool, LATER)
    bridged.wait_for(lambda: connection.llen(queue.key) == LATER, timeout=60)
    worker = bridged.start_worker("backoffice", INTAKE, cli=True)
    bridged.wait_for(lambda: oracle(bridged)[1] >= 5 and len(StartedJobRegistry(queue=queue)) >= 1, timeout=60,
                     interval=0.02)  # a job is running right now
    before = connection.get(epoch_key("portal"))
    assert before
    bridged.redis.shutdown_nosave()
    started_cases = oracle(bridged)[1]
    assert started_cases < LATER, "Redis was stopped too late to lose queued jobs"
    bridged.redis.start()  # the same port, nothing in it
    # The old epoch is gone with the data: the key is missing, or the relay (which may be quicker than this line)
    # has already marked the new server's replication id.
    assert bridged.redis.client().get(epoch_key("portal")) != before

    took = bridged.wait_for(lambda: all_delivered(bridged, FAILED + LATER), timeout=120, interval=0.5)
    print(f"\nRedis restarted empty with {started_cases} of {FAILED + LATER} delivered: "
          f"all delivered {took:.1f} s later (republish timeout 300 s)")
    total = FAILED + LATER
    assert oracle(bridged) == (total, total, total)  # exactly once: one case per application, no extras
    checks = consistency(bridged)
    assert checks == dict.fromkeys(checks, 0)
    assert worker.poll() is None  # the worker waited for Redis and went on

    [alert] = _alerts(bridged.portal_app)
    assert alert.kind == REDIS_DATA_LOST
    assert alert.messages == total  # nothing was acknowledged yet: every message was republished
    assert str(total) in alert.detail
    assert _alerts(bridged.bo_app) == []  # the back office's relay had published nothing

    listed = bridged.portal_app.test_cli_runner().invoke(args=["alerts"])
    assert listed.exit_code == 0, listed.output
    assert REDIS_DATA_LOST in listed.output and "1 alert(s) of portal." in listed.output
    outbox = bridged.rows(bridged.portal_app, "outbox")
    assert len(outbox) == total and {r.state for r in outbox} == {PUBLISHED}
