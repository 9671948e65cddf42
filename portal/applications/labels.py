"""What residents read for each kind and status of application, in their language."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask_babel import get_locale
from flask_babel import lazy_gettext as _l

from bridge import reasons
from portal.models import ApplicationKind, ApplicationStatus

KINDS = {
    ApplicationKind.MOVE_OUT: _l("Move-out notification (転出届)"),
    ApplicationKind.MOVE_IN_RESERVATION: _l("Move-in reservation (転入予約)"),
    ApplicationKind.IN_CITY_RESERVATION: _l("In-city move reservation (転居予約)"),
    ApplicationKind.CERTIFICATE: _l("Certificate request (住民票の写し等)"),
    ApplicationKind.DISCLOSURE_REQUEST: _l("Disclosure request (開示請求)"),
    ApplicationKind.CORRECTION_REQUEST: _l("Correction request (訂正請求)"),
    ApplicationKind.SUSPENSION_REQUEST: _l("Suspension request (利用停止請求)"),
}
# The items of one's own record a correction request may name (core.residentrequests.CORRECTABLE).
RECORD_ITEMS = {
    "name": _l("Name (氏名)"),
    "name_kana": _l("Name in kana (ふりがな)"),
    "birth_date": _l("Date of birth (生年月日)"),
    "banchi": _l("Lot number of the address (番地)"),
    "katagaki": _l("Building and room (方書)"),
    "honseki": _l("Registered domicile (本籍)"),
    "hittosha": _l("Head of the family register (筆頭者)"),
    "alphabet_name": _l("Name in the alphabet"),
    "tsusho": _l("Common name (通称)"),
}
# What a suspension request asks to stop (core.residentrequests.SUSPENSION_USES).
SUSPENSION_USES = {
    "use": _l("Stop using my information (利用の停止)"),
    "erasure": _l("Erase my information (消去)"),
    "provision": _l("Stop providing my information to others (提供の停止)"),
}
# Who accessed the record, by role (the disclosure answer names roles, never people).
ROLES = {
    "clerk": _l("Resident registration clerk"),
    "approver": _l("Approver"),
    "number_use": _l("Staff handling My Numbers"),
    "admin": _l("System administrator"),
    "auditor": _l("Information security officer"),
}
# The items of the record a disclosure answer shows.
ANSWER_ITEMS = {
    "name": _l("Name (氏名)"),
    "name_kana": _l("Name in kana (ふりがな)"),
    "birth_date": _l("Date of birth (生年月日)"),
    "sex": _l("Sex (性別)"),
    "address": _l("Address (住所)"),
    "relationship": _l("Relationship to the householder (続柄)"),
    "honseki": _l("Registered domicile (本籍)"),
    "hittosha": _l("Head of the family register (筆頭者)"),
}
SEXES = {"1": _l("Male"), "2": _l("Female")}


def role_label(who: str) -> str:
    """The roles of whoever accessed the record, in the page's language (an unknown one as it came)."""
    separator = "、" if str(get_locale() or "ja").startswith("ja") else ", "
    return separator.join(str(ROLES.get(part.strip(), part.strip())) for part in who.split(","))
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
