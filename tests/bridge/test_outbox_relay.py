"""The outbox and the relay: rows written in the caller's transaction, published once, republished until acked."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pytest
import redis
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy import select

from bridge.outbox import ACKNOWLEDGED, PENDING, PUBLISHED, add_message
from bridge.relay import backoff
from core import clock
from tests.bridge.conftest import BATCHES, BO_PARTY, INTAKE, queued_messages

TWO_S = dt.timedelta(seconds=2)


@pytest.fixture
def t0() -> dt.datetime:
    """A moment just after the test's rows were written (the relay is given its "now" explicitly)."""
    return clock.utcnow() + dt.timedelta(seconds=30)


def _queue_ids(bridged, name: str = INTAKE) -> list[str]:
    return [x.decode() for x in bridged.redis.client().lrange(f"rq:queue:{name}", 0, -1)]


def test_an_outbox_row_is_written_in_the_callers_transaction_and_a_rollback_leaves_none(bridged):
    from portal.extensions import db
    from portal.models import Outbox

    app = bridged.portal_app
    with app.app_context():
        keys = app.extensions["bridge"].keys()
        row = add_message(db.session, Outbox, message_type="test.note", recipient=BO_PARTY, payload={"n": 1},
                          keys=keys, sender="portal", queue=INTAKE)
        assert db.session.get(Outbox, row.id) is row  # flushed, visible in the transaction
        db.session.rollback()
        assert db.session.execute(select(Outbox)).first() is None
        kept = add_message(db.session, Outbox, message_type="test.note", recipient=BO_PARTY, payload={"n": 2},
                           keys=keys, sender="portal", queue=INTAKE)
        db.session.commit()
        assert (kept.state, kept.attempts, kept.queue) == (PENDING, 0, INTAKE)
        assert kept.next_attempt_at == kept.created_at
        with pytest.raises(ValueError, match="does not lead to"):
            add_message(db.session, Outbox, message_type="test.note", recipient=BO_PARTY, payload={},
                        keys=keys, sender="portal", queue="status")
    assert bridged.redis.client().dbsize() == 0  # nothing is enqueued before the relay runs


def test_the_relay_publishes_each_row_with_its_message_id_as_job_id_and_only_the_id_and_envelope(bridged, t0):
    ids = bridged.send("test.note", [{"n": 1}, {"n": 2}])
    assert bridged.relay(bridged.portal_app, now=t0) == 2
    assert _queue_ids(bridged) == ids
    connection = bridged.redis.client()
    rows = {r.id: r for r in bridged.rows(bridged.portal_app, "outbox")}
    for message_id in ids:
        job = Job.fetch(message_id, connection=connection, serializer=JSONSerializer)
        assert job.func_name == "bridge.jobs.deliver.deliver"
        assert job.args == [message_id, rows[message_id].envelope] and job.kwargs == {}
        assert job.description == f"deliver {message_id}"
        assert job.retries_left == 5 and job.timeout == 120
        row = rows[message_id]
        assert (row.state, row.attempts, row.published_at) == (PUBLISHED, 1, t0)
        assert row.next_attempt_at == t0 + dt.timedelta(minutes=5)


def test_a_second_relay_run_does_not_enqueue_a_message_whose_job_is_still_waiting(bridged, t0):
    [message_id] = bridged.send("test.note", [{"n": 1}])
    assert bridged.relay(bridged.portal_app, now=t0, republish_after=TWO_S) == 1
    assert bridged.relay(bridged.portal_app, now=t0 + dt.timedelta(seconds=1), republish_after=TWO_S) == 0
    # Due again, but rq still holds the queued job: it is not duplicated.
    assert bridged.relay(bridged.portal_app, now=t0 + dt.timedelta(seconds=3), republish_after=TWO_S) == 0
    assert _queue_ids(bridged) == [message_id]
    [row] = bridged.rows(bridged.portal_app, "outbox")
    assert row.attempts == 1 and row.next_attempt_at == t0 + dt.timedelta(seconds=5)


