"""What the portal sends to municipalities, written to the outbox in the caller's transaction.

Each message is validated against its schema in ``bridge.messages`` and sealed for its recipient
when it is written (signed by the portal, encrypted to the municipality); the relay publishes it
once the transaction has committed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from bridge import messages
from bridge.binding import current_bridge, send
from bridge.outbox import sealed_row
from bridge.queues import QueueNames
from portal.models import Application

SUBMITTED = messages.APPLICATION_SUBMITTED
WITHDRAWN = messages.APPLICATION_WITHDRAWN


def application_submitted(session: Session, application: Application) -> None:
    """Queue the signed application for its municipality's intake."""
    _send(session, application, SUBMITTED, {"signedApplication": application.signed_jws})


def submitted_row(application: Application) -> dict[str, Any]:
    """The outbox row of ``application_submitted``, sealed the same way, for the caller to insert itself.

    ``submit`` writes it in the statement that inserts the application (``Bridge.send`` adds it
    through the unit of work instead): the same payload, schema check, queue and sealing.
    """
    bridge = current_bridge()
    recipient = f"muni:{application.municipality_code}"
    return sealed_row(message_type=SUBMITTED, recipient=recipient, payload=_payload(application, {
        "signedApplication": application.signed_jws}), keys=bridge.keys(), sender=bridge.party,
        queue=QueueNames.for_message(sender=bridge.party, recipient=recipient, message_type=SUBMITTED))


def application_withdrawn(session: Session, application: Application, jws: str) -> None:
    """Tell the municipality the resident withdrew (with the signed withdrawal)."""
    _send(session, application, WITHDRAWN, {"signedWithdrawal": jws})


def _send(session: Session, application: Application, message_type: str, extra: dict[str, str]) -> None:
    send(session, message_type=message_type, recipient=f"muni:{application.municipality_code}",
         payload=_payload(application, extra))


def _payload(application: Application, extra: dict[str, str]) -> dict[str, Any]:
    return {"receiptNumber": application.receipt_number, "kind": application.kind.value,
            "moveId": application.move_id, "submittedAt": application.submitted_at.isoformat(), **extra}
