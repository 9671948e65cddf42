"""The relay's epoch key: Redis losing its data is noticed at once and alerted; a fresh start or a live Redis is not."""

from __future__ import annotations

from sqlalchemy import select, update

from bridge.outbox import ACKNOWLEDGED
from bridge.relay import REDIS_DATA_LOST, epoch_claim_key, epoch_key, run_relay
from tests.bridge.conftest import INTAKE


def _alerts(app):
    with app.app_context():
        binding = app.extensions["bridge"]
        # The relay's event rows (the table also holds the watched conditions: bridge/alerting.py).
        rows = [(a.kind, a.messages) for a in binding.session.execute(
            select(binding.alerts).where(binding.alerts.subject.is_(None))).scalars()]
        binding.session.rollback()
    return rows


def test_a_relay_republishes_at_once_and_alerts_when_redis_lost_its_data_but_not_on_a_fresh_start(bridged):
    app = bridged.portal_app
    connection = bridged.redis.client()
    assert run_relay(app, once=True) == 0  # a fresh Redis, nothing published yet: no alert
    assert connection.exists(epoch_key("portal")) and _alerts(app) == []

    ids = bridged.send("test.note", [{"n": i} for i in range(3)])
    assert run_relay(app, once=True) == 3
    assert run_relay(app, once=True) == 0  # Redis kept everything: nothing again, no alert
    with app.app_context():
        binding = app.extensions["bridge"]
        binding.session.execute(update(binding.outbox).where(binding.outbox.id == ids[0]).values(state=ACKNOWLEDGED))
        binding.session.commit()
    bridged.send("test.note", [{"n": 3}])  # still pending: published in the normal way, not counted as lost

    connection.flushdb()  # as after a restart without persistence
    assert run_relay(app, once=True) == 3  # the two unacknowledged at once (republish timeout: 5 min), the new one
    assert _alerts(app) == [(REDIS_DATA_LOST, 2)]
    assert connection.llen(f"rq:queue:{INTAKE}") == 3
    assert run_relay(app, once=True) == 0 and _alerts(app) == [(REDIS_DATA_LOST, 2)]  # alerted once

    listed = app.test_cli_runner().invoke(args=["alerts", "--limit", "5"])
    assert listed.exit_code == 0 and f"\t{REDIS_DATA_LOST}\t\t1\topen\t2\t" in listed.output


def test_of_two_relays_noticing_the_loss_at_once_one_republishes_and_alerts_and_the_other_only_publishes(bridged):
    app = bridged.portal_app
    connection = bridged.redis.client()
    bridged.send("test.note", [{"n": i} for i in range(2)])
    assert run_relay(app, once=True) == 2
    connection.flushdb()
    bridged.send("test.note", [{"n": 2}])
    # Another relay of the portal has noticed first and holds the claim while it republishes.
    connection.set(epoch_claim_key("portal"), "other", ex=60)
    assert run_relay(app, once=True) == 1  # only the new message; the lost ones are the other relay's
    assert _alerts(app) == [] and not connection.exists(epoch_key("portal"))
    # That relay died before it was done: its claim runs out and the next pass does the work, once.
    connection.delete(epoch_claim_key("portal"))
    assert run_relay(app, once=True) == 2  # the two lost ones; the new one is still queued, so not again
    assert _alerts(app) == [(REDIS_DATA_LOST, 3)]  # three were waiting for their ack
    assert connection.llen(f"rq:queue:{INTAKE}") == 3
    assert connection.exists(epoch_key("portal")) and not connection.exists(epoch_claim_key("portal"))
    assert run_relay(app, once=True) == 0 and len(_alerts(app)) == 1
