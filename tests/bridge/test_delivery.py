"""Delivery by real rq workers: once-only effects, acks, refusals and poison messages in the dead-letter table."""

from __future__ import annotations

import datetime as dt
import json
import signal
import uuid
import zlib

import pytest
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from bridge.outbox import ACKNOWLEDGED, PENDING
from bridge.queues import get_queue
from bridge.relay import DELIVER, DELIVER_BATCH, ON_FAILURE
from core import clock
from core.envelope import KeyRegistry, seal
from tests.bridge.conftest import BATCHES, BO_PARTY, INTAKE
from tests.factories import my_number

FAR_FUTURE = dt.timedelta(days=1)


def _enqueue(bridged, job_id: str, message_id: str, envelope: str) -> None:
    """Put a delivery job on the intake queue directly, as a duplicate publish or an attacker with Redis would."""
    from rq import Callback, Retry

    get_queue(INTAKE, bridged.redis.client()).enqueue_call(
        DELIVER, args=(message_id, envelope), job_id=job_id, description=f"deliver {message_id}",
        retry=Retry(max=1, interval=[0]), on_failure=Callback(ON_FAILURE))


def _envelope(bridged, message_id: str) -> str:
    return next(r.envelope for r in bridged.rows(bridged.portal_app, "outbox") if r.id == message_id)


@pytest.mark.sqlite
@pytest.mark.parametrize("bridge_settings", [{}, BATCHES], ids=["alone", "batched"], indirect=True)
def test_a_message_takes_effect_once_and_its_ack_marks_the_senders_row_acknowledged(bridged, bridge_settings):
    ids = bridged.send("test.note", [{"n": 1}, {"n": 2}])
    assert bridged.relay(bridged.portal_app) == 2
    bridged.run_burst("backoffice", INTAKE)

    assert bridged.effects() == (2, 2)
    processed = bridged.rows(bridged.bo_app, "processed")
    assert {(p.message_id, p.message_type, p.sender) for p in processed} == {(i, "test.note", "portal") for i in ids}
    acks = bridged.rows(bridged.bo_app, "outbox")
    assert {(a.message_type, a.recipient, a.queue, a.state) for a in acks} == {("ack", "portal", "ack:portal", PENDING)}
    assert len(acks) == 2

    # The back office's relay carries the acks; the portal's own `flask worker` applies them.
    assert bridged.relay(bridged.bo_app) == 2
    bridged.run_burst("portal", "ack:portal", cli=True)
    rows = {r.id: r for r in bridged.rows(bridged.portal_app, "outbox")}
    assert all(rows[i].state == ACKNOWLEDGED and rows[i].acknowledged_at is not None for i in ids)
    assert {p.message_type for p in bridged.rows(bridged.portal_app, "processed")} == {"ack"}
    # Nothing is republished afterwards: not the acknowledged messages, not the acks.
    later = clock.utcnow() + FAR_FUTURE
    assert bridged.relay(bridged.portal_app, now=later) == 0
    assert bridged.relay(bridged.bo_app, now=later) == 0


@pytest.mark.sqlite
def test_the_same_message_published_five_times_and_run_by_two_workers_at_once_takes_effect_once(bridged):
    [message_id] = bridged.send("test.note", [{"n": 1, "sleep": 0.5}])
    envelope = _envelope(bridged, message_id)
    # Both workers listen before the copies arrive (a worker's start takes a moment of its own), so the two
    # really run them at once: one is busy with the slow first copy while the other takes the rest.
    workers = [bridged.start_worker("backoffice", INTAKE) for _ in range(2)]
    bridged.wait_for(lambda: all("Listening on" in bridged.worker_log(w) for w in workers), timeout=90)
    for job_id in [message_id, *(str(uuid.uuid4()) for _ in range(4))]:
        _enqueue(bridged, job_id, message_id, envelope)
    bridged.wait_for(lambda: len(bridged.rows(bridged.bo_app, "outbox")) >= 5, timeout=90)
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, bridged.worker_log(worker)

    assert bridged.effects() == (1, 1)  # the count oracle: five deliveries, one effect
    assert [p.message_id for p in bridged.rows(bridged.bo_app, "processed")] == [message_id]
    acks = bridged.rows(bridged.bo_app, "outbox")
    assert len(acks) == 5  # every delivery is acknowledged, the duplicates too
    assert all(json.loads(json.dumps(a.message_type)) == "ack" for a in acks)
    assert bridged.rows(bridged.bo_app, "dead") == []
    logs = "".join(bridged.worker_log(w) for w in workers)
    assert logs.count("duplicate suppressed") == 4
    assert all("applied" in bridged.worker_log(w) or "duplicate" in bridged.worker_log(w) for w in workers)