def test_unacknowledged_rows_are_republished_after_the_timeout_with_backoff_and_never_deleted(bridged, t0):
    [message_id] = bridged.send("test.note", [{"n": 1}])
    connection = bridged.redis.client()
    now, expected_next = t0, []
    for attempt in range(1, 6):
        assert bridged.relay(bridged.portal_app, now=now, republish_after=TWO_S,
                             max_backoff=dt.timedelta(seconds=10)) == 1
        [row] = bridged.rows(bridged.portal_app, "outbox")
        assert (row.state, row.attempts) == (PUBLISHED, attempt)
        wait = row.next_attempt_at - now
        expected_next.append(wait)
        assert bridged.relay(bridged.portal_app, now=now + wait - dt.timedelta(milliseconds=1),
                             republish_after=TWO_S) == 0  # not before the timeout
        connection.flushdb()  # the message is lost in Redis (as after a restart): only the outbox has it
        now += wait
    assert expected_next == [dt.timedelta(seconds=s) for s in (2, 4, 8, 10, 10)]
    assert [r.id for r in bridged.rows(bridged.portal_app, "outbox")] == [message_id]
    assert backoff(30, base=dt.timedelta(minutes=5), cap=dt.timedelta(hours=1)) == dt.timedelta(hours=1)


def test_acknowledged_rows_and_published_acks_are_never_republished(bridged, t0):
    from portal.extensions import db
    from portal.models import Outbox

    acked, unacked = bridged.send("test.note", [{"n": 1}, {"n": 2}])
    assert bridged.relay(bridged.portal_app, now=t0, republish_after=TWO_S) == 2
    with bridged.portal_app.app_context():
        row = db.session.get(Outbox, acked)
        row.state, row.acknowledged_at = ACKNOWLEDGED, t0
        ack = add_message(db.session, Outbox, message_type="ack", recipient=BO_PARTY,
                          payload={"message_id": unacked}, keys=bridged.portal_app.extensions["bridge"].keys(),
                          sender="portal", queue=f"ack:{BO_PARTY}")
        db.session.commit()
        ack_id = ack.id
    bridged.redis.client().flushdb()
    later = clock.utcnow() + dt.timedelta(hours=2)
    assert bridged.relay(bridged.portal_app, now=later, republish_after=TWO_S) == 2  # unacked + the new ack
    bridged.redis.client().flushdb()
    assert bridged.relay(bridged.portal_app, now=later + dt.timedelta(hours=2), republish_after=TWO_S) == 1
    assert _queue_ids(bridged) == [unacked]
    states = {r.id: (r.state, r.attempts) for r in bridged.rows(bridged.portal_app, "outbox")}
    assert states == {acked: (ACKNOWLEDGED, 1), unacked: (PUBLISHED, 3), ack_id: (PUBLISHED, 1)}


def test_two_relays_at_once_on_postgresql_publish_each_row_once(bridged, t0):
    from bridge.relay import relay_once

    ids = set(bridged.send("test.note", [{"n": i} for i in range(120)]))
    start = threading.Barrier(2)
    counts: list[int] = []
    errors: list[BaseException] = []

    def relay_until_empty() -> None:
        try:
            app = bridged.portal_app
            binding = app.extensions["bridge"]
            connection = bridged.redis.client()
            total = 0
            with app.app_context():
                start.wait()
                while True:
                    n = relay_once(binding.session, binding.outbox, connection, now=t0 + dt.timedelta(seconds=1),
                                   batch=10)
                    binding.session.commit()
                    if n == 0:
                        break
                    total += n
            counts.append(total)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=relay_until_empty) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sum(counts) == 120 and all(c > 0 for c in counts), counts  # both worked, together once each
    queued = queued_messages(bridged.redis.client(), INTAKE)  # in batch jobs of up to 10: the default policy
    assert len(queued) == 120 and set(queued) == ids and len(_queue_ids(bridged)) < 120
    assert {r.attempts for r in bridged.rows(bridged.portal_app, "outbox")} == {1}


def test_with_redis_down_the_relay_fails_loudly_and_the_rows_stay_pending(bridged, t0):
    bridged.send("test.note", [{"n": 1}])
    bridged.redis.stop()
    with pytest.raises(redis.ConnectionError):
        bridged.relay(bridged.portal_app, now=t0)
    [row] = bridged.rows(bridged.portal_app, "outbox")
    assert (row.state, row.attempts) == (PENDING, 0)
    result = bridged.portal_app.test_cli_runner().invoke(args=["relay", "--once"])
    assert result.exit_code == 2 and "nothing was lost" in result.output


def test_the_relay_command_publishes_and_says_how_many(bridged):
    bridged.send("test.note", [{"n": 1}, {"n": 2}, {"n": 3}])
    result = bridged.portal_app.test_cli_runner().invoke(args=["relay", "--once"])
    assert result.exit_code == 0, result.output
    assert "Published 3 message(s)." in result.output
    assert len(_queue_ids(bridged)) == 3


