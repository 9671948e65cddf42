"""The relay: publishes due outbox rows to their rq queues and republishes what is not acknowledged in time.

A row is published with its message id as the rq job id and ``(message id, envelope)`` as the
only job arguments. Rows of one pass that wait for their first publication on the same queue of
this system's own apps go together, up to ``DeliveryPolicy.batch`` of them, as one job of
``deliver_batch`` (its one argument the list of ``[message id, envelope]``): a forked work-horse
then costs each message a part of a fork instead of a whole one (``docs/operations.md``). A
republication, and anything for a peer, is always one message per job.

A published row that is not acknowledged by ``next_attempt_at`` is published again, waiting twice
as long each time (``republish_after`` × 2^(n-1), at most ``max_backoff``): this is what recovers
messages Redis lost. Rows are never deleted.

Redis losing its data (restarted without persistence, flushed) is also noticed at once: the relay
keeps an epoch key in Redis (``bridge:epoch:<party>``, set before it publishes anything). When that
key is gone while published messages wait for their acks, the relay makes them due at once and
writes a ``bridge_alert`` row (``redis_data_lost``) for the operator; of several relays of one
party, the one that claims the check does this, once. The key holds the replication id of the
master that was current when it was set: a Sentinel failover (or a restart) gives the master a new
one, and since replication is asynchronous the new master may lack the last jobs published to the
old one, so the relay then does the same (alert ``redis_master_changed``). On PostgreSQL the rows are
taken with ``FOR UPDATE SKIP LOCKED``, so several relays may run at once; SQLite has no row
locks, so ``flask relay`` takes a lock file there and refuses to run twice.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import redis
from flask import Flask
from jose.constants import JWE_SIZE_LIMIT
from rq import Callback, Retry
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bridge.acks import ACK
from bridge.outbox import ACKNOWLEDGED, PENDING, PUBLISHED
from bridge.queues import QueueNames, get_queue
from bridge.settings import MAX_DELIVERY_BATCH, BridgeSettings, configure_logging
from core import clock

DELIVER = "bridge.jobs.deliver.deliver"
DELIVER_BATCH = "bridge.jobs.deliver.deliver_batch"
ON_FAILURE = "bridge.jobs.deliver.on_failure"
HELD_POLL_SECONDS = 0.1  # how soon the relay looks again at rows it held back (``DeliveryPolicy.hold``)
TERMINAL = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED})
log = logging.getLogger("bridge.relay")


@dataclass(frozen=True)
class DeliveryPolicy:
    """How rq runs each delivery job: retries, timeout and how long Redis keeps the job afterwards."""

    retry_intervals: tuple[int, ...] = (5, 30, 120, 600, 1800)
    job_timeout: int = 120
    result_ttl: int = 3600
    failure_ttl: int = 7 * 24 * 3600
    batch: int = 10  # at most this many first publications to one of our own queues go as one job
    # While jobs already wait on such a queue, its new rows wait in the outbox this long at most (seconds):
    # they would wait behind those jobs anyway, and leave together, as fewer, fuller batches.
    hold: float = 0.0

    @classmethod
    def from_settings(cls, settings: BridgeSettings) -> DeliveryPolicy:
        """The policy the app's settings describe."""
        return cls(retry_intervals=settings.retry_intervals, job_timeout=settings.job_timeout,
                   result_ttl=settings.result_ttl, failure_ttl=settings.failure_ttl,
                   batch=settings.delivery_batch, hold=settings.delivery_hold)


class RelayLocked(RuntimeError):
    """Another relay already runs against this SQLite database."""


def backoff(attempts: int, *, base: dt.timedelta, cap: dt.timedelta) -> dt.timedelta:
    """How long to wait for an ack after the ``attempts``-th publish: base × 2^(attempts-1), at most cap."""
    return min(base * (1 << min(max(attempts - 1, 0), 32)), cap)


REDIS_DATA_LOST = "redis_data_lost"
REDIS_MASTER_CHANGED = "redis_master_changed"
EPOCH_CLAIM_SECONDS = 60  # how long one relay holds the check of a lost epoch key


def epoch_key(party: str) -> str:
    """The Redis key whose absence tells the relay of ``party`` that Redis lost what it held."""
    return f"bridge:epoch:{party}"