def test_refused_envelopes_are_dead_lettered_with_their_reason_and_audited_and_the_queue_keeps_flowing(bridged,
                                                                                                        bridge_keys):
    now = clock.utcnow()
    portal = bridge_keys.portal
    elsewhere = KeyRegistry.generate("muni:032069")
    stranger = KeyRegistry.generate("peer:muni-standin").with_public(BO_PARTY, bridge_keys.backoffice.public_pem())

    def sealed(keys, **kwargs):
        args = {"message_type": "test.note", "sender": keys.party, "recipient": BO_PARTY, "keys": keys,
                "created_at": now, **kwargs}
        return seal({"n": 0}, **args)

    tampered = sealed(portal)
    head, key, iv, ciphertext, tag = tampered.token.split(".")
    bad = {
        "bad_ciphertext": (tampered.message_id, ".".join([head, key, iv, ciphertext[::-1], tag])),
        "wrong_recipient": sealed(portal.with_public("muni:032069", elsewhere.public_pem()), recipient="muni:032069"),
        "unknown_sender": sealed(stranger),
        "type_not_accepted": sealed(portal, message_type="application.unheard-of"),
        "header_mismatch": (str(uuid.uuid4()), sealed(portal).token),  # the job names another message id
        "schema_error": sealed(portal, message_type="test.schema"),
    }
    for value in bad.values():
        message_id, token = value if isinstance(value, tuple) else (value.message_id, value.token)
        _enqueue(bridged, message_id, message_id, token)
    good = bridged.send("test.note", [{"n": 1}, {"n": 2}])
    assert bridged.relay(bridged.portal_app) == 2  # behind the bad ones in the queue
    bridged.run_burst("backoffice", INTAKE)

    assert bridged.effects() == (2, 2)
    assert {p.message_id for p in bridged.rows(bridged.bo_app, "processed")} == set(good)
    dead = bridged.rows(bridged.bo_app, "dead")
    assert sorted(d.reason for d in dead) == sorted(bad)
    assert all(d.queue == INTAKE and d.envelope and d.resolved_at is None for d in dead)
    by_reason = {d.reason: d for d in dead}
    assert by_reason["unknown_sender"].sender == "peer:muni-standin"  # as claimed, for the administrator
    refused = bridged.audit_actions(bridged.bo_app, "bridge.refused")
    assert len(refused) == 5 and {r.outcome for r in refused} == {"denied"}
    assert {json.loads(r.detail)["reason"] for r in refused} == set(bad) - {"schema_error"}
    [failed] = bridged.audit_actions(bridged.bo_app, "bridge.dead_letter")
    assert json.loads(failed.detail)["reason"] == "schema_error"
    # Refusals are final: rq is told the job ended, so nothing waits in its failed registry to be retried.
    assert FailedJobRegistry(INTAKE, connection=bridged.redis.client(), serializer=JSONSerializer).count == 0
    # The sender republishes until acknowledged: the same refusal again adds no second row.
    message_id, token = bad["header_mismatch"]
    _enqueue(bridged, str(uuid.uuid4()), message_id, token)
    bridged.run_burst("backoffice", INTAKE)
    assert len(bridged.rows(bridged.bo_app, "dead")) == len(bad)


