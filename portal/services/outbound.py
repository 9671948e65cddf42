"""What the portal sends to municipalities, written to the outbox in the caller's transaction.

Each message is validated against its schema in ``bridge.messages`` and sealed for its recipient
when it is written (signed by the portal, encrypted to the municipality); the relay publishes it
once the transaction has committed.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from bridge import messages
from bridge.binding import send
from portal.models import Application

SUBMITTED = messages.APPLICATION_SUBMITTED
WITHDRAWN = messages.APPLICATION_WITHDRAWN


def application_submitted(session: Session, application: Application) -> None:
    """Queue the signed application for its municipality's intake."""
    _send(session, application, SUBMITTED, {"signedApplication": application.signed_jws})


def application_withdrawn(session: Session, application: Application, jws: str) -> None:
    """Tell the municipality the resident withdrew (with the signed withdrawal)."""
    _send(session, application, WITHDRAWN, {"signedWithdrawal": jws})


def _send(session: Session, application: Application, message_type: str, extra: dict[str, str]) -> None:
    payload = {"receiptNumber": application.receipt_number, "kind": application.kind.value,
               "moveId": application.move_id, "submittedAt": application.submitted_at.isoformat(), **extra}
    send(session, message_type=message_type, recipient=f"muni:{application.municipality_code}", payload=payload)
