"""The transactional outbox, the processed-message record, the dead-letter and alert tables (mixins for both databases).

A message is written to the outbox in the same transaction as the change that caused it, already
validated against its schema (``bridge.messages``) and sealed (only ciphertext is ever stored or
sent); the relay later publishes it. Senders call ``Bridge.send``, which derives everything but the
type, the recipient and the payload from the app. The receiver
records each message id it has processed in the transaction of its effect, and writes what it
could not process to its dead-letter table.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import CheckConstraint, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column

from bridge import messages
from bridge.queues import QueueNames
from core import clock
from core.db import UTCDateTime, bigintpk
from core.envelope import KeyRegistry, seal

PENDING, PUBLISHED, ACKNOWLEDGED = "pending", "published", "acknowledged"
STATES = (PENDING, PUBLISHED, ACKNOWLEDGED)


class OutboxMixin:
    """One sealed message waiting to be published, published, or acknowledged by its recipient."""

    __tablename__ = "outbox"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the message id (UUID4)
    message_type: Mapped[str] = mapped_column(String(50))
    recipient: Mapped[str] = mapped_column(String(60), index=True)
    queue: Mapped[str] = mapped_column(String(80))
    envelope: Mapped[str] = mapped_column(Text)  # the JWE; never plaintext
    state: Mapped[str] = mapped_column(String(20), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # The rq job that carried it when it was last published in a batch (a job's id is otherwise the message id).
    job_id: Mapped[str | None] = mapped_column(String(36))
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (
            CheckConstraint("state in ('pending', 'published', 'acknowledged')", name="state"),
            # The relay's query: what is due, oldest first.
            Index("ix_outbox_state_next_attempt_at", "state", "next_attempt_at"),
        )


class ProcessedMessageMixin:
    """A message this database has applied; the primary key makes a second application impossible."""

    __tablename__ = "processed_message"

    message_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    message_type: Mapped[str] = mapped_column(String(50))
    sender: Mapped[str] = mapped_column(String(60))
    processed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class DeadLetterMixin:
    """A message that was refused or kept failing, for an administrator to inspect, retry or discard."""

    __tablename__ = "dead_letter"

    id: Mapped[bigintpk]
    message_id: Mapped[str] = mapped_column(String(36), index=True)
    # Type and sender as the envelope's header claims them: a refused message was never verified.
    message_type: Mapped[str | None] = mapped_column(String(50))
    sender: Mapped[str | None] = mapped_column(String(60))
    reason: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text, default="")  # never personal data: reasons and error types only
    queue: Mapped[str] = mapped_column(String(80))
    envelope: Mapped[str | None] = mapped_column(Text)  # the JWE as received, so it can be retried
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    resolution: Mapped[str | None] = mapped_column(String(20))


class AlertMixin:
    """Something an administrator must know about (bridge/alerting.py): open until resolved, mailed once.

    The relay adds a row per event (Redis lost its data); the alert check keeps one open row per
    condition and ``subject`` (a queue, a recipient, the party), seen again and again
    (``last_seen_at``, ``count``). Anyone may add a row with ``kind``, ``detail`` and ``created_at``.
    """

    __tablename__ = "bridge_alert"

    id: Mapped[bigintpk]
    kind: Mapped[str] = mapped_column(String(40))
    # How many outbox messages the event concerned (republished at once, for ``redis_data_lost``).
    messages: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str] = mapped_column(Text, default="")  # counts and ids only, never personal data
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)  # first seen
    subject: Mapped[str | None] = mapped_column(String(80))  # a queue, recipient or party; None: an event row
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    mailed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(80))  # the administrator's login id
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), index=True)
    resolved_by: Mapped[str | None] = mapped_column(String(80))

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        # One open row per condition and subject, so checks running at once cannot open it twice.
        return (Index(f"uq_{cls.__tablename__}_open", "kind", "subject", unique=True,
                      postgresql_where=text("resolved_at IS NULL AND subject IS NOT NULL"),
                      sqlite_where=text("resolved_at IS NULL AND subject IS NOT NULL")),)

    @property
    def seen_last(self) -> dt.datetime:
        """When the condition was last seen (an event row: when it happened)."""
        return self.last_seen_at or self.created_at


def add_message(
    session: Session,
    outbox_model: type[Any],
    *,
    message_type: str,
    recipient: str,
    payload: dict[str, Any],
    keys: KeyRegistry,
    sender: str,
    queue: str,
    acknowledges: str | None = None,
) -> Any:
    """Validate ``payload``, seal it to ``recipient`` and add it to the outbox in the caller's transaction (flushes).

    A payload that is not what ``message_type`` defines raises ``messages.MessageInvalid`` before
    anything is added. Nothing touches Redis here: the relay publishes the row once the caller has
    committed. Prefer ``Bridge.send``, which derives the model, keys, sender and queue.
    """
    row = outbox_model(**sealed_row(message_type=message_type, recipient=recipient, payload=payload, keys=keys,
                                    sender=sender, queue=queue, acknowledges=acknowledges))
    session.add(row)
    session.flush()
    return row


def sealed_row(*, message_type: str, recipient: str, payload: dict[str, Any], keys: KeyRegistry, sender: str,
               queue: str, acknowledges: str | None = None) -> dict[str, Any]:
    """The column values of a new outbox row: ``payload`` validated and sealed exactly as ``add_message`` does.

    For a caller that writes the row in a statement of its own (a Core insert in the same
    transaction as the change that caused it); nothing is written here.
    """
    messages.validate(message_type, payload)
    if QueueNames.consumer(queue) != recipient:
        raise ValueError(f"queue {queue} does not lead to {recipient}")
    now = clock.utcnow()
    sealed = seal(payload, message_type=message_type, sender=sender, recipient=recipient, keys=keys,
                  created_at=now, acknowledges=acknowledges)
    return {"id": sealed.message_id, "message_type": message_type, "recipient": recipient, "queue": queue,
            "envelope": sealed.token, "state": PENDING, "attempts": 0, "next_attempt_at": now, "created_at": now}


def outbox_job_id_upgrade(op: Any) -> None:
    """The migration step of both outboxes: the id of the batch job a row was last published in (nullable)."""
    import sqlalchemy as sa

    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("job_id", sa.String(length=36), nullable=True))


def outbox_job_id_downgrade(op: Any) -> None:
    """Undo ``outbox_job_id_upgrade``."""
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("job_id")