@pytest.mark.parametrize("bridge_settings", [{"BRIDGE_RETRY_INTERVALS": "1,1"}], indirect=True)
def test_a_poison_message_is_dead_lettered_after_its_retries_while_other_messages_keep_flowing(bridged,
                                                                                               bridge_settings):
    marker = "宮沢　賢治"
    [poison] = bridged.send("test.poison", [{"marker": marker}])
    good = bridged.send("test.note", [{"n": i} for i in range(3)])
    assert bridged.relay(bridged.portal_app) == 4
    worker = bridged.start_worker("backoffice", INTAKE)  # not burst: the scheduler runs the spaced retries
    bridged.wait_for(lambda: bridged.effects() == (3, 3) and len(bridged.rows(bridged.bo_app, "dead")) == 1,
                     timeout=45)

    [dead] = bridged.rows(bridged.bo_app, "dead")
    assert (dead.message_id, dead.reason, dead.message_type, dead.sender) == (
        poison, "retries_exhausted", "test.poison", "portal")
    assert "RuntimeError" in dead.detail and marker not in dead.detail
    assert {p.message_id for p in bridged.rows(bridged.bo_app, "processed")} == set(good)  # the poison's rolled back
    [audited] = bridged.audit_actions(bridged.bo_app, "bridge.dead_letter")
    assert audited.target_id == poison and audited.outcome == "failure"
    log = bridged.worker_log(worker)
    assert log.count(f"delivery of {poison} failed: RuntimeError") == 3  # the first run and two retries
    assert marker not in log
    failed = FailedJobRegistry(INTAKE, connection=bridged.redis.client(), serializer=JSONSerializer)
    assert failed.get_job_ids() == [poison]
    assert marker not in str(failed.get_job_ids()) and marker not in _job_texts(bridged, poison)


@pytest.mark.parametrize("bridge_settings", [{**BATCHES, "BRIDGE_RETRY_INTERVALS": "1,1"}], indirect=True)
def test_a_poison_message_in_a_batch_costs_the_others_one_attempt_and_is_dead_lettered_alone(bridged, bridge_settings):
    marker = "宮沢　賢治"
    before = bridged.send("test.note", [{"n": 0}])
    [poison] = bridged.send("test.poison", [{"marker": marker}])
    after = bridged.send("test.note", [{"n": i} for i in range(1, 4)])
    assert bridged.relay(bridged.portal_app) == 5
    [batch_id] = [x.decode() for x in bridged.redis.client().lrange(f"rq:queue:{INTAKE}", 0, -1)]
    worker = bridged.start_worker("backoffice", INTAKE)
    bridged.wait_for(lambda: bridged.effects() == (4, 4) and len(bridged.rows(bridged.bo_app, "dead")) == 1,
                     timeout=45)

    [dead] = bridged.rows(bridged.bo_app, "dead")
    assert (dead.message_id, dead.reason) == (poison, "retries_exhausted") and marker not in dead.detail
    assert {p.message_id for p in bridged.rows(bridged.bo_app, "processed")} == {*before, *after}
    log = bridged.worker_log(worker)
    # Once in the batch, then as a job of its own: its first run and two retries.
    assert log.count(f"delivery of {poison} failed: RuntimeError") == 4
    assert "1 of its 5 message(s)" not in log and "4 of its 5 message(s) published again one per job" in log
    failed = FailedJobRegistry(INTAKE, connection=bridged.redis.client(), serializer=JSONSerializer)
    assert sorted(failed.get_job_ids()) == sorted([batch_id, poison])
    assert marker not in log and marker not in _job_texts(bridged, poison)
    acks = [r for r in bridged.rows(bridged.bo_app, "outbox") if r.message_type == "ack"]
    assert len(acks) == 4  # one per message applied, none twice