@pytest.mark.parametrize("bridge_settings", [{**BATCHES, "BRIDGE_DELIVERY_HOLD_SECONDS": "0.5"}], indirect=True)
def test_while_jobs_wait_on_a_queue_its_new_rows_are_held_until_a_batch_is_full_or_the_hold_ends(bridged):
    from bridge.relay import DeliveryPolicy, relay_pass

    app = bridged.portal_app
    first = bridged.send("test.note", [{"n": 0}])
    assert bridged.relay(app) == 1  # nothing waits on the queue: published at once

    def relay(now: dt.datetime):
        with app.app_context():
            binding = app.extensions["bridge"]
            done = relay_pass(binding.session, binding.outbox, bridged.redis.client(), now=now,
                              policy=DeliveryPolicy.from_settings(binding.settings()))
            binding.session.commit()
        return done.published, done.held

    three = bridged.send("test.note", [{"n": i} for i in range(1, 4)])
    created = max(r.created_at for r in bridged.rows(app, "outbox"))
    assert relay(created) == (0, 3)  # the first one's job still waits: these wait in the outbox
    assert queued_messages(bridged.redis.client(), INTAKE) == first
    assert relay(created + dt.timedelta(seconds=0.6)) == (3, 0)  # held long enough: one batch of three
    assert queued_messages(bridged.redis.client(), INTAKE) == first + three

    ten = bridged.send("test.note", [{"n": i} for i in range(4, 14)])
    assert relay(max(r.created_at for r in bridged.rows(app, "outbox"))) == (10, 0)  # a full batch goes at once
    assert queued_messages(bridged.redis.client(), INTAKE) == first + three + ten


@pytest.mark.parametrize("bridge_settings", [BATCHES], indirect=True)
def test_first_publications_to_one_queue_share_a_batch_job_and_a_republication_goes_alone(bridged, t0):
    from bridge.relay import DELIVER_BATCH, ON_FAILURE

    ids = bridged.send("test.note", [{"n": i} for i in range(12)])
    assert bridged.relay(bridged.portal_app, now=t0) == 12
    connection = bridged.redis.client()
    first, second = (Job.fetch(j, connection=connection, serializer=JSONSerializer) for j in _queue_ids(bridged))
    rows = {r.id: r for r in bridged.rows(bridged.portal_app, "outbox")}
    assert first.func_name == second.func_name == DELIVER_BATCH and first.kwargs == {}
    assert first.args == [[[m, rows[m].envelope] for m in ids[:10]]] and [m for m, _ in second.args[0]] == ids[10:]
    assert first.description == "deliver 10 messages" and first.timeout == 120
    assert not first.retries_left and first._failure_callback_name == ON_FAILURE  # split on failure, not retried
    assert {(r.state, r.attempts, r.job_id) for r in rows.values() if r.id in ids[:10]} == {(PUBLISHED, 1, first.id)}

    # Due again while its batch still waits: the batch is found, nothing is enqueued twice.
    later = t0 + dt.timedelta(minutes=6)
    assert bridged.relay(bridged.portal_app, now=later) == 0
    assert len(_queue_ids(bridged)) == 2

    # Redis lost the batch: each message goes again alone, under its own id.
    connection.delete(first.key)
    connection.lrem(f"rq:queue:{INTAKE}", 0, first.id)
    assert bridged.relay(bridged.portal_app, now=later + dt.timedelta(minutes=10)) == 10
    assert _queue_ids(bridged)[1:] == ids[:10]
    assert {r.job_id for r in bridged.rows(bridged.portal_app, "outbox") if r.id in ids[:10]} == {None}


def test_on_sqlite_a_second_relay_is_refused(tmp_path, redis_server, bridge_keys):
    from backoffice import create_app
    from bridge.relay import RelayLocked, _lock_single_relay, run_relay
    from tests.conftest import SECRETS, migrate

    config = {"APP_ENV": "test", "BACKOFFICE_DATABASE_URL": f"sqlite:///{tmp_path / 'bo.db'}", **SECRETS,
              "REDIS_URL": redis_server.url, "BRIDGE_KEY_DIRECTORY": str(bridge_keys.directory),
              "INSTANCE_PATH": str(tmp_path)}
    migrate(create_app, config)
    app = create_app(config)
    assert run_relay(app, once=True) == 0  # alone, it runs
    held = _lock_single_relay(app, BO_PARTY)
    try:
        with pytest.raises(RelayLocked, match="only one relay"):
            run_relay(app, once=True)
        result = app.test_cli_runner().invoke(args=["relay", "--once"])
        assert result.exit_code == 2 and "only one relay may run" in result.output
    finally:
        held.close()
    app.extensions["engine"].dispose()


