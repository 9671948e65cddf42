"""Certificates (F4, F7, R14): 住民票の写し and 住民票記載事項証明書, from eligibility to mailing and revocation.

A resident's request arrives as a case of kind ``certificate``. Before approval the clerk sees the
eligibility result and a preview (the My Number masked for staff without ``number_use``, R2).
Approving the case issues the certificate in the approval's transaction: the printed content is
sealed (AES-256-GCM) with a random verification code, only the code's hash and the issue date go to
the portal (``certificate.issued``) for its public verification page, and every issue, print and
download is in the operation log. Recording the mailing completes the case; a revocation tells the
portal (``certificate.revoked``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from backoffice.models import (
    Case,
    CaseStatus,
    CertificateStatus,
    IssuedCertificate,
    RecordStatus,
    Resident,
    Sex,
    Staff,
)
from backoffice.services import audit, records, support
from backoffice.services import cases as case_service
from backoffice.services.ledger import MASKED, full_address_text, may_see_my_number
from bridge import messages
from bridge.binding import send
from core import certcode, clock
from core.fieldcrypto import FieldCipher
from core.i18n import wareki
from core.refusal import Refused

ISSUED = messages.CERTIFICATE_ISSUED
REVOKED = messages.CERTIFICATE_REVOKED
TITLES = {"juminhyo": "住民票の写し", "kisai_jiko": "住民票記載事項証明書"}
# The optional items a resident may ask for (portal/schemas.py CERTIFICATE.items), in print order.
OPTIONAL_ITEMS = ("householder", "honseki", "foreignResident", "juminhyoCode", "myNumber")
# Findings of intake that leave the applicant's identity in doubt: no certificate until a clerk sorts it out.
IDENTITY_FINDINGS = ("signature_refused", "applicant_not_found", "four_items_mismatch")
TRACKING = re.compile(r"^[A-Za-z0-9-]{1,30}$")

# What the clerk reads when a certificate step is refused, in the catalogue (English source, Japanese in
# translations/ja): the page's language.
MESSAGES = {
    "not_certificate": _l("This case is not a certificate request."),
    "applicant": _l("The requester is not a current resident of this city; only the person or a member of the same "
                    "household may request a certificate."),
    "identity": _l("The requester's identity is in doubt (see the intake findings)."),
    "persons": _l("Nobody to certify is a current resident."),
    "request": _l("The request (kind of certificate, for whom, copies) cannot be read."),
    "items.myNumber": _l("The My Number can be printed on a copy of the resident record only, not on a certificate "
                         "of record items."),
    "mayor": _l("Certificates cannot be issued until MAYOR_NAME is configured."),
    "number_use": _l("Only number-use staff may print or download a certificate that shows a My Number."),
    "mailed_on": _l("Enter the mailing date (between the issue date and today)."),
    "tracking_number": _l("The tracking number is up to 30 letters, digits and hyphens."),
    "already_mailed": _l("This certificate's mailing is already recorded."),
    "revoked": _l("This certificate is revoked."),
    "support_measure": _l("A person this request covers is under a support measure: it cannot be answered "
                          "automatically; a clerk will look into it."),
    "reason": _l("Enter the reason for the revocation (up to 200 characters)."),
}


class CertificateError(Refused, ValueError):
    """A certificate step that is not allowed; ``field`` names what to correct, ``code`` its message in ``MESSAGES``."""

    def __init__(self, field: str, code: str | None = None) -> None:
        super().__init__(field, MESSAGES[code or field], code=code or field)


@dataclass(frozen=True)
class CertificateRequest:
    """What the resident signed: which certificate, for whom, which optional items, how many copies."""

    kind: str
    persons: str
    items: dict[str, bool]
    copies: int
    purpose: str

    @classmethod
    def from_case(cls, case: Case) -> CertificateRequest:
        """Read the request from the signed application kept on the case."""
        app = case_service.signed_application(case)
        items = app.get("items") or {}
        if not isinstance(items, dict):
            items = {}
        copies = app.get("copies")
        return cls(kind=str(app.get("kind", "")), persons=str(app.get("persons", "")),
                   items={k: items.get(k) is True for k in OPTIONAL_ITEMS},
                   copies=copies if isinstance(copies, int) and not isinstance(copies, bool) else 0,
                   purpose=str(app.get("purpose", "")))


@dataclass
class Eligibility:
    """Whether the request may be issued; the residents to certify and the optional items allowed."""

    request: CertificateRequest | None
    residents: list[Resident] = field(default_factory=list)
    items: tuple[str, ...] = ()
    refusals: list[CertificateError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing stands in the way of issuing."""
        return not self.refusals


