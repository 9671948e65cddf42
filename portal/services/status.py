"""Status messages from the municipalities: each step the back office takes shows on "My applications"."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.handlers import PermanentFailure, register
from core.envelope import Opened
from portal.models import Application, ApplicationStatus
from portal.services import applications as apps

STATUS = "application.status"


def receive_status(session: Session, opened: Opened) -> None:
    """Record the status a municipality reports for one of its applications (and only its own)."""
    receipt, status = opened.payload.get("receiptNumber"), opened.payload.get("status")
    try:
        new = ApplicationStatus(status)
    except ValueError as exc:
        raise PermanentFailure("schema", f"unknown status {status!r}") from exc
    application = session.execute(select(Application).where(Application.receipt_number == receipt)).scalar_one_or_none()
    if application is None or f"muni:{application.municipality_code}" != opened.sender:
        raise PermanentFailure("unknown_application", "status for an application this sender did not receive")
    if application.status is ApplicationStatus.WITHDRAWN:
        return  # the resident withdrew; a late "received" does not bring it back
    reason = opened.payload.get("reason")
    apps.set_status(session, application, new, actor=opened.sender, reason=reason if isinstance(reason, str) else None)


def register_handlers() -> None:
    """The message types the portal takes from municipalities."""
    register(STATUS, receive_status, zone="portal", senders={"muni:*"})
