"""Acknowledgements: the receiver's ``ack`` marks the sender's outbox row acknowledged, so it is no longer republished.

An ack is itself never acknowledged (that would never end): if one is lost, the relay republishes
the original message, the receiver finds it already processed and acknowledges it again.

A reply carries the ack: when applying a message makes the receiver send a message back to its sender
in the same transaction (the back office's status for an application), the first such message carries
the id it acknowledges as a signed claim of its envelope (``ack``), and no separate ack is sent. The
sender marks its row acknowledged when it applies the reply, or when it finds it a duplicate. A carried
ack for a row sent to another party changes nothing (a standalone one is refused as before).
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
    if not acknowledge(session, message.payload["message_id"], by=message.sender):  # a UUID: its schema says so
        raise PermanentFailure("ack_from_another_party", f"{message.sender} acknowledged a message to another party")


def acknowledge(session: Session, acked: str, *, by: str) -> bool:
    """Mark outbox row ``acked`` acknowledged by ``by`` (flushes); False if it went to another party (left as is).

    An unknown id is ignored (True): the row may have been purged since.
    """
    outbox = current_app.extensions["bridge"].outbox
    row = session.execute(select(outbox).where(outbox.id == acked).with_for_update()).scalar_one_or_none()
    if row is None:
        log.warning("ack from %s for unknown message %s ignored", by, acked)
        return True
    if row.recipient != by:
        return False
    if row.state != ACKNOWLEDGED:
        row.state = ACKNOWLEDGED
        row.acknowledged_at = clock.utcnow()
        session.flush()
    return True


# session.info while a handler runs: the sender of the message being applied and its id. The handler's first
# message back to that sender carries the ack (``Bridge.send``), and no separate ack is sent.
REPLY = "bridge.reply"


class Reply:
    """The ack a reply to ``to`` may carry for ``message_id``, and whether one did."""

    def __init__(self, to: str, message_id: str) -> None:
        self.to, self.message_id, self.carried = to, message_id, False

    def take(self, recipient: str, message_type: str) -> str | None:
        """The id to acknowledge in a message of ``message_type`` to ``recipient``, once; None otherwise."""
        if self.carried or recipient != self.to or message_type == ACK:
            return None
        self.carried = True
        return self.message_id