def check_eligibility(session: Session, case: Case) -> Eligibility:
    """The applicant or a member of the same household (F4); optional items only where the law allows them."""
    if case.kind != "certificate":
        return Eligibility(None, refusals=[CertificateError("case", "not_certificate")])
    request = CertificateRequest.from_case(case)
    if request.kind not in TITLES or request.persons not in ("self", "household") or not 1 <= request.copies <= 10:
        return Eligibility(None, refusals=[CertificateError("request")])
    result = Eligibility(request)
    findings = {f.get("code") for f in json.loads(case.findings or "[]")}
    if findings & set(IDENTITY_FINDINGS):
        result.refusals.append(CertificateError("applicant", "identity"))
    applicant = session.get(Resident, case.applicant_resident_id) if case.applicant_resident_id else None
    if applicant is None or not (applicant.status is RecordStatus.CURRENT or records.awaiting_moveout(applicant)):
        result.refusals.append(CertificateError("applicant"))
        return result
    if request.persons == "household":
        # The current members, and the 除票 of those whose 転出 is planned and not yet confirmed (shown as such).
        members = session.execute(select(Resident).where(Resident.household_id == applicant.household_id)
                                  .order_by(Resident.is_householder.desc(), Resident.birth_date, Resident.id)).scalars()
        people = [m for m in members if m.status is RecordStatus.CURRENT or records.awaiting_moveout(m)]
    else:
        people = [applicant]
    # The requester is the person or, by construction, a member of the household certified.
    result.residents = [p for p in people if p.household_id == applicant.household_id]
    screened = support.screen_certificate(session, applicant, result.residents)  # R22: 支援措置
    result.residents = screened.residents
    if screened.refused:
        result.refusals.append(CertificateError("persons", "support_measure"))
    if not result.residents:
        result.refusals.append(CertificateError("persons"))
    if request.items["myNumber"] and request.kind != "juminhyo":
        result.refusals.append(CertificateError("items.myNumber"))
    result.items = tuple(k for k in OPTIONAL_ITEMS if request.items[k])
    return result


# -- what is printed ------------------------------------------------------------------------------------


def _sex(resident: Resident) -> str:
    return "男" if resident.sex is Sex.MALE else "女"


def _my_number(resident: Resident) -> str:
    return records.my_number(resident) or ""


def _period(resident: Resident) -> str:
    parts = [(resident.residence_period_years, "年"), (resident.residence_period_months, "月"),
             (resident.residence_period_days, "日")]
    return "".join(f"{n}{unit}" for n, unit in parts if n)


def foreign_resident_rows(resident: Resident) -> list[list[str]]:
    """The items of 第30条の45 printed only when asked (住民票の写し: 第12条第5項の特別の請求)."""
    rows = [["第30条の45に規定する区分", resident.foreign_resident_category or ""]]
    if resident.residence_status:
        rows.append(["在留資格", resident.residence_status])
    if _period(resident):
        rows.append(["在留期間等", _period(resident)])
    if resident.residence_expiry is not None:
        rows.append(["在留期間等の満了の日", wareki(resident.residence_expiry)])
    if resident.special_permanent_certificate_issued_on is not None:
        rows.append(["特別永住者証明書交付年月日", wareki(resident.special_permanent_certificate_issued_on)])
    number = records.residence_card_number(resident)
    if number:
        rows.append(["在留カード等の番号", number])
    return rows


