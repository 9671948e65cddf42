"""Every word a person reads in the back office for a stored value: labels of statuses, kinds, case steps and
intake findings, in the catalogue (English source, Japanese in translations/ja), never the raw value.

Templates reach them as ``status_label``/``certificate_status_label`` (Jinja globals) or through the view.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l

from backoffice.models import CaseStatus, CertificateStatus, Role
from bridge import reasons

KIND_LABELS = {
    "move_out": _l("Move-out notification"),
    "move_in_reservation": _l("Move-in reservation"),
    "in_city_reservation": _l("In-city move reservation"),
    "certificate": _l("Certificate request"),
}
STATUS_LABELS = {
    CaseStatus.RECEIVED: _l("Received, not yet reviewed"),
    CaseStatus.IN_REVIEW: _l("In review"),
    CaseStatus.RETURNED: _l("Returned"),
    CaseStatus.CONFIRMED: _l("Confirmed, awaiting approval"),
    CaseStatus.APPROVED: _l("Approved"),
    CaseStatus.REJECTED: _l("Rejected"),
    CaseStatus.WITHDRAWN: _l("Withdrawn"),
    CaseStatus.COMPLETED: _l("Completed"),
}
ACTION_LABELS = {
    "awaiting_moveout_certificate": _l("Waiting for the move-out certificate information (転出証明書情報)"),
    "moveout_certificate_matched": _l("Move-out certificate information received and matched"),
    "counter_prepared": _l("Prepared for the counter"),
    "certificate_issued": _l("Certificate issued"),
    "certificate_revoked": _l("Certificate revoked"),
    "received": _l("Arrived from the portal"),
    "claim": _l("Claimed"),
    "release": _l("Released"),
    "confirm": _l("Confirmed"),
    "return": _l("Returned to the applicant"),
    "reject": _l("Rejected"),
    "approve": _l("Approved"),
    "complete": _l("Completed"),
    "withdrawn": _l("Withdrawn by the applicant"),
    "movein_notice": _l("転入通知 received from the destination"),
    "cancellation_requested": _l("The resident asked at the counter to cancel the move (recorded by a clerk)"),
    "moveout_cancelled": _l("転出取消: the move-out was cancelled and the records restored"),
    "reservation_cancelled": _l("予約取消: the reservation was cancelled"),
    "notification_late": _l("届出期間経過: notified more than 14 days after the move"),
    "paper_moveout_certificate": _l("Paper 転出証明書 recorded"),
    "card_use_lapsed": _l("特例転入 limit passed: the card's special use lapsed (no 継続利用; a new card is needed)"),
    "householder_needed": _l("The householder has moved out and two or more who stay could head the household: "
                             "the members who stay file a 世帯主変更届"),
}
FINDING_LABELS = {
    "awaiting_moveout_certificate": _l("Waiting for the move-out certificate information (転出証明書情報)"),
    "moveout_certificate_matched": _l("Move-out certificate information received and matched for everyone"),
    "signature_refused": _l("The signature could not be verified"),
    "four_items_mismatch": _l("The card's four basic items differ from the ledger record"),
    "applicant_not_found": _l("No current resident has the signer's four basic items"),
    "unknown_member": _l("A mover is not a current resident"),
    "would_return": _l("Intake would have returned this case (sensitive: a clerk decides)"),
}
ITEM_LABELS = {
    "name": _l("Name"),
    "kana": _l("Kana"),
    "birth_date": _l("Date of birth"),
    "relationship": _l("Relationship"),
}
APPLICATION_LABELS = {
    "moveDate": _l("Date of the move"),
    "fromMunicipalityCode": _l("Municipality moved from (code)"),
    "newHouseholder": _l("New householder"),
    "contactPhone": _l("Contact telephone"),
    "visitDate": _l("Planned counter visit"),
    "municipalityCode": _l("Municipality (code)"),
    "kind": _l("Certificate type"),
    "persons": _l("Persons"),
    "copies": _l("Copies"),
    "purpose": _l("Purpose"),
    "delivery": _l("Delivery"),
}
DESTINATION_LABELS = {
    "postalCode": _l("Postal code"),
    "prefecture": _l("Prefecture"),
    "municipality": _l("Municipality"),
    "municipalityCode": _l("Municipality (code)"),
    "address": _l("Address"),
    "machiazaCode": _l("Town area (code)"),
    "banchi": _l("Block and lot number"),
    "katagaki": _l("Building and room"),
}
VALUE_LABELS = {
    "juminhyo": _l("Certified copy of the resident record"),
    "kisai_jiko": _l("Certificate of selected record items"),
    "self": _l("The applicant only"),
    "household": _l("The whole household"),
    "post": _l("By post"),
}
CERTIFICATE_ITEMS = {
    "householder": _l("Householder and relationship"),
    "honseki": _l("Registered domicile"),
    "foreignResident": _l("Foreign-resident items (category, status and period of residence, residence card number)"),
    "juminhyoCode": _l("Resident record code"),
    "myNumber": _l("My Number"),
}
# Findings whose stored detail only repeats the label (in both languages): the page shows the label alone.
FINDINGS_SAID_BY_THE_LABEL = frozenset({"awaiting_moveout_certificate", "moveout_certificate_matched"})
CERTIFICATE_STATUS_LABELS = {
    CertificateStatus.VALID: _l("Valid"),
    CertificateStatus.REVOKED: _l("Revoked"),
}

ROLE_LABELS = {
    Role.CLERK: _l("Clerk"),
    Role.APPROVER: _l("Approver"),
    Role.NUMBER_USE: _l("Number-use staff"),
    Role.ADMIN: _l("Administrator"),
    Role.AUDITOR: _l("Auditor"),
}

# Residents' own requests (R20, backoffice/services/resident_requests.py): kinds, steps, correctable items.
REQUEST_KIND_LABELS = {
    "disclosure": _l("Disclosure request"),
    "correction": _l("Correction request"),
    "suspension": _l("Suspension request"),
}
REQUEST_STATUS_LABELS = {
    "received": _l("Received, awaiting confirmation"),
    "confirmed": _l("Confirmed, awaiting a decision"),
    "granted": _l("Granted"),
    "refused": _l("Not granted"),
}
RECORD_ITEM_LABELS = {
    "name": _l("Name"),
    "name_kana": _l("Kana"),
    "birth_date": _l("Date of birth"),
    "banchi": _l("Block and lot number"),
    "katagaki": _l("Building and room"),
    "honseki": _l("Registered domicile"),
    "hittosha": _l("Head of the family register"),
    "alphabet_name": _l("Name in the alphabet"),
    "tsusho": _l("Common name"),
}
# What a suspension request asks to stop (core.residentrequests.SUSPENSION_USES), kept as the request's item.
SUSPENSION_USE_LABELS = {
    "use": _l("Stop using the information (利用の停止)"),
    "erasure": _l("Erase the information (消去)"),
    "provision": _l("Stop providing the information to others (提供の停止)"),
}


def status_reason(text: str | None) -> Any:
    """A case's status reason in the page's language: intake's own reasons from the catalogue, a clerk's as typed."""
    from backoffice.services.intake import reason_code

    return reasons.label(reason_code(text), text)


def role_labels(roles: Any) -> list[str]:
    """Staff roles in the page's language, in the order of Role."""
    return [str(ROLE_LABELS[role]) for role in Role if role in roles]


def status_label(status: CaseStatus) -> Any:
    """A case's status in the page's language."""
    return STATUS_LABELS[status]


def certificate_status_label(status: CertificateStatus) -> Any:
    """An issued certificate's status in the page's language."""
    return CERTIFICATE_STATUS_LABELS[status]


def register(app: Any) -> None:
    """Make the labels reachable from every back-office template."""
    app.jinja_env.globals.update(status_label=status_label, certificate_status_label=certificate_status_label,
                                 role_labels=role_labels, status_reason=status_reason,
                                 value_labels=VALUE_LABELS)
