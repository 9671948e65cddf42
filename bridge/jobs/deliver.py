"""The delivery job: open one envelope in the receiving app and apply it exactly once.

Outcomes, each committed at this edge:

- refused envelope, a payload its schema refuses (``schema_invalid``, the detail naming the JSON
  path, never the value) or a handler's ``PermanentFailure``: a dead-letter row with the reason and
  an operation-log row, and nothing else; the job ends normally, so rq never retries it;
- new message: in ONE transaction, the processed-message row (its primary key is the message id),
  the handler's effect, and an ``ack`` to the sender through this app's own outbox;
- duplicate (the processed-message row exists): nothing changes but a new ack;
- anything else (database or Redis down, a handler bug): ``DeliveryError`` is raised and rq
  retries; after the last retry ``on_failure`` dead-letters the message.

``deliver_batch`` runs several messages of one queue in one job (``bridge.relay.job_groups``), each
exactly as ``deliver`` runs it, in a transaction of its own. A batch is never retried as a whole:
when one of its messages raises, or its work-horse dies, ``on_failure`` publishes each of its
messages not yet processed as a job of its own, which then has the retries above.

Exceptions leaving the job carry only error types and ids: rq keeps a failed job's traceback in
Redis, and a driver's message may quote the SQL parameters, which can hold personal data.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from jose.constants import JWE_SIZE_LIMIT
from redis import Redis
from rq import get_current_job
from rq.exceptions import AbandonedJobError
from rq.job import Job
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bridge import holds, messages, monitor
from bridge.acks import ACK, REPLY, Reply, ack_payload, acknowledge
from bridge.binding import Bridge, current_bridge
from bridge.handlers import PermanentFailure, accepted_types, registration_for
from bridge.outbox import PUBLISHED
from bridge.queues import QueueNames
from bridge.relay import DELIVER_BATCH, DeliveryPolicy, batch_messages, publish
from core import clock
from core.envelope import UUID_PATTERN, EnvelopeRefused, KeyRegistry, Opened, open_envelope, peek_header

RETRIES_EXHAUSTED = "retries_exhausted"
SCHEMA_INVALID = "schema_invalid"
_INSERTS: dict[str, Callable[..., Any]] = {"postgresql": postgresql_insert, "sqlite": sqlite_insert}
log = logging.getLogger("bridge.deliver")


class DeliveryError(Exception):
    """A delivery attempt failed in a way a retry may cure; the message names only the error type and the id."""


def deliver_batch(messages: list[list[str]]) -> None:
    """``deliver`` each ``[message id, envelope]`` in turn, each in its own transaction; stop at the first error.

    The error ends the job (``DeliveryError``, as ``deliver`` raised it), and ``on_failure`` then publishes
    that message and the ones after it as jobs of their own (the ones before it are processed: skipped).
    """
    for message_id, envelope in messages:
        deliver(message_id, envelope)


def deliver(message_id: str, envelope: str) -> None:
    """Open ``envelope`` (addressed to this app) and apply it once; the rq job behind every bridge queue."""
    binding = current_bridge()
    session = binding.session
    queue = _current_queue()
    started = time.monotonic()
    try:
        keys = binding.keys()
        try:
            opened = _open(binding, keys, message_id, envelope)
        except EnvelopeRefused as refused:
            session.rollback()
            record_dead_letter(binding, message_id=message_id, reason=refused.reason, detail=refused.detail,
                               queue=queue, envelope=envelope, refused=True)
            session.commit()
            log.warning("message %s refused: %s", _short(message_id), refused.reason)
            monitor.count_job(queue, monitor.REFUSED, seconds=time.monotonic() - started, reason=refused.reason)
            return
        try:
            check_payload(opened)
            if holds.held(binding, session, opened, envelope, queue):  # e.g. its kind's intake is paused
                session.commit()
                log.info("message %s (%s) held back", opened.message_id, opened.message_type)
                monitor.count_job(queue, monitor.HELD, seconds=time.monotonic() - started)
                return
            applied = apply_message(session, binding, opened, keys, checked=True)
        except PermanentFailure as failure:
            session.rollback()
            record_dead_letter(binding, message_id=message_id, reason=failure.reason[:40],
                               detail=failure.detail[:500], queue=queue, envelope=envelope, refused=False)
            session.commit()
            log.warning("message %s (%s) dead-lettered: %s", message_id, opened.message_type, failure.reason)
            monitor.count_job(queue, monitor.DEAD_LETTERED, seconds=time.monotonic() - started)
            return
        session.commit()
    except Exception as exc:
        session.rollback()
        log.error("delivery of %s failed: %s", _short(message_id), describe(exc))
        monitor.count_job(queue, monitor.ERROR, seconds=time.monotonic() - started)
        # "from None": the chained driver exception (and the SQL parameters it quotes) stays out of rq's record.
        raise DeliveryError(f"{describe(exc)} while delivering {_short(message_id)}") from None
    monitor.count_job(queue, monitor.DELIVERED if applied else monitor.DUPLICATE, seconds=time.monotonic() - started,
                      latency=(clock.utcnow() - opened.created_at).total_seconds() if applied else None)
    if applied:
        log.info("message %s (%s from %s) applied", opened.message_id, opened.message_type, opened.sender)
    else:
        log.info("message %s (%s from %s) was already processed: duplicate suppressed, acknowledged again",
                 opened.message_id, opened.message_type, opened.sender)


# (session, queue) -> the messages its worker rehearses: each an Opened, or a callable that writes what its
# message needs (e.g. the application a status is about) in the rehearsal's transaction and returns it.
RehearsedMessage = Opened | Callable[[Session], Opened]
Rehearsal = Callable[[Session, str], list[RehearsedMessage]]
_rehearsals: dict[str, Rehearsal] = {}


def register_rehearsal(zone: str, messages_of: Rehearsal) -> None:
    """What a worker of ``zone`` rehearses in its parent before its first fork (``rehearse``), by queue.

    ``messages_of`` may also run read-only lookups in the session it is given (rolled back too): the
    ones its messages do not reach.
    """
    _rehearsals[zone] = messages_of


def rehearse(*, queue: str) -> int:
    """Apply the zone's rehearsal messages in a transaction that is always rolled back; how many ran to the end.

    A forking worker's parent runs this once, before its first fork (``bridge.worker.prepare_parent``),
    so that the SQL statements a delivery compiles are in the parent's compiled cache, which every
    work-horse inherits instead of compiling each statement again for its one job. The messages are
    the zone's own, made in this process (never a queued message: one that kills its process must kill
    a work-horse, not the worker); on an ack queue, also an ack of an outbox row the rehearsal writes
    itself (every party's ack jobs compiled their three statements in every horse). They go through the
    hold check and ``apply_message`` as a delivery does, without opening an envelope; nothing is
    committed, nothing goes to Redis. A statement that waits more than 5 s (a lock) ends the rehearsal
    (PostgreSQL).
    """
    binding = current_bridge()
    make = _rehearsals.get(binding.zone)
    session = binding.session
    postgresql = session.get_bind().dialect.name == "postgresql"

    def time_limit() -> None:
        if postgresql:
            session.execute(text("SET LOCAL statement_timeout = 5000"))

    # Every party's ack queue: an ack of an outbox row the rehearsal writes itself.
    rehearsed: list[RehearsedMessage] = [_acknowledgeable] if queue.startswith(f"{ACK}:") else []
    try:
        time_limit()
        rehearsed += make(session, queue) if make is not None else []
    except Exception as exc:  # a rehearsal that fails only warms less
        log.warning("rehearsal on %s stopped: %s", queue, describe(exc))
    finally:
        session.rollback()
    done = 0
    for item in rehearsed:
        what = "a message"
        try:
            time_limit()
            opened = item(session) if callable(item) else item
            what = opened.message_type
            keys = binding.keys()
            check_payload(opened)
            if not holds.held(binding, session, opened, "", queue):
                apply_message(session, binding, opened, keys, checked=True)
            done += 1
        except Exception as exc:  # a rehearsal that fails only warms less
            log.warning("rehearsal of %s stopped: %s", what, describe(exc))
        finally:
            session.rollback()
    return done


def _acknowledgeable(session: Session) -> Opened:
    """An ack of an outbox row written here (flushed, never committed): what an ack job runs, with nothing sent."""
    binding = current_bridge()
    now = clock.utcnow()
    row = binding.outbox(id=str(uuid.uuid4()), message_type="rehearsal", recipient="peer:dept:rehearsal",
                         queue=QueueNames.outbound("dept:rehearsal"), envelope="", state=PUBLISHED, attempts=1,
                         next_attempt_at=now, published_at=now, created_at=now)
    session.add(row)
    session.flush()
    return Opened(message_id=str(uuid.uuid4()), message_type=ACK, sender=row.recipient, recipient=binding.party,
                  created_at=now, payload=ack_payload(row.id))


def _open(binding: Bridge, keys: KeyRegistry, message_id: str, envelope: str) -> Opened:
    opened = open_envelope(envelope, me=binding.party, keys=keys, accepted_types=accepted_types(binding.zone),
                           max_age=binding.settings().max_message_age, now=clock.utcnow())
    if opened.message_id != message_id:
        raise EnvelopeRefused("header_mismatch", "the job's message id differs from the envelope's")
    if not registration_for(opened.message_type, zone=binding.zone).accepts(opened.sender):
        raise EnvelopeRefused("type_not_accepted", f"{opened.message_type} is not taken from {opened.sender}")
    return opened


def check_payload(opened: Opened) -> None:
    """Raise PermanentFailure (``schema_invalid``, naming the path) unless the payload fits its type's schema."""
    try:
        messages.validate(opened.message_type, opened.payload)
    except messages.MessageInvalid as invalid:
        raise PermanentFailure(SCHEMA_INVALID, invalid.detail) from None


def apply_message(session: Session, binding: Bridge, opened: Opened, keys: KeyRegistry, *,
                  checked: bool = False) -> bool:
    """Validate, record, apply and acknowledge ``opened`` in the session's transaction; False if it was a duplicate.

    The schema is checked first (unless the caller just did: ``checked``), so a payload it refuses records
    nothing and is not acknowledged.
    """
    if not checked:
        check_payload(opened)
    applied = _record_processed(session, binding.processed, opened)
    if opened.acknowledges is not None and not acknowledge(session, opened.acknowledges, by=opened.sender):
        log.warning("message %s from %s carried an ack of a message to another party: ignored", opened.message_id,
                    opened.sender)
    reply = Reply(opened.sender, opened.message_id) if opened.message_type != ACK else None
    if applied:
        session.info[REPLY] = reply
        try:
            registration_for(opened.message_type, zone=binding.zone).handler(session, opened)
        finally:
            session.info.pop(REPLY, None)
    if reply is not None and not reply.carried:
        binding.send(session, message_type=ACK, recipient=opened.sender, payload=ack_payload(opened.message_id),
                     keys=keys)
    session.flush()
    return applied


def _record_processed(session: Session, model: type[Any], opened: Opened) -> bool:
    """Insert the processed-message row unless it exists; False for a duplicate.

    ``INSERT … ON CONFLICT DO NOTHING`` rather than a savepoint: pysqlite's SAVEPOINT could commit
    early, and on PostgreSQL a second worker with the same message waits here until the first
    commits (then inserts nothing) or rolls back (then inserts and applies it itself).
    """
    values = {"message_id": opened.message_id, "message_type": opened.message_type, "sender": opened.sender,
              "processed_at": clock.utcnow()}
    dialect = session.get_bind().dialect.name
    if dialect not in _INSERTS:
        raise RuntimeError(f"the bridge supports PostgreSQL and SQLite, not {dialect}")
    table = model.__table__
    statement = _INSERTS[dialect](table).values(**values).on_conflict_do_nothing(index_elements=["message_id"])
    # RETURNING rather than rowcount, which some drivers leave at -1 for this statement.
    return session.execute(statement.returning(table.c.message_id)).first() is not None


def record_dead_letter(binding: Bridge, *, message_id: str, reason: str, detail: str, queue: str,
                       envelope: str | None, refused: bool) -> Any | None:
    """Write a dead-letter row and an operation-log row (flushes); None if the same one is already open."""
    session = binding.session
    model = binding.dead_letters
    message_id = str(message_id)[:36]
    # The sender republishes until acknowledged, so the same failure comes back: one open row is enough.
    existing = session.execute(
        select(model.id).where(model.message_id == message_id, model.reason == reason, model.resolved_at.is_(None))
        .limit(1)
    ).scalar_one_or_none()
    if existing is not None:
        return None
    claimed = _claimed_header(envelope)
    row = model(message_id=message_id, message_type=claimed.get("typ"), sender=claimed.get("iss"), reason=reason,
                detail=detail, queue=queue, created_at=clock.utcnow(),
                envelope=envelope if isinstance(envelope, str) and len(envelope) <= JWE_SIZE_LIMIT else None)
    session.add(row)
    session.flush()
    binding.audit(session, "bridge.refused" if refused else "bridge.dead_letter",
                  outcome="denied" if refused else "failure", target_type="message", target_id=message_id,
                  detail={"reason": reason, "queue": queue, "claimed_sender": claimed.get("iss"),
                          "claimed_type": claimed.get("typ"), "dead_letter_id": row.id})
    return row


def on_failure(job: Job, connection: Redis, exc_type: type[BaseException] | None = None,
               exc_value: BaseException | None = None, traceback: Any = None) -> None:
    """rq's failure callback: after the last retry, the message goes to the dead-letter table.

    A batch's messages not yet processed are published again instead, each as a job of its own.
    """
    if job.retries_left:
        return  # rq will run it again
    detail = "the worker died while running it" if exc_type is AbandonedJobError else describe(exc_value)
    job_ended_for_good(job, detail=f"failed after its retries: {detail}")


def job_ended_for_good(job: Job, *, detail: str) -> None:
    """A delivery job failed and will not run again: dead-letter its message, or split its batch (app context)."""
    if job.func_name == DELIVER_BATCH:
        split_batch(job)
    else:
        dead_letter_job(job, detail=detail)


def split_batch(job: Job) -> int:
    """Publish each message of a failed batch job that this app has not processed as a job of its own; how many.

    Each then has a single delivery's retries and, after them, its own dead letter: a message that
    kills its work-horse costs the others in its batch one attempt, not their place. A message that
    was refused or dead-lettered in the batch is published again too and meets its open dead letter
    (``record_dead_letter`` writes no second one).
    """
    binding = current_bridge()
    session = binding.session
    pairs = batch_messages(job.args)
    if pairs is None:
        log.error("batch job %s has no readable messages: nothing to publish again", _short(job.id))
        return 0
    model = binding.processed
    try:
        done = set(session.execute(
            select(model.message_id).where(model.message_id.in_([m for m, _ in pairs]))).scalars())
    finally:
        session.rollback()
    policy = DeliveryPolicy.from_settings(binding.settings())
    again = 0
    for message_id, envelope in pairs:
        if message_id not in done:
            again += publish(message_id, str(job.origin), envelope, job.connection, policy)
    log.warning("batch job %s failed: %d of its %d message(s) published again one per job", _short(job.id), again,
                len(pairs))
    return again


def dead_letter_job(job: Job, *, detail: str) -> None:
    """Dead-letter the message of an rq job that will not run again (in the app context; commits)."""
    binding = current_bridge()
    session = binding.session
    args = list(job.args or ())
    message_id = str(args[0]) if args else job.id
    envelope = args[1] if len(args) > 1 and isinstance(args[1], str) else None
    try:
        record_dead_letter(binding, message_id=message_id, reason=RETRIES_EXHAUSTED, detail=detail,
                           queue=job.origin, envelope=envelope, refused=False)
        session.commit()
    except Exception as exc:
        session.rollback()
        log.error("could not dead-letter %s: %s (the sender's republish brings it back)", _short(message_id),
                  describe(exc))
        raise DeliveryError(f"{describe(exc)} while dead-lettering {_short(message_id)}") from None
    log.error("message %s dead-lettered: %s", _short(message_id), detail)


def describe(exc: BaseException | None) -> str:
    """An error as its type alone (our own DeliveryError keeps its text, which holds no data)."""
    if exc is None:
        return "unknown error"
    if isinstance(exc, DeliveryError):
        return str(exc)
    return type(exc).__name__


def _claimed_header(envelope: str | None) -> dict[str, str]:
    try:
        header = peek_header(envelope or "")
    except Exception:
        return {}
    # Cut to the column widths: these are whatever the (unverified) header says.
    return {k: str(header[k])[:width] for k, width in (("iss", 60), ("typ", 50)) if isinstance(header.get(k), str)}


def _current_queue() -> str:
    job = get_current_job()
    return str(job.origin) if job is not None else "direct"


def _short(message_id: Any) -> str:
    # A job's message id is unverified input: anything but a UUID is quoted, so it cannot forge log lines.
    text = str(message_id)
    return text if UUID_PATTERN.match(text) else repr(text[:36])