def epoch_claim_key(party: str) -> str:
    """Held by the one relay of ``party`` that is dealing with a lost epoch key."""
    return f"bridge:epoch-claim:{party}"


def replication_id(connection: redis.Redis) -> str:
    """The replication id of the server ``connection`` reaches: a new one after a failover or a restart."""
    return str(connection.info("replication").get("master_replid", ""))


def check_redis_epoch(session: Session, outbox_model: type[Any], alert_model: type[Any] | None,
                      connection: redis.Redis, *, party: str, now: dt.datetime) -> int | None:
    """Make every published, unacknowledged message due at once if Redis lost data (flushes; the caller commits).

    Redis lost data when the epoch key is gone (restarted empty, flushed), and may have lost the last
    writes when the key names another replication id than the master's (a Sentinel failover promoted a
    replica that had not received them yet). Returns how many messages were made due; when there were
    any, an alert row is added (``redis_data_lost`` or ``redis_master_changed``); then call
    ``mark_redis_epoch`` after the commit. None means there is nothing to mark: the epoch key names this
    master, or another relay has claimed the check. Of several relays noticing at once, one claims it
    (for ``EPOCH_CLAIM_SECONDS``, so a relay that dies with it is replaced); the others publish as usual,
    so there is one republication and one alert. Republishing a message whose job Redis still holds
    enqueues nothing (``publish``).
    """
    marked = connection.get(epoch_key(party))
    master = replication_id(connection)
    if marked is not None and (marked.decode() if isinstance(marked, bytes) else marked) == master:
        return None
    if not connection.set(epoch_claim_key(party), uuid.uuid4().hex, nx=True, ex=EPOCH_CLAIM_SECONDS):
        return None
    model = outbox_model
    due = session.execute(
        update(model).where(model.state == PUBLISHED, model.message_type != ACK)
        .values(next_attempt_at=now).returning(model.id)
    ).scalars().all()
    lost = marked is None
    if due and alert_model is not None:
        cause = ("the Redis epoch key of {party} was gone", "Redis was restarted without its data or flushed") if lost \
            else ("the Redis master of {party} changed", "a failover or restart may have lost the last writes")
        session.add(alert_model(
            kind=REDIS_DATA_LOST if lost else REDIS_MASTER_CHANGED, messages=len(due), created_at=now,
            detail=(f"{cause[0].format(party=party)} while {len(due)} published message(s) waited for their "
                    f"acknowledgement: {cause[1]}; all republished at once")))
    session.flush()
    if due:
        log.error("%s: %d unacknowledged message(s) of %s republished at once (alert written)",
                  "Redis lost its data" if lost else "the Redis master changed", len(due), party)
    return len(due)


def mark_redis_epoch(connection: redis.Redis, party: str) -> None:
    """Set the epoch key to the master's replication id and give up the claim (after ``check_redis_epoch``)."""
    connection.set(epoch_key(party), replication_id(connection))
    connection.delete(epoch_claim_key(party))


def relay_once(session: Session, outbox_model: type[Any], connection: redis.Redis, **options: Any) -> int:
    """Publish up to ``batch`` due rows and return how many of them went into new jobs (flushes; the caller commits).

    ``options`` are ``relay_pass``'s. A Redis error stops the batch: the rows handled so far are flushed and the
    error is raised.
    """
    return relay_pass(session, outbox_model, connection, **options).published


@dataclass(frozen=True)
class RelayPass:
    """What one relay pass did: rows published in new jobs, and first publications held back (``hold``)."""

    published: int
    held: int