def test_outbox_rows_hold_only_ciphertext(bridged):
    bridged.send("test.note", [{"marker": "宮沢　賢 岩手県花巻市"}])
    [row] = bridged.rows(bridged.portal_app, "outbox")
    assert "宮沢" not in row.envelope and "花巻" not in json.dumps(row.envelope, ensure_ascii=False)
    assert row.envelope.count(".") == 4


@pytest.mark.parametrize("bridge_settings", [{"BRIDGE_RELAY_INTERVAL_SECONDS": "60"}], indirect=True)
def test_a_committed_outbox_row_wakes_the_relay_at_once_instead_of_waiting_for_its_next_pass(bridged, bridge_settings):
    """PostgreSQL notifies the relays when a transaction that wrote outbox rows commits (bridge.notify)."""
    from bridge.relay import run_relay

    stop = threading.Event()
    relay = threading.Thread(target=run_relay, args=(bridged.portal_app,), kwargs={"stop": stop}, daemon=True)
    relay.start()
    try:
        [first] = bridged.send("test.note", [{"n": 1}])
        bridged.wait_for(lambda: first in _queue_ids(bridged), timeout=30)  # its first pass, or woken
        time.sleep(0.5)  # the relay is waiting now, for 60 s without a notification
        [second] = bridged.send("test.note", [{"n": 2}])
        took = bridged.wait_for(lambda: second in _queue_ids(bridged), timeout=10, interval=0.05)
        print(f"\npublished {took:.2f} s after its commit")
        assert _queue_ids(bridged) == [first, second]
    finally:
        stop.set()
        relay.join(10)
    assert not relay.is_alive()  # a stop ends the wait within a fraction of a second


@pytest.mark.parametrize("bridge_settings", [{"BRIDGE_RELAY_INTERVAL_SECONDS": "60", **BATCHES,
                                              "BRIDGE_DELIVERY_HOLD_SECONDS": "0", "BRIDGE_RELAY_GATHER_SECONDS": "1"}],
                         indirect=True)
def test_rows_committed_soon_after_a_pass_wait_for_the_gather_time_and_leave_together(bridged, bridge_settings):
    """Under load a pass per commit would cost the relay a pass per application and the workers a job each."""
    from bridge.relay import run_relay

    stop = threading.Event()
    relay = threading.Thread(target=run_relay, args=(bridged.portal_app,), kwargs={"stop": stop}, daemon=True)
    relay.start()
    client = bridged.redis.client()
    try:
        [first] = bridged.send("test.note", [{"n": 1}])
        bridged.wait_for(lambda: first in queued_messages(client, INTAKE), timeout=30, interval=0.02)
        [second] = bridged.send("test.note", [{"n": 2}])  # wakes the relay well within the gather time
        time.sleep(0.3)
        [third] = bridged.send("test.note", [{"n": 3}])  # a commit of its own, 0.3 s later
        bridged.wait_for(lambda: third in queued_messages(client, INTAKE), timeout=10, interval=0.02)
        # One pass took both: they share a job (first publications to one queue in one pass).
        jobs = client.lrange(f"rq:queue:{INTAKE}", 0, -1)
        assert len(jobs) == 2 and queued_messages(client, INTAKE) == [first, second, third]
    finally:
        stop.set()
        relay.join(10)
    assert not relay.is_alive()


@pytest.mark.parametrize(("name", "value"), [("BRIDGE_DELIVERY_BATCH", "0"), ("BRIDGE_DELIVERY_BATCH", "51"),
                                             ("BRIDGE_DELIVERY_HOLD_SECONDS", "-1"),
                                             ("BRIDGE_DELIVERY_HOLD_SECONDS", "6"),
                                             ("BRIDGE_RELAY_GATHER_SECONDS", "-0.1"),
                                             ("BRIDGE_RELAY_GATHER_SECONDS", "1.5")])
def test_a_batch_size_hold_or_gather_time_out_of_range_stops_the_app_naming_the_setting(name, value):
    from bridge.settings import BridgeSettings
    from core.config import ConfigError

    with pytest.raises(ConfigError, match=name):
        BridgeSettings.from_config({name: value})
    assert BridgeSettings.from_config({}).delivery_batch == 10  # the default: a batch is at most ten