def person_rows(resident: Resident, kind: str, items: tuple[str, ...], *, show_my_number: bool) -> list[list[str]]:
    """The label/value rows printed for one person: the basic items, then only the optional items asked for."""
    rows = [["氏名", resident.name], ["フリガナ", resident.name_kana], ["生年月日", wareki(resident.birth_date)],
            ["性別", _sex(resident)], ["住所", full_address_text(resident)]]
    if resident.status is RecordStatus.REMOVED and resident.removed_on is not None:
        # A 除票 (the 転出届 removed it as of the planned date): the removal and the 転出予定地 or 転出確定地.
        rows.append(["除票", f"住民でなくなった年月日　{wareki(resident.removed_on)}　{resident.removal_reason.value}"
                             + ("予定" if resident.confirmed_moveout_address is None else "")])
        if resident.confirmed_moveout_address:
            rows.append(["転出確定地", resident.confirmed_moveout_address])
        elif resident.planned_moveout_address:
            rows.append(["転出予定地", resident.planned_moveout_address])
    if resident.nationality:
        # A foreign resident's record always shows the 国籍・地域 and the 通称 (第30条の45, 第30条の26 施行令).
        rows.append(["国籍・地域", resident.nationality])
        if resident.tsusho:
            rows.append(["通称", resident.tsusho])
    if kind == "juminhyo":
        became = f"{wareki(resident.became_resident_on)}　{resident.became_resident_reason.value}"
        address_set = f"{wareki(resident.address_set_on)}　{resident.address_set_reason.value}"
        rows += [["住民となった年月日", became], ["住所を定めた年月日", address_set]]
        if resident.became_foreign_resident_on is not None:
            rows.append(["外国人住民となった年月日", f"{wareki(resident.became_foreign_resident_on)}　"
                                                  f"{resident.became_foreign_resident_reason or ''}".rstrip()])
        if resident.previous_address:
            rows.append(["前住所", resident.previous_address])
    if "householder" in items:
        rows += [["世帯主", resident.household.householder_name], ["続柄", resident.relationship_to_head]]
    if "honseki" in items:
        rows += [["本籍", resident.honseki or ""], ["筆頭者", resident.hittosha or ""]]
    if "foreignResident" in items and resident.foreign_resident_category:
        rows += foreign_resident_rows(resident)
    if "juminhyoCode" in items:
        rows.append(["住民票コード", resident.juminhyo_code])
    if "myNumber" in items:
        rows.append(["個人番号", _my_number(resident) if show_my_number else MASKED])
    return rows


def _content(eligibility: Eligibility, *, issue_number: str, code: str, issued_on: dt.date,
             show_my_number: bool) -> dict[str, Any]:
    request = eligibility.request
    assert request is not None
    config = current_app.config
    return {
        "title": TITLES[request.kind],
        "kind": request.kind,
        "issueNumber": issue_number,
        "issuedOn": issued_on.isoformat(),
        "issuedOnText": wareki(issued_on),
        "municipality": config["MUNICIPALITY_NAME"],
        "mayor": config["MAYOR_NAME"],
        "copies": request.copies,
        "persons": [person_rows(r, request.kind, eligibility.items, show_my_number=show_my_number)
                    for r in eligibility.residents],
        "code": code,
        "verifyUrl": verify_url(code),
        "showsMyNumber": "myNumber" in eligibility.items,
    }


