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
from portal.models import Application

SUBMITTED = messages.APPLICATION_SUBMITTED
WITHDRAWN = messages.APPLICATION_WITHDRAWN


def submitted_row(session: Session, application: Application) -> dict[str, Any]:
    """The outbox row telling the municipality about a new application (with the signed application), for
    ``submit`` to insert in the statement that inserts the application: checked and sealed as ``send`` would."""
    return current_bridge().outbox_row(session, message_type=SUBMITTED,
                                       recipient=f"muni:{application.municipality_code}",
                                       payload=_payload(application, {"signedApplication": application.signed_jws}))


def application_withdrawn(session: Session, application: Application, jws: str) -> None:
    """Tell the municipality the resident withdrew (with the signed withdrawal)."""
    _send(session, application, WITHDRAWN, {"signedWithdrawal": jws})


def _send(session: Session, application: Application, message_type: str, extra: dict[str, str]) -> None:
    send(session, message_type=message_type, recipient=f"muni:{application.municipality_code}",
         payload=_payload(application, extra))


def _payload(application: Application, extra: dict[str, str]) -> dict[str, Any]:
    return {"receiptNumber": application.receipt_number, "kind": application.kind.value,
            "moveId": application.move_id, "submittedAt": application.submitted_at.isoformat(), **extra}