@pytest.mark.parametrize("bridge_settings", [BATCHES], indirect=True)
def test_a_batch_abandoned_by_a_dead_worker_goes_again_one_job_per_message_not_yet_processed(bridged, bridge_settings):
    from rq.exceptions import AbandonedJobError
    from rq.job import Job

    from bridge.jobs.deliver import on_failure

    ids = bridged.send("test.note", [{"n": i} for i in range(3)])
    assert bridged.relay(bridged.portal_app) == 3
    connection = bridged.redis.client()
    [batch_id] = [x.decode() for x in connection.lrange(f"rq:queue:{INTAKE}", 0, -1)]
    connection.lrem(f"rq:queue:{INTAKE}", 0, batch_id)  # taken by a worker that then died with it
    job = Job.fetch(batch_id, connection=connection, serializer=JSONSerializer)
    with bridged.bo_app.app_context():  # the first message had been committed before the worker died
        binding = bridged.bo_app.extensions["bridge"]
        binding.session.add(binding.processed(message_id=ids[0], message_type="test.note", sender="portal",
                                              processed_at=clock.utcnow()))
        binding.session.commit()
        # What rq's maintenance in another worker calls for a job whose worker's heartbeat ran out.
        on_failure(job, connection, AbandonedJobError, AbandonedJobError(), None)

    assert [x.decode() for x in connection.lrange(f"rq:queue:{INTAKE}", 0, -1)] == ids[1:]
    assert all(Job.fetch(m, connection=connection, serializer=JSONSerializer).retries_left == 5 for m in ids[1:])
    bridged.run_burst("backoffice", INTAKE)
    assert bridged.effects() == (2, 2)
    assert bridged.rows(bridged.bo_app, "dead") == []


@pytest.mark.parametrize("bridge_settings", [{"BRIDGE_RETRY_INTERVALS": "0"},
                                             {**BATCHES, "BRIDGE_RETRY_INTERVALS": "0"}],
                         ids=["alone", "batched"], indirect=True)
def test_no_redis_key_holds_anything_but_ids_and_envelopes(bridged, bridge_settings):
    name, address, number = "宮沢　賢治", "岩手県花巻市桜町", my_number(7)
    personal = {"name": name, "address": address, "myNumber": number}
    bridged.send("test.note", [{**personal, "n": i} for i in range(3)])
    bridged.send("test.poison", [{"marker": f"{name} {address} {number}"}])
    assert bridged.relay(bridged.portal_app) == 4
    worker = bridged.start_worker("backoffice", INTAKE, burst=True)
    assert worker.wait(60) == 0, bridged.worker_log(worker)
    assert bridged.relay(bridged.bo_app) == 3  # acks waiting in ack:portal
    assert bridged.effects() == (3, 3) and len(bridged.rows(bridged.bo_app, "dead")) == 1

    client = bridged.redis.client()
    needles = [s.encode() for s in (name, address, number, "宮沢", "花巻")]
    needles += [json.dumps(s).strip('"').encode() for s in (name, address)]  # JSON-escaped forms too
    keys = list(client.scan_iter(count=1000))
    assert any(k.startswith(b"rq:job:") for k in keys) and any(k.startswith(b"rq:failed:") for k in keys)
    for key in keys:
        for blob in _values(client, key):
            for needle in needles:
                assert needle not in blob, (key, needle)
    for key in (k for k in keys if k.startswith(b"rq:job:") and b":" not in k[len(b"rq:job:"):]):
        data = client.hget(key, "data")
        if data is None:
            continue
        func, _instance, args, kwargs = json.loads(zlib.decompress(data))
        assert func in (DELIVER, DELIVER_BATCH) and kwargs == {}
        for message_id, envelope in args[0] if func == DELIVER_BATCH else [args]:
            assert uuid.UUID(message_id) and envelope.count(".") == 4
    assert number not in bridged.worker_log(worker) and name not in bridged.worker_log(worker)
    assert all(number not in r.envelope for r in bridged.rows(bridged.portal_app, "outbox"))