def preview(session: Session, case: Case) -> tuple[Eligibility, dict[str, Any] | None]:
    """What approval would print, for the clerk (the My Number masked for everyone); the view is logged."""
    eligibility = check_eligibility(session, case)
    content = None
    if eligibility.request is not None and eligibility.residents:
        content = _content(eligibility, issue_number="（発行時に採番）", code="", issued_on=clock.today_jst(),
                           show_my_number=False)
    audit.record("certificate.preview", target_type="case", target_id=case.id,
                 detail={"eligible": eligibility.ok, "refusals": [r.field for r in eligibility.refusals],
                         "items": list(eligibility.items)})
    return eligibility, content


def verify_url(code: str) -> str:
    """The portal's public verification page; the code rides in the fragment, so no server log ever holds it."""
    return f"{current_app.config['SITE_ORIGIN'].rstrip('/')}/certificates/verify#{certcode.normalise(code)}"


# -- issue, print, mail, revoke --------------------------------------------------------------------------------


def _cipher() -> FieldCipher:
    return FieldCipher(current_app.config["FIELD_ENCRYPTION_KEY"])


def _send(session: Session, message_type: str, payload: dict[str, Any]) -> None:
    send(session, message_type=message_type, recipient="portal", payload=payload)


def issue(session: Session, case: Case, *, by: Staff) -> IssuedCertificate:
    """Issue the certificate of an approved request (run inside the approval's transaction)."""
    eligibility = check_eligibility(session, case)
    if not eligibility.ok:
        first = eligibility.refusals[0]
        audit.record("certificate.issue", outcome="denied", target_type="case", target_id=case.id,
                     detail={"refusals": [r.field for r in eligibility.refusals]})
        raise case_service.CaseError(first.field, first.message, code=f"certificate_{first.code}")
    if not current_app.config.get("MAYOR_NAME"):
        raise case_service.CaseError("mayor", MESSAGES["mayor"], code="certificate_mayor")
    request = eligibility.request
    assert request is not None
    now, today = clock.utcnow(), clock.today_jst()
    code = certcode.new_code()
    cert = IssuedCertificate(case_id=case.id, issue_number=f"pending-{secrets.token_hex(8)}", kind=request.kind,
                             resident_ids=json.dumps([r.id for r in eligibility.residents]),
                             items=json.dumps(list(eligibility.items)), copies=request.copies,
                             content_encrypted=b"", code_hash=certcode.code_hash(code), issued_on=today, issued_at=now,
                             issued_by=by.login_id, status=CertificateStatus.VALID)
    session.add(cert)
    session.flush()
    cert.issue_number = f"{current_app.config['MUNICIPALITY_CODE']}-{today.year}-{cert.id:07d}"
    content = _content(eligibility, issue_number=cert.issue_number, code=code, issued_on=today, show_my_number=True)
    cert.content_encrypted = _cipher().encrypt(json.dumps(content, ensure_ascii=False), context=b"certificate")
    _send(session, ISSUED, {"codeHash": cert.code_hash, "issuedOn": today.isoformat(), "status": "valid"})
    audit.record("certificate.issue", target_type="certificate", target_id=cert.id,
                 detail={"case": case.id, "issue_number": cert.issue_number, "kind": request.kind,
                         "persons": len(eligibility.residents), "items": list(eligibility.items),
                         "copies": request.copies})
    case_service.add_event(session, case, "certificate_issued", by=by, from_status=case.status,
                           detail={"issue_number": cert.issue_number})
    return cert


def issue_on_approval(session: Session, case: Case, staff: Staff) -> None:
    """What approving a certificate request does (backoffice.services.approval): issue the certificate."""
    issue(session, case, by=staff)


def certificates_for(session: Session, case: Case) -> list[IssuedCertificate]:
    """The certificates issued for one case, newest first."""
    return list(session.execute(select(IssuedCertificate).where(IssuedCertificate.case_id == case.id)
                                .order_by(IssuedCertificate.id.desc())).scalars())


def content_of(cert: IssuedCertificate) -> dict[str, Any]:
    """The printed content as issued (decrypted; never logged, never shown to staff without number-use)."""
    data: dict[str, Any] = json.loads(_cipher().decrypt(cert.content_encrypted, context=b"certificate"))
    return data


