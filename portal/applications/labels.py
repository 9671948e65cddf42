"""What residents read for each kind and status of application, in their language."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask_babel import lazy_gettext as _l

from bridge import reasons
from portal.models import ApplicationKind, ApplicationStatus

KINDS = {
    ApplicationKind.MOVE_OUT: _l("Move-out notification (転出届)"),
    ApplicationKind.MOVE_IN_RESERVATION: _l("Move-in reservation (転入予約)"),
    ApplicationKind.IN_CITY_RESERVATION: _l("In-city move reservation (転居予約)"),
    ApplicationKind.CERTIFICATE: _l("Certificate request (住民票の写し等)"),
}
STATUSES = {
    ApplicationStatus.SUBMITTED: _l("Sent"),
    ApplicationStatus.RECEIVED: _l("Received by the city"),
    ApplicationStatus.IN_REVIEW: _l("Being checked"),
    ApplicationStatus.RETURNED: _l("Returned to you for correction"),
    ApplicationStatus.APPROVED: _l("Approved"),
    ApplicationStatus.COMPLETED: _l("Completed"),
    ApplicationStatus.REJECTED: _l("Rejected"),
    ApplicationStatus.WITHDRAWN: _l("Withdrawn"),
}


def kind_label(kind: ApplicationKind | str) -> Any:
    """The name of an application kind."""
    return KINDS[ApplicationKind(kind)]


def status_label(status: ApplicationStatus | str) -> Any:
    """The name of a status."""
    return STATUSES[ApplicationStatus(status)]


def reason_label(code: str | None, text: str | None) -> Any:
    """Why the city returned or kept an application: its own reason in the reader's language, a clerk's as typed."""
    return reasons.label(code, text)


def to_date(value: str | None) -> dt.date | None:
    """An ISO date string as a date (for templates)."""
    return dt.date.fromisoformat(value) if value else None