def _values(client, key: bytes) -> list[bytes]:
    """Every value stored under ``key``, job data decompressed."""
    kind = client.type(key).decode()
    if kind == "string":
        values = [client.get(key) or b""]
    elif kind == "hash":
        values = [v for pair in client.hgetall(key).items() for v in pair]
    elif kind == "list":
        values = client.lrange(key, 0, -1)
    elif kind == "set":
        values = list(client.smembers(key))
    elif kind == "zset":
        values = [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
    elif kind == "stream":
        values = [json.dumps([[i.decode(), {k.decode(): v.decode() for k, v in f.items()}]
                              for i, f in client.xrange(key)]).encode()]
    else:
        values = []
    expanded = [*values, key]
    for value in values:
        try:
            expanded.append(zlib.decompress(value))
        except zlib.error:
            pass
    return expanded


def _job_texts(bridged, job_id: str) -> str:
    client = bridged.redis.client()
    texts = []
    for key in client.scan_iter(match=f"*{job_id}*"):
        texts.extend(v.decode("utf-8", "replace") for v in _values(client, key))
    return "\n".join(texts)


def test_a_reply_carries_the_ack_of_the_message_it_answers_and_no_separate_ack_is_sent(bridged):
    """As the back office's status answers an application: one message back instead of two, and one job fewer."""
    [asked] = bridged.send("test.reply", [{"n": 1}])
    assert bridged.relay(bridged.portal_app) == 1
    bridged.run_burst("backoffice", INTAKE)
    assert [(r.message_type, r.recipient) for r in bridged.rows(bridged.bo_app, "outbox")] == [("test.note", "portal")]

    assert bridged.relay(bridged.bo_app) == 1
    bridged.run_burst("portal", "status")
    rows = {r.id: r for r in bridged.rows(bridged.portal_app, "outbox")}
    assert rows[asked].state == ACKNOWLEDGED and rows[asked].acknowledged_at is not None
    # The note itself is acknowledged the usual way (the portal's handler sends nothing back).
    assert [r.message_type for r in rows.values() if r.id != asked] == ["ack"]
    assert bridged.relay(bridged.portal_app, now=clock.utcnow() + FAR_FUTURE) == 1  # that ack only, never `asked`


def test_a_carried_ack_of_a_message_sent_to_another_party_acknowledges_nothing(bridged):
    """A back office may acknowledge only what was sent to it, whether by an ack or inside a reply."""
    from backoffice.extensions import db as bo_db
    from backoffice.models import Outbox as BoOutbox
    from bridge.outbox import PUBLISHED, add_message
    from portal.extensions import db
    from portal.models import Outbox

    now = clock.utcnow()
    with bridged.portal_app.app_context():  # the portal's message to another city
        db.session.add(Outbox(id=str(uuid.uuid4()), message_type="test.note", recipient="muni:032069",
                              queue="intake:032069", envelope="", state=PUBLISHED, attempts=1, next_attempt_at=now,
                              published_at=now, created_at=now))
        db.session.commit()
        elsewhere = db.session.query(Outbox).one().id
    with bridged.bo_app.app_context():
        add_message(bo_db.session, BoOutbox, message_type="test.note", recipient="portal", payload={"n": 7},
                    keys=bridged.bo_app.extensions["bridge"].keys(), sender=BO_PARTY, queue="status",
                    acknowledges=elsewhere)
        bo_db.session.commit()
    assert bridged.relay(bridged.bo_app) == 1
    bridged.run_burst("portal", "status")
    [row] = [r for r in bridged.rows(bridged.portal_app, "outbox") if r.id == elsewhere]
    assert row.state == PUBLISHED and row.acknowledged_at is None
    assert len(bridged.rows(bridged.portal_app, "processed")) == 1  # the note itself was applied