def relay_pass(
    session: Session,
    outbox_model: type[Any],
    connection: redis.Redis,
    *,
    now: dt.datetime,
    republish_after: dt.timedelta = dt.timedelta(minutes=5),
    batch: int = 100,
    max_backoff: dt.timedelta = dt.timedelta(hours=1),
    policy: DeliveryPolicy | None = None,
) -> RelayPass:
    """``relay_once``, also saying how many rows it held back: the relay then looks again soon (``hold``).

    With ``policy.hold`` and batches, the first publications to a queue on which jobs already wait stay
    in the outbox, unless a whole batch of them is due or the oldest has waited ``hold`` seconds.
    """
    policy = policy or DeliveryPolicy()
    model = outbox_model
    due = (
        select(model)
        .where(model.next_attempt_at <= now,
               # Acks are published once and never republished: nobody acknowledges an ack.
               or_(model.state == PENDING, and_(model.state == PUBLISHED, model.message_type != ACK)))
        .order_by(model.next_attempt_at, model.created_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    published, held = 0, 0
    groups = job_groups(session.execute(due).scalars().all(), policy.batch)
    busy: dict[str, bool] = {}
    for group in groups:
        if _held(group, policy, now, busy, connection):
            held += len(group)
            continue
        try:
            if len(group) == 1:
                job_id = None
                fresh = publish(group[0].id, group[0].queue, group[0].envelope, connection, policy,
                                batch_job_id=group[0].job_id)
            else:
                job_id = publish_batch(group[0].queue, [(row.id, row.envelope) for row in group], connection, policy)
                fresh = True
        except redis.RedisError:
            session.flush()
            raise
        for row in group:
            attempts = row.attempts + 1 if fresh else max(row.attempts, 1)
            values: dict[str, Any] = {
                "next_attempt_at": now + backoff(attempts, base=republish_after, cap=max_backoff),
                "attempts": attempts,
            }
            if fresh:
                values.update(job_id=job_id)
            if fresh or row.state == PENDING:
                values.update(state=PUBLISHED, published_at=now)
            # The condition keeps an ack that arrived meanwhile (SQLite has no row lock to prevent that).
            session.execute(update(model).where(model.id == row.id, model.state != ACKNOWLEDGED).values(**values))
            published += fresh
    session.flush()
    return RelayPass(published, held)


def _held(group: list[Any], policy: DeliveryPolicy, now: dt.datetime, busy: dict[str, bool],
          connection: redis.Redis) -> bool:
    """Whether a group of first publications waits for a later pass: jobs wait on its queue, and it may."""
    first = group[0]
    if (policy.hold <= 0 or policy.batch < 2 or len(group) >= policy.batch or first.state != PENDING
            or not batchable(first.queue)
            or min(row.created_at for row in group) <= now - dt.timedelta(seconds=policy.hold)):
        return False
    if first.queue not in busy:
        busy[first.queue] = get_queue(first.queue, connection).count > 0
    return busy[first.queue]


def batchable(queue_name: str) -> bool:
    """Whether messages on ``queue_name`` may share a job: its consumer is one of this system's apps, not a peer."""
    return not QueueNames.consumer(queue_name).startswith("peer:")


def job_groups(rows: Sequence[Any], limit: int) -> list[list[Any]]:
    """The due rows as the jobs that carry them, in the order of each job's first row.

    Rows waiting for their first publication on a ``batchable`` queue share a job, up to ``limit``
    rows and ``JWE_SIZE_LIMIT`` characters of envelopes (so a batch's record is no larger than one
    largest delivery's, ``bridge.worker.JOB_DATA_LIMIT``); every other row is a job of its own. A
    republication is always alone: its job id is its message id, which is how the relay finds a copy
    that rq still holds.
    """
    groups: list[list[Any]] = []
    open_groups: dict[str, list[Any]] = {}
    for row in rows:
        if row.state != PENDING or limit < 2 or not batchable(row.queue):
            groups.append([row])
            continue
        group = open_groups.get(row.queue)
        if (group is None or len(group) >= min(limit, MAX_DELIVERY_BATCH)
                or sum(len(r.envelope) for r in group) + len(row.envelope) > JWE_SIZE_LIMIT):
            group = open_groups[row.queue] = []
            groups.append(group)
        group.append(row)
    return groups


def publish(message_id: str, queue_name: str, envelope: str, connection: redis.Redis, policy: DeliveryPolicy,
            *, batch_job_id: str | None = None) -> bool:
    """Enqueue the delivery job unless rq still holds a live one with this id; True if a job was enqueued.

    ``batch_job_id``: the batch job the message was last published in; while it is live, nothing is enqueued.
    """
    queue = get_queue(queue_name, connection)
    if batch_job_id is not None and _live(batch_job_id, queue_name, connection):
        return False
    try:
        job: Job | None = Job.fetch(message_id, connection=connection, serializer=JSONSerializer)
    except NoSuchJobError:
        job = None
    except redis.RedisError:
        raise
    except Exception:
        # A job hash rq cannot read (e.g. only a heartbeat field left behind) would block the id forever.
        log.warning("unreadable job hash for %s replaced", message_id)
        connection.delete(Job.key_for(message_id))
        job = None
    if job is not None:
        if _will_run(job, queue_name, connection):
            return False
        job.delete(remove_from_queue=True)
    try:
        queue.enqueue_call(
            DELIVER,
            args=(message_id, envelope),
            job_id=message_id,
            description=f"deliver {message_id}",  # rq would otherwise repeat the whole envelope here
            timeout=policy.job_timeout,
            result_ttl=policy.result_ttl,
            failure_ttl=policy.failure_ttl,
            ttl=None,  # a queued message never expires
            retry=Retry(max=len(policy.retry_intervals), interval=list(policy.retry_intervals)),
            on_failure=Callback(ON_FAILURE),
            unique=True,
        )
    except DuplicateJobError:
        return False  # another relay enqueued it a moment ago
    return True


def _fetched(job_id: str, connection: redis.Redis) -> Job | None:
    """rq's job ``job_id``, or None when Redis holds none or one rq cannot read; a Redis error is raised."""
    try:
        return Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
    except NoSuchJobError:
        return None
    except redis.RedisError:
        raise
    except Exception:
        return None  # an unreadable job hash is replaced when the message is published again


def _will_run(job: Job, queue_name: str, connection: redis.Redis) -> bool:
    """Whether rq will still run ``job`` (queued, scheduled, started; not orphaned)."""
    return job.get_status(refresh=False) not in TERMINAL and not _orphaned(job, queue_name, connection)


def _live(job_id: str, queue_name: str, connection: redis.Redis) -> bool:
    """Whether rq holds job ``job_id`` and will still run it."""
    job = _fetched(job_id, connection)
    return job is not None and _will_run(job, queue_name, connection)


def publish_batch(queue_name: str, messages: list[tuple[str, str]], connection: redis.Redis,
                  policy: DeliveryPolicy) -> str:
    """Enqueue one ``deliver_batch`` job for ``messages`` (each waiting for its first publication); its id.

    The job is never retried as a whole: if it fails in any way, its failure callback publishes each of
    its messages not yet processed as a job of its own, with the usual retries (``deliver.on_failure``).
    """
    job = get_queue(queue_name, connection).enqueue_call(
        DELIVER_BATCH,
        args=([[message_id, envelope] for message_id, envelope in messages],),
        description=f"deliver {len(messages)} messages",
        timeout=policy.job_timeout,
        result_ttl=policy.result_ttl,
        failure_ttl=policy.failure_ttl,
        ttl=None,
        on_failure=Callback(ON_FAILURE),
    )
    return str(job.id)


def batch_messages(args: Any) -> list[tuple[str, str]] | None:
    """A batch job's ``[[message id, envelope], …]``, or None unless that is exactly what ``args`` holds.

    Two to ``MAX_DELIVERY_BATCH`` pairs of strings, the ids unique: a job that is not such a batch is
    refused before it runs (``bridge.worker.BridgeJob.refusal``).
    """
    if not isinstance(args, (list, tuple)) or len(args) != 1 or not isinstance(args[0], list):
        return None
    items = args[0]
    if not 2 <= len(items) <= MAX_DELIVERY_BATCH:
        return None
    pairs = []
    for item in items:
        if not (isinstance(item, list) and len(item) == 2 and all(isinstance(part, str) for part in item)):
            return None
        pairs.append((item[0], item[1]))
    return pairs if len({m for m, _ in pairs}) == len(pairs) else None


def job_running(message_id: str, connection: redis.Redis) -> bool:
    """Whether rq runs a job for ``message_id`` right now (a queued copy is fine: it will be applied)."""
    job = _fetched(message_id, connection)
    return job is not None and job.get_status(refresh=False) == JobStatus.STARTED


def settled(message_ids: list[str], connection: redis.Redis, *, seconds: float) -> bool:
    """Wait up to ``seconds`` until no job runs for any of ``message_ids``; False if one still runs.

    rq marks a job finished only after it returned, so the job that dead-lettered or held a message may still
    be "started" for a moment: publishing the message again then would find that live job and enqueue nothing.
    """
    deadline = time.monotonic() + seconds
    while any(job_running(m, connection) for m in message_ids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _orphaned(job: Job, queue_name: str, connection: redis.Redis) -> bool:
    """A job marked queued that sits in neither the queue nor its intermediate list will never run."""
    if job.get_status(refresh=False) != JobStatus.QUEUED:
        return False
    queue = get_queue(queue_name, connection)
    for key in (queue.key, queue.intermediate_queue.key):
        if connection.lpos(key, job.id) is not None:
            return False
    # Checked again: a worker may have taken it between the two lookups.
    return job.get_status(refresh=True) == JobStatus.QUEUED


def _lock_single_relay(app: Flask, party: str) -> IO[str]:
    """Hold an exclusive lock file for this party's relay for as long as the process lives."""
    path = Path(app.instance_path) / f"relay-{party.replace(':', '-')}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise RelayLocked(f"another relay of {party} holds {path}; on SQLite only one relay may run") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def run_relay(app: Flask, *, once: bool = False, stop: threading.Event | None = None) -> int:
    """Relay until stopped (SIGTERM/SIGINT or ``stop``), or one pass with ``once``; returns the jobs enqueued."""
    binding = app.extensions["bridge"]
    configure_logging()
    settings = BridgeSettings.from_config(app.config)
    policy = DeliveryPolicy.from_settings(settings)
    stop = stop or threading.Event()
    lock = None
    if app.extensions["engine"].dialect.name == "sqlite":
        lock = _lock_single_relay(app, binding.party)
        log.info("relay of %s on SQLite: single relay enforced by lock file %s", binding.party, lock.name)
    else:
        log.info("relay of %s on %s: FOR UPDATE SKIP LOCKED, several relays may run at once",
                 binding.party, app.extensions["engine"].dialect.name)
    if not once and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    with app.app_context():
        connection = binding.redis()
    from bridge import alerting
    from bridge.notify import OutboxListener

    listener = OutboxListener(app.extensions["engine"], stop)
    if not once:
        listener.start()  # before the first pass: a row committed after it wakes the first wait

    total, redis_wait, next_check = 0, 1.0, 0.0
    try:
        while not stop.is_set():
            published, wait, backing_off = 0, settings.relay_interval, False
            began = time.monotonic()
            with app.app_context():
                session = binding.session
                try:
                    checked = check_redis_epoch(session, binding.outbox, binding.alerts, connection,
                                                party=binding.party, now=clock.utcnow())
                    session.commit()
                    if checked is not None:
                        mark_redis_epoch(connection, binding.party)
                    done = relay_pass(session, binding.outbox, connection, now=clock.utcnow(),
                                      republish_after=settings.republish_after, batch=settings.relay_batch,
                                      max_backoff=settings.max_backoff, policy=policy)
                    session.commit()
                    published = done.published
                    if done.held:  # rows wait for their queue's jobs to be taken: look again soon
                        wait = min(wait, HELD_POLL_SECONDS)
                    if time.monotonic() >= next_check:  # the watched conditions into the alert table, mailed
                        next_check = time.monotonic() + float(app.config.get("ALERT_CHECK_SECONDS", 30))
                        alerting.check_quietly(binding, connection)
                    redis_wait = 1.0
                except redis.RedisError as exc:
                    session.commit()  # keep what was published before Redis went away
                    if once:
                        raise
                    log.warning("Redis unavailable (%s); relay retries in %.0f s", type(exc).__name__, redis_wait)
                    wait, redis_wait, backing_off = redis_wait, min(redis_wait * 2, 30.0), True
                except SQLAlchemyError as exc:
                    session.rollback()
                    if once:
                        raise
                    log.warning("database unavailable (%s); relay retries in 5 s", type(exc).__name__)
                    wait, backing_off = 5.0, True
            total += published
            if published:
                log.info("published %d message(s)", published)
            if once:
                break
            if published < settings.relay_batch:  # a full batch means more are waiting: go on at once
                if backing_off:
                    stop.wait(wait)  # from Redis or the database: new rows do not cut the wait short
                elif listener.wait(wait):  # a committed outbox row ends the wait at once (PostgreSQL)
                    # ... but the next pass begins no sooner than the gather time after this one began:
                    # under load, the rows of many commits leave in one pass instead of a pass each.
                    stop.wait(began + settings.relay_gather - time.monotonic())
    finally:
        listener.close()
        connection.close()
        if lock is not None:
            lock.close()
    return total