def render(session: Session, cert: IssuedCertificate, *, by: Staff, purpose: str) -> bytes:
    """The PDF of an issued certificate, for printing or download (R14: each one logged)."""
    action = f"certificate.{purpose}"
    content = content_of(cert)
    if content["showsMyNumber"] and not may_see_my_number(by):
        audit.record(action, outcome="denied", target_type="certificate", target_id=cert.id,
                     detail={"reason": "number_use"})
        raise CertificateError("certificate", "number_use")
    if cert.status is CertificateStatus.REVOKED:
        audit.record(action, outcome="denied", target_type="certificate", target_id=cert.id,
                     detail={"reason": "revoked"})
        raise CertificateError("certificate", "revoked")
    from backoffice.services.certificate_pdf import certificate_pdf

    pdf = certificate_pdf(content)
    audit.record(action, target_type="certificate", target_id=cert.id,
                 detail={"issue_number": cert.issue_number, "bytes": len(pdf), "items": json.loads(cert.items)})
    return pdf


def record_mailing(session: Session, cert: IssuedCertificate, *, by: Staff, mailed_on: str,
                   tracking_number: str = "") -> Case:
    """発送: record the mailing date (and tracking number); the case is completed and the resident told."""
    if cert.mailed_on is not None:
        raise CertificateError("mailed_on", "already_mailed")
    if cert.status is CertificateStatus.REVOKED:
        raise CertificateError("mailed_on", "revoked")
    try:
        day = dt.date.fromisoformat((mailed_on or "").strip())
    except ValueError as exc:
        raise CertificateError("mailed_on") from exc
    if day < cert.issued_on or day > clock.today_jst():
        raise CertificateError("mailed_on")
    tracking = (tracking_number or "").strip()
    if tracking and not TRACKING.match(tracking):
        raise CertificateError("tracking_number")
    case = session.get(Case, cert.case_id)
    assert case is not None
    cert.mailed_on, cert.tracking_number, cert.mailed_by = day, tracking or None, by.login_id
    case_service.complete(session, case, by=by, detail={"issue_number": cert.issue_number,
                                                       "mailed_on": day.isoformat(),
                                                       "tracking_number": tracking or None})
    audit.record("certificate.mail", target_type="certificate", target_id=cert.id,
                 detail={"issue_number": cert.issue_number, "mailed_on": day.isoformat(),
                         "tracking": bool(tracking)})
    return case


def revoke(session: Session, cert: IssuedCertificate, *, by: Staff, reason: str) -> None:
    """Revoke an issued certificate; the portal's verification page says so from the next delivery on."""
    text = (reason or "").strip()
    if not text or len(text) > 200:
        raise CertificateError("reason")
    if cert.status is CertificateStatus.REVOKED:
        raise CertificateError("reason", "revoked")
    cert.status, cert.revoked_at, cert.revoked_by, cert.revocation_reason = (
        CertificateStatus.REVOKED, clock.utcnow(), by.login_id, text)
    _send(session, REVOKED, {"codeHash": cert.code_hash, "revokedOn": clock.today_jst().isoformat()})
    audit.record("certificate.revoke", target_type="certificate", target_id=cert.id,
                 detail={"issue_number": cert.issue_number})
    case = session.get(Case, cert.case_id)
    if case is not None:
        case_service.add_event(session, case, "certificate_revoked", by=by, from_status=case.status,
                               detail={"issue_number": cert.issue_number})


def certificate_cases(session: Session) -> list[Case]:
    """Certificate requests to work, and issued ones waiting for their mailing, oldest first."""
    return list(session.execute(select(Case).where(
        Case.kind == "certificate",
        Case.status.in_((CaseStatus.RECEIVED, CaseStatus.IN_REVIEW, CaseStatus.CONFIRMED, CaseStatus.APPROVED)))
        .order_by(Case.received_at, Case.id).limit(500)).scalars())

