"""Dead letters for an administrator: list, inspect (metadata only), retry, or discard; each action audited.

- **retry** puts the envelope, as received, back on its queue as a delivery job (e.g. after the
  sender's key was imported or a handler was fixed); if it fails again it is dead-lettered again;
- **discard** closes the row for good. When the envelope opens (the sender is verified), the
  message id is recorded as processed without applying it, and an ack goes to the sender, so its
  relay stops republishing and a copy arriving later changes nothing. A refused envelope (its
  sender unproven) is only closed: nothing is sent to whoever it claims to come from.

Nothing here shows or logs a payload: the page sees the row's ids, reason and the JWE's header.
"""

from __future__ import annotations

from typing import Any

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.acks import ACK, ack_payload
from bridge.binding import Bridge
from bridge.handlers import accepted_types
from bridge.jobs.deliver import _record_processed
from bridge.queues import QueueNames
from bridge.relay import DeliveryPolicy, publish, settled
from core import clock
from core.envelope import EnvelopeRefused, open_envelope, peek_header

RETRIED, DISCARDED = "retried", "discarded"
HEADER_FIELDS = ("typ", "iss", "aud", "mid", "iat", "alg", "enc", "kid")
SETTLE_SECONDS = 5.0  # how long a retry waits for the job that dead-lettered the message to end


class DeadLetterClosed(ValueError):
    """The dead letter was already retried or discarded."""


class DeadLetterBusy(RuntimeError):
    """The job that dead-lettered the message has not ended yet; the row stays open to retry again."""


def open_letters(session: Session, model: type[Any], *, limit: int = 200) -> list[Any]:
    """Dead letters not yet retried or discarded, newest first."""
    return list(session.execute(
        select(model).where(model.resolved_at.is_(None)).order_by(model.id.desc()).limit(limit)).scalars())


def header(row: Any) -> dict[str, str]:
    """What the envelope's (unverified) protected header says: ids, types, parties and algorithms only."""
    try:
        claimed = peek_header(row.envelope or "")
    except Exception:
        return {}
    return {k: str(claimed[k])[:80] for k in HEADER_FIELDS if k in claimed}


def view(binding: Bridge, row: Any) -> None:
    """Record that an administrator opened the dead letter (flushes)."""
    binding.audit(binding.session, "bridge.dead_letter.view", outcome="success", target_type="dead_letter",
                  target_id=str(row.id), detail={"message_id": row.message_id, "reason": row.reason})


def retry(binding: Bridge, row: Any, connection: redis.Redis) -> None:
    """Enqueue the envelope again on its queue and close the row (flushes).

    Raises DeadLetterClosed for a closed row, ValueError for a row without an envelope or a queue, and
    DeadLetterBusy, leaving the row open, while a job for the message still runs: closing the row then would
    enqueue nothing and leave the message in no queue and no open row.
    """
    _check_open(row)
    if not row.envelope:
        raise ValueError("this dead letter kept no envelope to retry")
    QueueNames.consumer(row.queue)  # ValueError: not a bridge queue
    policy = DeliveryPolicy.from_settings(binding.settings())
    if not settled([row.message_id], connection, seconds=SETTLE_SECONDS) or not publish(
            row.message_id, row.queue, row.envelope, connection, policy):
        raise DeadLetterBusy(f"a job for message {row.message_id} is still running")
    _close(binding, row, RETRIED, detail={"enqueued": True})


def discard(binding: Bridge, row: Any) -> bool:
    """Close the row for good (flushes); True if the sender was verified and acknowledged."""
    _check_open(row)
    session = binding.session
    keys = binding.keys()
    try:
        opened = open_envelope(row.envelope or "", me=binding.party, keys=keys,
                               accepted_types=accepted_types(binding.zone) | {row.message_type or ""},
                               max_age=binding.settings().max_message_age, now=clock.utcnow())
    except EnvelopeRefused:
        opened = None
    acknowledged = False
    if opened is not None and opened.message_id == row.message_id:
        _record_processed(session, binding.processed, opened)  # a later copy is a duplicate: never applied
        if opened.message_type != ACK:
            binding.send(session, message_type=ACK, recipient=opened.sender, payload=ack_payload(opened.message_id),
                     keys=keys)
            acknowledged = True
    _close(binding, row, DISCARDED, detail={"acknowledged": acknowledged})
    return acknowledged


def _check_open(row: Any) -> None:
    if row.resolved_at is not None:
        raise DeadLetterClosed(f"dead letter {row.id} was already {row.resolution}")


def _close(binding: Bridge, row: Any, resolution: str, *, detail: dict[str, Any]) -> None:
    row.resolved_at, row.resolution = clock.utcnow(), resolution
    binding.session.flush()
    binding.audit(binding.session, f"bridge.dead_letter.{'retry' if resolution == RETRIED else 'discard'}",
                  outcome="success", target_type="dead_letter", target_id=str(row.id),
                  detail={"message_id": row.message_id, "reason": row.reason, "queue": row.queue, **detail})
