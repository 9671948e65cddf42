"""Acknowledgements: the receiver's ``ack`` marks the sender's outbox row acknowledged, so it is no longer republished.

An ack is itself never acknowledged (that would never end): if one is lost, the relay republishes
the original message, the receiver finds it already processed and acknowledges it again.
"""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge import messages
from bridge.handlers import PermanentFailure
from bridge.outbox import ACKNOWLEDGED
from core import clock
from core.envelope import Opened

ACK = messages.ACK
log = logging.getLogger("bridge.acks")


def ack_payload(message_id: str) -> dict[str, str]:
    """The payload of the ack of ``message_id``."""
    return {"message_id": message_id}


def handle_ack(session: Session, message: Opened) -> None:
    """Mark the acknowledged outbox row (flushes); only the party the message went to may acknowledge it."""
    outbox = current_app.extensions["bridge"].outbox
    acked = message.payload["message_id"]  # a UUID: bridge.messages checked it
    row = session.execute(select(outbox).where(outbox.id == acked).with_for_update()).scalar_one_or_none()
    if row is None:
        log.warning("ack from %s for unknown message %s ignored", message.sender, acked)
        return
    if row.recipient != message.sender:
        raise PermanentFailure("ack_from_another_party", f"{message.sender} acknowledged a message to {row.recipient}")
    if row.state != ACKNOWLEDGED:
        row.state = ACKNOWLEDGED
        row.acknowledged_at = clock.utcnow()
        session.flush()
