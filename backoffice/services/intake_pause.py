"""Pausing one application kind's intake: the portal keeps accepting, this back office holds, resuming drains in order.

While a kind (``certificate``, ``move_out``, …) is paused, an ``application.submitted`` of that kind
is not applied: the delivery job stores its envelope as received (ciphertext) in ``held_message``,
acknowledges it to the portal (so the portal's relay stops republishing) and ends normally: nothing
fails, nothing is dead-lettered. The portal is told (``intake.paused``) and shows its residents that
processing of that kind is delayed. Resuming puts the held envelopes back on the intake queue in
the order they arrived, where the workers apply them as usual, once each (a copy arriving twice is a
duplicate). Pausing and resuming are in the operation log with the administrator and the reason.
"""

from __future__ import annotations

from typing import Any

import redis
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from backoffice.models import HeldMessage, IntakePause
from backoffice.services import audit
from bridge import messages
from bridge.acks import ACK, ack_payload
from bridge.binding import current_bridge
from bridge.holds import register_hold
from core import clock
from core.envelope import Opened
from core.refusal import Refused

KINDS = messages.APPLICATION_KINDS
INTAKE_PAUSED = messages.INTAKE_PAUSED
REASON_MAX = 500
SETTLE_SECONDS = 10  # how long resuming waits for the jobs that held its messages to finish


class PauseError(Refused, ValueError):
    """A pause or resume that cannot be done; the message names the field."""


def paused(session: Session) -> list[IntakePause]:
    """The paused kinds, oldest pause first."""
    return list(session.execute(select(IntakePause).order_by(IntakePause.paused_at)).scalars())


def held_counts(session: Session) -> dict[str, int]:
    """Held applications by kind."""
    return {k: int(n) for k, n in session.execute(
        select(HeldMessage.kind, func.count()).group_by(HeldMessage.kind)).all()}


def pause(session: Session, kind: str, reason: str, *, by: str) -> IntakePause:
    """Pause ``kind``'s intake (flushes; audited; the portal is told). PauseError naming the field."""
    reason = (reason or "").strip()
    if kind not in KINDS:
        raise PauseError("kind", "kind")
    if not reason or len(reason) > REASON_MAX:
        raise PauseError("reason", "reason")
    if session.get(IntakePause, kind) is not None:
        raise PauseError("kind", "already")
    row = IntakePause(kind=kind, reason=reason, paused_at=clock.utcnow(), paused_by=by)
    session.add(row)
    session.flush()
    audit.record("intake.pause", target_type="intake_kind", target_id=kind, detail={"reason": reason})
    _tell_portal(session, kind, paused=True)
    return row


def resume(session: Session, kind: str, connection: redis.Redis) -> int:
    """Resume ``kind``: its held applications go back on the intake queue in arrival order (flushes; audited).

    Returns how many were put back. A Redis error leaves everything as it was for the caller to roll back
    (a job already enqueued is applied once: the processed-message table sees to it).
    """
    from bridge.relay import DeliveryPolicy, publish, settled

    # Locked: a job holding a message of this kind right now finishes first (and its message is released
    # here), or waits and then finds the kind no longer paused (and applies it).
    row = session.execute(select(IntakePause).where(IntakePause.kind == kind).with_for_update()).scalar_one_or_none()
    if row is None:
        raise PauseError("kind", "not_paused")
    binding = current_bridge()
    policy = DeliveryPolicy.from_settings(binding.settings())
    held = session.execute(select(HeldMessage).where(HeldMessage.kind == kind).order_by(HeldMessage.id)).scalars().all()
    # The job that held a message may still be finishing: putting the message back now would enqueue nothing and
    # lose it. If one still runs after a moment, nothing changes and the administrator resumes again.
    if not settled([m.message_id for m in held], connection, seconds=SETTLE_SECONDS):
        raise PauseError("kind", "busy")
    for message in held:
        publish(message.message_id, message.queue, message.envelope, connection, policy)
        session.delete(message)
    session.delete(row)
    session.flush()
    audit.record("intake.resume", target_type="intake_kind", target_id=kind,
                 detail={"released": len(held), "paused_since": row.paused_at.isoformat(timespec="seconds")})
    _tell_portal(session, kind, paused=False)
    return len(held)


def _tell_portal(session: Session, kind: str, *, paused: bool) -> None:
    current_bridge().send(session, message_type=INTAKE_PAUSED, recipient="portal",
                          payload={"kind": kind, "paused": paused,
                                   "changedAt": clock.utcnow().isoformat(timespec="microseconds")})


def hold(session: Session, opened: Opened, envelope: str, queue: str) -> bool:
    """The back office's hold check (bridge.holds): keep an application of a paused kind, acknowledged.

    The delivery job asks only about a payload its schema accepted (one it refuses is dead-lettered).
    """
    if opened.message_type != messages.APPLICATION_SUBMITTED:
        return False
    kind = opened.payload["kind"]
    # FOR SHARE: a resume deleting the pause waits for this transaction, so no held message is left behind.
    pause_row = session.execute(select(IntakePause).where(IntakePause.kind == kind)
                                .with_for_update(read=True)).scalar_one_or_none()
    if pause_row is None:
        return False
    dialect = session.get_bind().dialect.name
    insert: Any = postgresql_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(HeldMessage.__table__).values(
        message_id=opened.message_id, kind=kind, queue=queue, envelope=envelope, held_at=clock.utcnow())
        .on_conflict_do_nothing(index_elements=["message_id"]))
    current_bridge().send(session, message_type=ACK, recipient=opened.sender, payload=ack_payload(opened.message_id))
    session.flush()
    return True


def metric_families(binding: Any) -> Any:
    """``bridge_intake_paused`` and ``bridge_intake_held`` per kind, for /metrics."""
    from prometheus_client.core import GaugeMetricFamily

    if binding.zone != "backoffice":
        return
    session = binding.session
    stopped = {row.kind for row in paused(session)}
    counts = held_counts(session)
    pause_family = GaugeMetricFamily("bridge_intake_paused", "1 while the kind's intake is paused.",
                                     labels=["party", "kind"])
    held_family = GaugeMetricFamily("bridge_intake_held", "Applications held while their kind is paused.",
                                    labels=["party", "kind"])
    for kind in KINDS:
        pause_family.add_metric([binding.party, kind], 1 if kind in stopped else 0)
        held_family.add_metric([binding.party, kind], counts.get(kind, 0))
    yield pause_family
    yield held_family


def register() -> None:
    """Make the delivery jobs of the back office ask ``hold`` first, and /metrics show the paused kinds."""
    from bridge import metrics

    register_hold("backoffice", hold)
    if metric_families not in metrics.EXTRA_FAMILIES:
        metrics.EXTRA_FAMILIES.append(metric_families)
