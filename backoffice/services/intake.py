"""Intake (F2, R9, R10, R22): an application arrives from the portal and becomes a case, or is returned.

The back office does not trust the portal: it verifies the resident's signature again (chain,
revocation, nonRepudiation), matches the applicant and the movers to the ledger (the card record
first; the four basic items must agree), runs the ledger checks, and creates one case per
application. A mismatch goes to a clerk, never silently; a sensitive case is never returned
automatically. The status goes back to the portal through this office's outbox.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from backoffice.models import CardRecord, CardStatus, Case, CaseStatus, RecordStatus, Resident
from backoffice.services import audit, cases
from backoffice.services.cards import holder_for
from bridge import messages
from bridge.handlers import PermanentFailure, register
from core import clock
from core.envelope import Opened
from core.jpki import SignedApplicationError, verify_signed_application
from core.jpki.appconfig import trust_for_app
from core.textfold import fold

SUBMITTED = messages.APPLICATION_SUBMITTED
WITHDRAWN = messages.APPLICATION_WITHDRAWN
STATUS = cases.STATUS
KINDS = ("move_out", "move_in_reservation", "in_city_reservation", "certificate")
OPEN = (CaseStatus.RECEIVED, CaseStatus.IN_REVIEW, CaseStatus.CONFIRMED)
# Reasons the resident reads on "My applications" (Japanese first: the city's working language).
REASONS = {
    "signature": "電子署名を確認できませんでした（電子証明書が失効している可能性があります）。"
                 "市役所にお問い合わせください。 / The signature could not be verified "
                 "(the certificate may be revoked). Please contact the city.",
    "already_resident": "転入予約の方の中に、すでにこの市の住民の方がいます。"
                        "転居の場合は転居予約を送ってください。 / Someone in this move-in reservation is "
                        "already a resident here; for a move within the city send an in-city move reservation.",
    "not_all_resident": "転居予約の方の中に、この市の住民として記録されていない方がいます。"
                        "内容を確認して送り直してください。 / Someone in this in-city move reservation is "
                        "not recorded as a resident here. Please check and send it again.",
    "duplicate_move_out": "同じ方の転出届をすでに受け付けています。 / A move-out notification for the same person "
                          "is already being handled.",
}


def _unverified_payload(jws: str) -> dict[str, Any]:
    try:
        segment = jws.split(".")[1]
        payload: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (IndexError, ValueError) as exc:
        raise PermanentFailure("schema", "signed application is not a JWS") from exc
    return payload


def _current(session: Session, name: str, birth_date: str) -> list[Resident]:
    try:
        born = dt.date.fromisoformat(birth_date)
    except (TypeError, ValueError):
        return []
    return list(session.execute(select(Resident).where(
        Resident.name_search == fold(name), Resident.birth_date == born,
        Resident.status == RecordStatus.CURRENT)).scalars())


def _applicant(session: Session, serial: int, items: Any, findings: list[dict[str, str]]) -> Resident | None:
    """The signer in the ledger: by the card record first, else by the four basic items."""
    card = session.execute(select(CardRecord).where(
        CardRecord.sign_cert_serial == str(serial), CardRecord.status == CardStatus.ACTIVE)).scalar_one_or_none()
    if card is not None:
        resident = session.get(Resident, card.resident_id)
        if resident is not None and resident.status is RecordStatus.CURRENT:
            if not holder_for(resident).basic_items().matches(items):
                findings.append({"code": "four_items_mismatch",
                                 "detail": "the card's four basic items differ from the ledger record"})
            return resident
    for candidate in _current(session, items.name, items.birth_date.isoformat()):
        if holder_for(candidate).basic_items().matches(items):
            return candidate
    findings.append({"code": "applicant_not_found", "detail": "no current resident has the signer's four items"})
    return None


def _movers(session: Session, movers: list[dict[str, Any]]) -> list[Resident | None]:
    found = []
    for mover in movers:
        matches = _current(session, mover.get("name", ""), mover.get("birthDate", ""))
        found.append(matches[0] if len(matches) == 1 else None)
    return found


def receive_application(session: Session, opened: Opened) -> Case:
    """Turn an arrived application into a case (once per receipt number) and tell the portal."""
    payload = opened.payload  # its shape was checked against bridge.messages before this handler runs
    receipt, kind, jws = payload["receiptNumber"], payload["kind"], payload["signedApplication"]
    existing = session.execute(select(Case).where(Case.receipt_number == receipt)).scalar_one_or_none()
    if existing is not None:
        return existing  # the same application delivered again changes nothing
    now = clock.utcnow()
    findings: list[dict[str, str]] = []
    return_reason = None
    applicant: Resident | None = None
    movers: list[Resident | None] = []
    claimed = _unverified_payload(jws)
    serial = ""
    try:
        # The portal consumed the nonce; here the signature, chain, revocation and audience are checked again.
        verified = verify_signed_application(jws, expected_nonce=str(claimed.get("nonce", "")),
                                             expected_aud=current_app.config["SITE_ORIGIN"], trust=trust_for_app())
    except SignedApplicationError as exc:
        findings.append({"code": "signature_refused", "detail": str(exc.code)})
        return_reason = REASONS["signature"]
        application: dict[str, Any] = claimed.get("application", {}) if isinstance(claimed, dict) else {}
        serial = str(exc.certificate_serial or "")
    else:
        application = verified.application
        serial = str(verified.serial)
        if kind != "move_in_reservation":
            applicant = _applicant(session, verified.serial, verified.items, findings)
    if return_reason is None and application.get("type") == "move":
        movers = _movers(session, application.get("movers", []))
        if kind == "move_in_reservation" and any(m is not None for m in movers):
            return_reason = REASONS["already_resident"]
        elif kind == "in_city_reservation" and any(m is None for m in movers):
            return_reason = REASONS["not_all_resident"]
        elif kind == "move_out":
            for i, mover in enumerate(movers):
                if mover is None:
                    findings.append({"code": "unknown_member", "detail": f"mover {i + 1} is not a current resident"})
            ids = [m.id for m in movers if m is not None]
            open_cases = session.execute(select(Case).where(Case.kind == "move_out", Case.status.in_(OPEN))).scalars()
            if any(set(json.loads(c.mover_resident_ids)) & set(ids) for c in open_cases):
                return_reason = REASONS["duplicate_move_out"]
    sensitive = kind in current_app.config.get("SENSITIVE_CASE_KINDS", ())
    if return_reason is not None and not sensitive:
        status = CaseStatus.RETURNED
    elif findings or return_reason is not None:
        status = CaseStatus.IN_REVIEW  # a clerk decides: never silently, never automatically for sensitive cases
    else:
        status = CaseStatus.RECEIVED
    case = Case(receipt_number=receipt, message_id=opened.message_id, kind=kind, move_id=payload.get("moveId"),
                status=status, status_reason=return_reason if status is CaseStatus.RETURNED else None,
                applicant_resident_id=applicant.id if applicant else None,
                mover_resident_ids=json.dumps([m.id if m else None for m in movers]), signed_jws=jws,
                sign_cert_serial=serial, signature_checked_at=now,
                findings=json.dumps(findings + ([{"code": "would_return", "detail": return_reason}]
                                                if return_reason and sensitive else []), ensure_ascii=False),
                sensitive=sensitive, received_at=now, updated_at=now)
    session.add(case)
    session.flush()
    audit.record("intake.case", actor="bridge", target_type="case", target_id=case.id,
                 detail={"receipt": receipt, "kind": kind, "status": status.value,
                         "findings": [f["code"] for f in findings]})
    cases.add_event(session, case, "received", by=None, detail={"findings": [f["code"] for f in findings]})
    cases.send_status(session, case)
    return case


def receive_withdrawal(session: Session, opened: Opened) -> None:
    """The resident withdrew before review: the case is closed as withdrawn."""
    receipt = opened.payload.get("receiptNumber")
    case = session.execute(select(Case).where(Case.receipt_number == receipt)).scalar_one_or_none()
    if case is None:
        raise PermanentFailure("unknown_case", "withdrawal of an application that never arrived")
    if case.status in (CaseStatus.RECEIVED, CaseStatus.IN_REVIEW, CaseStatus.RETURNED):
        before = case.status
        case.status, case.updated_at = CaseStatus.WITHDRAWN, clock.utcnow()
        case.claimed_by, case.claimed_at = None, None
        cases.add_event(session, case, "withdrawn", by=None, from_status=before)
        audit.record("intake.withdrawn", actor="bridge", target_type="case", target_id=case.id)


def _handle_submitted(session: Session, opened: Opened) -> None:
    receive_application(session, opened)


def register_handlers() -> None:
    """The message types the back office takes from the portal."""
    register(SUBMITTED, _handle_submitted, zone="backoffice", senders={"portal"})
    register(WITHDRAWN, receive_withdrawal, zone="backoffice", senders={"portal"})
