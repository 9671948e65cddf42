"""Intake (F2, R9, R10, R22): an application arrives from the portal and becomes a case, or is returned.

The back office does not trust the portal, even one that is fully compromised and sends whatever it
likes with its own bridge keys: it verifies the resident's signature again (chain, revocation,
nonRepudiation, signing time), acts only on signed values (the part for this city, the move id, the
movers), acts on each signature once per part, matches the applicant and the movers to the ledger
(the card record first; the four basic items must agree), runs the ledger checks, and creates one
case per part. A withdrawal is acted on only when the case's own signer signed it for this receipt; of
an approved move not yet completed it is the 転出取消 or 予約取消 (backoffice/services/cancellation.py).
A resident's own request (R20: disclosure, correction, suspension) becomes a request case
(``resident_requests``) for the person the signature certificate identifies, never anyone the portal names.
A mismatch goes to a clerk, never silently; a sensitive case is never returned automatically. The
status goes back to the portal through this office's outbox.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from backoffice.models import (
    AcceptedSignature,
    CardRecord,
    CardStatus,
    Case,
    CaseStatus,
    MoveOutMover,
    RecordStatus,
    Resident,
    ResidentRequest,
)
from backoffice.services import audit, cancellation, cases, filing, records, resident_requests, support
from backoffice.services.cards import holder_for
from backoffice.services.cases import signature_digest
from bridge import messages
from bridge.binding import current_bridge, send
from bridge.handlers import PermanentFailure, register
from bridge.jobs.deliver import record_dead_letter, register_rehearsal
from bridge.queues import QueueNames
from core import clock, residentrequests
from core.envelope import UUID_PATTERN, Opened
from core.jpki import RefusalCode, SignedApplicationError, VerifiedApplication, jws_claims, verify_signed_application
from core.jpki.appconfig import max_signature_age, trust_for_app
from core.jpki.certificates import decode_certificate
from core.jpki.encoding import b64url_encode, strict_b64url_decode
from core.jpki.profile import BasicItems
from core.jpki.signedapp import signing_time
from core.registertext import EARLIEST_BIRTH_DATE
from core.textfold import fold

SUBMITTED = messages.APPLICATION_SUBMITTED
WITHDRAWN = messages.APPLICATION_WITHDRAWN
STATUS = cases.STATUS
OPEN = cases.OPEN
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
    "stale": "署名から時間がたちすぎているため受け付けられませんでした。もう一度署名して送ってください。 / "
             "The signature was made too long ago to be accepted. Please sign and send it again.",
    "withdrawal_signature": "取下げの電子署名を確認できなかったため、取下げは受け付けられませんでした。"
                            "申請は引き続き手続き中です。 / The withdrawal's signature could not be verified, so the "
                            "application was not withdrawn and is still being handled.",
    "withdrawal_too_late": "すでに市で手続きを進めているため、取下げは受け付けられませんでした。"
                           "市役所にお問い合わせください。 / The city has already started handling this "
                           "application, so it could not be withdrawn. Please contact the city.",
    "cancellation_moved_in": "転出先の市区町村で転入の届出がすでに済んでいる（転出確定）ため、"
                             "転出取消は受け付けられませんでした。転出先の市区町村にお問い合わせください。 / "
                             "The move is already confirmed by the destination's move-in (転出確定), so it could "
                             "not be cancelled. Please contact the municipality you moved to.",
    "cancellation_signer": "取消の届出をした方が、移動する方またはその世帯の方ではないため、"
                           "取消は受け付けられませんでした。 / The person cancelling is not one of the movers "
                           "or a member of their household, so the move was not cancelled.",
    "cancellation_householder": "転出の後に世帯主が変わっているため、オンラインでは転出取消を受け付けられませんでした。"
                                "世帯主変更届とあわせて窓口で手続してください。 / The household has another "
                                "householder since the move-out, so the move could not be cancelled online. "
                                "Please cancel it at the counter together with a change of householder.",
    "duplicate_move_out": "同じ方の転出届をすでに受け付けています。 / A move-out notification for the same person "
                          "is already being handled.",
    "requester_not_found": "署名した方の住民記録を確認できなかったため、請求を受け付けられませんでした。"
                           "市役所にお問い合わせください。 / The record of the person who signed could not be "
                           "confirmed, so the request was not accepted. Please contact the city.",
}


def reason_code(text: str | None) -> str | None:
    """The code (bridge.reasons) of a reason intake or the filing rule gave, as stored; None for a clerk's text."""
    for catalogue in (REASONS, filing.REASONS, support.PORTAL_REASONS):
        for code, stored in catalogue.items():
            if stored == text:
                return code
    return None


def _unverified_payload(jws: str) -> dict[str, Any]:
    try:
        return jws_claims(jws)
    except ValueError as exc:
        raise PermanentFailure("schema", "signed application is not a JWS") from exc


def _current(session: Session, name: str, birth_date: str) -> list[Resident]:
    try:
        born = dt.date.fromisoformat(birth_date)
    except (TypeError, ValueError):
        return []
    return list(session.execute(select(Resident).where(
        Resident.name_search == fold(name), Resident.birth_date == born,
        Resident.status == RecordStatus.CURRENT)).scalars())


def _applicant(session: Session, serial: int, items: Any, findings: list[dict[str, str]], *,
               awaiting_moveout: bool = False) -> Resident | None:
    """The signer in the ledger: by the card record first, else by the four basic items.

    With ``awaiting_moveout`` (a certificate request) the card holder's 除票 of a 転出 not yet confirmed
    counts too: until the 転入 the card is valid and the certificate shows the 除票 (転出予定).
    """
    resident = session.execute(select(Resident).join(CardRecord, CardRecord.resident_id == Resident.id).where(
        CardRecord.sign_cert_serial == str(serial), CardRecord.status == CardStatus.ACTIVE)).scalar_one_or_none()
    if resident is not None and (resident.status is RecordStatus.CURRENT
                                 or (awaiting_moveout and records.awaiting_moveout(resident))):
        if not holder_for(resident).basic_items().matches(items):
            findings.append({"code": "four_items_mismatch",
                             "detail": "the card's four basic items differ from the ledger record"})
        return resident
    for candidate in _current(session, items.name, items.birth_date.isoformat()):
        if holder_for(candidate).basic_items().matches(items):
            return candidate
    findings.append({"code": "applicant_not_found", "detail": "no current resident has the signer's four items"})
    return None


def _movers(session: Session, movers: list[dict[str, Any]], applicant: Resident | None = None) -> list[Resident | None]:
    """Each mover in the ledger by folded name and birth date; of two namesakes, the one in the signer's household."""
    found = []
    for mover in movers:
        matches = _current(session, mover.get("name", ""), mover.get("birthDate", ""))
        if len(matches) > 1 and applicant is not None:
            matches = [m for m in matches if m.household_id == applicant.household_id]
        found.append(matches[0] if len(matches) == 1 else None)
    return found


def _who_may_file_reason(session: Session, kind: str, applicant: Resident | None,
                         movers: list[Resident | None]) -> str | None:
    """第26条 at intake: the movers of one household, the signer one of its members (else the reason)."""
    if kind not in ("move_out", "in_city_reservation"):
        return None  # a 転入予約 names people this city does not hold; the origin checked them
    refusal = filing.filing_refusal(session, applicant, movers)
    return filing.REASONS[refusal] if refusal else None


def _move_decision(session: Session, kind: str, applicant: Resident | None,
                   movers: list[Resident | None]) -> tuple[str | None, list[dict[str, str]]]:
    """What the movers named (``None`` for one the ledger does not hold) make of a move: a reason to return it
    or ``None``, and the findings for the clerk."""
    findings: list[dict[str, str]] = []
    return_reason = _who_may_file_reason(session, kind, applicant, movers)
    if return_reason is not None:
        findings.append({"code": "who_may_file", "detail": return_reason})
    elif kind == "move_in_reservation" and any(m is not None for m in movers):
        return_reason = REASONS["already_resident"]
    elif kind == "in_city_reservation" and any(m is None for m in movers):
        return_reason = REASONS["not_all_resident"]
    elif kind == "move_out":
        for i, mover in enumerate(movers):
            if mover is None:
                findings.append({"code": "unknown_member", "detail": f"mover {i + 1} is not a current resident"})
        if _open_move_out_names(session, {m.id for m in movers if m is not None}):
            return_reason = REASONS["duplicate_move_out"]
    return return_reason, findings


def _status(return_reason: str | None, findings: list[dict[str, str]], sensitive: bool) -> CaseStatus:
    """Returned at once, or to a clerk (never silently, never automatically for a sensitive case), or received."""
    if return_reason is not None and not sensitive:
        return CaseStatus.RETURNED
    if findings or return_reason is not None:
        return CaseStatus.IN_REVIEW
    return CaseStatus.RECEIVED


def _open_move_out_names(session: Session, resident_ids: set[int]) -> bool:
    """Whether an open 転出届 already names one of ``resident_ids`` (one indexed query, whatever the season)."""
    if not resident_ids:
        return False
    return session.execute(select(MoveOutMover.case_id).join(Case, Case.id == MoveOutMover.case_id).where(
        MoveOutMover.resident_id.in_(sorted(resident_ids)), Case.kind == "move_out", Case.status.in_(OPEN))
        .limit(1)).first() is not None


def _verify(jws: str) -> VerifiedApplication:
    """Verify a resident's JWS here: chain, revocation, nonRepudiation, audience and a signing time within the age.

    The nonce was consumed at the portal; here it is only read from the JWS itself, which is why the
    signature is recorded once accepted (``AcceptedSignature``) rather than trusted to be fresh.
    """
    claimed = _unverified_payload(jws)
    return verify_signed_application(jws, expected_nonce=str(claimed.get("nonce", "")),
                                     expected_aud=current_app.config["SITE_ORIGIN"], trust=trust_for_app(),
                                     max_age=max_signature_age())


def _signed_part(verified: VerifiedApplication, payload: dict[str, Any]) -> tuple[str, str | None]:
    """The part of the signed application this envelope carries here, and the signed move id.

    The portal's envelope only says which part it carries; every value acted on is the signed one,
    and an envelope value the resident did not sign (kind, move id, a part for another city) is refused.
    """
    here = str(current_app.config["MUNICIPALITY_CODE"])
    claims, application = verified.claims, verified.application
    parts, move_id = claims.get("parts"), claims.get("moveId")
    if not isinstance(parts, list) or not parts or not all(isinstance(p, dict) for p in parts):
        raise PermanentFailure("unsigned_field", "the signed application names no parts")
    kind = payload.get("kind")
    if {"kind": kind, "municipalityCode": here} not in [{"kind": p.get("kind"), "municipalityCode":
                                                         p.get("municipalityCode")} for p in parts]:
        raise PermanentFailure("unsigned_field", f"kind {kind!r} for this municipality is not a signed part")
    kind_type = "certificate" if kind == "certificate" else "move"
    if application.get("type") != kind_type:
        raise PermanentFailure("unsigned_field", f"a {kind} part of a signed {application.get('type')!r}")
    destination = application.get("destination") if isinstance(application.get("destination"), dict) else {}
    named = {"certificate": application.get("municipalityCode"),
             "move_out": application.get("fromMunicipalityCode") if destination.get("kind") == "elsewhere" else None,
             "in_city_reservation":
                 application.get("fromMunicipalityCode") if destination.get("kind") == "in_city" else None,
             "move_in_reservation":
                 destination.get("municipalityCode") if destination.get("kind") == "elsewhere" else None}[kind]
    if named != here:
        raise PermanentFailure("unsigned_field", f"the signed application does not make a {kind} here")
    if move_id is not None and not (isinstance(move_id, str) and UUID_PATTERN.match(move_id)):
        raise PermanentFailure("unsigned_field", "the signed move id is not a UUID")
    if kind_type == "certificate" and move_id is not None:
        raise PermanentFailure("unsigned_field", "a signed certificate request with a move id")
    if payload.get("moveId") != move_id:
        raise PermanentFailure("unsigned_field", "moveId differs from the signed one")
    return kind, move_id


def _signature_taken(session: Session, digest: str, part: str) -> int | None:
    """The case a signature (its digest) was already accepted for, for ``part``; None if it never was."""
    taken: int | None = session.execute(select(AcceptedSignature.case_id).where(
        AcceptedSignature.signature_sha256 == digest, AcceptedSignature.part == part)).scalar_one_or_none()
    return taken


def _accept_once(session: Session, jws: str, part: str, verified: VerifiedApplication, *, case: Case,
                 message_id: str) -> None:
    """Record that this signature was acted on for ``part``; a second time is a replay, refused."""
    digest = signature_digest(jws)
    taken = _signature_taken(session, digest, part)
    if taken is not None:
        raise PermanentFailure("signature_replayed", f"this signature was already accepted for case {taken}")
    signed_at = signing_time(verified.claims.get("iat")) or verified.verified_at
    # The unique constraint settles a race between two workers: the second one's commit fails and retries.
    session.add(AcceptedSignature(signature_sha256=digest, part=part, case_id=case.id, message_id=message_id,
                                  signed_at=signed_at, accepted_at=clock.utcnow()))


def receive_application(session: Session, opened: Opened) -> Case:
    """Turn an arrived application into a case (once per receipt number and per signature) and tell the portal."""
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
    serial = ""
    move_id: str | None = None  # only a signed move id ties this case to another
    verified: VerifiedApplication | None = None
    try:
        verified = _verify(jws)
    except SignedApplicationError as exc:
        # Nothing is acted on: the case only carries the refusal back to the resident.
        findings.append({"code": "signature_refused", "detail": str(exc.code)})
        return_reason = REASONS["stale" if exc.code is RefusalCode.SIGNED_TOO_LONG_AGO else "signature"]
        claimed = _unverified_payload(jws)
        application: dict[str, Any] = claimed.get("application", {})
        serial = str(exc.certificate_serial or "")
    else:
        kind, move_id = _signed_part(verified, payload)
        application = verified.application
        serial = str(verified.serial)
        if kind != "move_in_reservation":
            applicant = _applicant(session, verified.serial, verified.items, findings,
                                   awaiting_moveout=kind == "certificate")
    before_movers = list(findings)
    if return_reason is None and application.get("type") == "move":
        movers = _movers(session, application.get("movers", []), applicant)
        return_reason, found = _move_decision(session, kind, applicant, movers)
        findings += found
    shielded = support.intake_findings(session, kind, applicant, movers)  # R22: a protected person named
    findings += shielded
    configured = kind in current_app.config.get("SENSITIVE_CASE_KINDS", ())
    sensitive = configured or support.flagged(findings)
    status = _status(return_reason, findings, sensitive)
    if shielded and movers:
        # The portal is told what this application would get if the protected people it names lived nowhere
        # here: any other answer (returned for another household, or "in review") says that they do.
        hidden = support.protected_among(session, applicant, movers)
        unknown = [None if m is not None and m.id in hidden else m for m in movers]
        decoy_reason, found = _move_decision(session, kind, applicant, unknown)
        decoy = _status(decoy_reason, before_movers + found, configured)
        support.keep_portal_answer(shielded, decoy.value, decoy_reason if decoy is CaseStatus.RETURNED else None)
    case = Case(receipt_number=receipt, message_id=opened.message_id, kind=kind,
                move_id=move_id,
                status=status, status_reason=return_reason if status is CaseStatus.RETURNED else None,
                applicant_resident_id=applicant.id if applicant else None,
                mover_resident_ids=json.dumps([m.id if m else None for m in movers]), signed_jws=jws,
                sign_cert_serial=serial, signature_checked_at=now,
                findings=json.dumps(findings + ([{"code": "would_return", "detail": return_reason}]
                                                if return_reason and sensitive else []), ensure_ascii=False),
                sensitive=sensitive, received_at=now, updated_at=now)
    session.add(case)
    session.flush()
    if kind == "move_out":
        session.add_all(MoveOutMover(case_id=case.id, resident_id=i) for i in sorted({m.id for m in movers if m}))
    if verified is not None:
        _accept_once(session, jws, kind, verified, case=case, message_id=opened.message_id)
    audit.record("intake.case", actor="bridge", target_type="case", target_id=case.id,
                 detail={"receipt": receipt, "kind": kind, "status": status.value,
                         "findings": [f["code"] for f in findings]})
    cases.add_event(session, case, "received", by=None, detail={"findings": [f["code"] for f in findings]})
    cases.send_status(session, case)
    return case


def _same_certificate(case: Case, verified: VerifiedApplication) -> bool:
    """Whether the withdrawal's (verified) signature certificate is the one that signed the case's application."""
    try:
        header = json.loads(strict_b64url_decode(case.signed_jws.split(".")[0]))
        signer = decode_certificate(header["x5c"][0], error=SignedApplicationError, field_code=RefusalCode.X5C_INVALID)
    except (SignedApplicationError, ValueError, KeyError, IndexError, TypeError):
        return False
    return signer.issuer == verified.certificate.issuer and signer.serial_number == verified.serial


def _refuse_withdrawal(session: Session, opened: Opened, case: Case, reason: str, detail: str) -> None:
    """A withdrawal the resident did not sign: a dead letter, an operation-log row, and the case's status to the portal.

    Not raised as ``PermanentFailure``: that would roll back the status message, and the portal, which
    showed the application as withdrawn, must learn that it was not.
    """
    binding = current_bridge()
    record_dead_letter(binding, message_id=opened.message_id, reason="withdrawal_refused", detail=detail[:500],
                       queue=QueueNames.intake(str(current_app.config["MUNICIPALITY_CODE"])), envelope=None,
                       refused=False)
    audit.record("intake.withdrawal_refused", outcome="denied", actor="bridge", target_type="case",
                 target_id=case.id, detail={"reason": reason, "status": case.status.value})
    cases.send_status(session, case, reason=REASONS[reason])


def receive_withdrawal(session: Session, opened: Opened) -> None:
    """The resident withdrew before review, on their own signature: the case is closed as withdrawn.

    The signed withdrawal must verify here (as an application does), be signed with the certificate
    that signed the case, name this case's receipt number and be a withdrawal; anything else is refused.
    """
    receipt, jws = opened.payload["receiptNumber"], opened.payload["signedWithdrawal"]  # shape checked on receipt
    case = session.execute(select(Case).where(Case.receipt_number == receipt)).scalar_one_or_none()
    if case is None:
        raise PermanentFailure("unknown_case", "withdrawal of an application that never arrived")
    try:
        verified = _verify(jws)
    except (SignedApplicationError, PermanentFailure) as exc:
        code = str(exc.code) if isinstance(exc, SignedApplicationError) else "JWS_MALFORMED"
        _refuse_withdrawal(session, opened, case, "withdrawal_signature", f"signature refused: {code}")
        return
    signed = verified.application
    if signed.get("type") != "withdrawal" or signed.get("receiptNumber") != case.receipt_number:
        _refuse_withdrawal(session, opened, case, "withdrawal_signature", "the signature is not this withdrawal")
        return
    if not _same_certificate(case, verified):
        _refuse_withdrawal(session, opened, case, "withdrawal_signature", "signed by another certificate")
        return
    if case.status is CaseStatus.WITHDRAWN:
        return  # already withdrawn: nothing to do
    # A signed withdrawal is judged once, whatever the answer: one refused while the city checks the case
    # must not come back after the approval, where the same signature would read as a 転出取消.
    if not _withdrawal_once(session, opened, case, jws, verified):
        return
    if case.kind in ("move_out", *cancellation.RESERVATIONS) and case.status in (CaseStatus.APPROVED,
                                                                                 CaseStatus.COMPLETED):
        _cancel_move(session, opened, case)
        return
    if case.status not in (CaseStatus.RECEIVED, CaseStatus.IN_REVIEW, CaseStatus.RETURNED):
        audit.record("intake.withdrawal_too_late", outcome="denied", actor="bridge", target_type="case",
                     target_id=case.id, detail={"status": case.status.value})
        cases.send_status(session, case, reason=REASONS["withdrawal_too_late"])
        return
    before = case.status
    case.status, case.updated_at = CaseStatus.WITHDRAWN, clock.utcnow()
    case.claimed_by, case.claimed_at = None, None
    cases.add_event(session, case, "withdrawn", by=None, from_status=before)
    audit.record("intake.withdrawn", actor="bridge", target_type="case", target_id=case.id)
    cases.send_status(session, case)


def _returned(session: Session, receipt: str, reason: str, detail: dict[str, Any]) -> None:
    """A request that made no case: an operation-log row, and the portal told why (Japanese first)."""
    audit.record("intake.resident_request_refused", outcome="denied", actor="bridge", target_type="receipt",
                 target_id=receipt, detail=detail)
    send(session, message_type=STATUS, recipient="portal",
         payload={"receiptNumber": receipt, "status": "returned", "reason": reason})


def receive_resident_request(session: Session, opened: Opened) -> ResidentRequest | None:
    """A resident's own request filed on the portal (R20): a request case with its 30 days from receipt, or none.

    Acted on only when the resident's signature verifies here, signs exactly one request of this kind
    for this municipality, fits that kind's schema (``core.residentrequests``) and was not acted on
    before. The requester is the holder of the signature certificate as the ledger knows them (the card
    record, else the four basic items; they must agree): the portal names nobody. A refused signature or
    an unknown signer makes no case and the portal is told; a request the resident did not sign as it
    arrived is a dead letter.
    """
    payload = opened.payload
    receipt, kind, jws = payload["receiptNumber"], payload["kind"], payload["signedApplication"]
    existing = session.execute(select(ResidentRequest).where(
        ResidentRequest.receipt_number == receipt)).scalar_one_or_none()
    if existing is not None:
        return existing  # the same request delivered again changes nothing
    try:
        verified = _verify(jws)
    except SignedApplicationError as exc:
        _returned(session, receipt, REASONS["stale" if exc.code is RefusalCode.SIGNED_TOO_LONG_AGO else "signature"],
                  {"kind": kind, "code": str(exc.code)})
        return None
    here = str(current_app.config["MUNICIPALITY_CODE"])
    claims, application = verified.claims, verified.application
    if claims.get("parts") != [{"kind": kind, "municipalityCode": here}] or application.get("type") != kind:
        raise PermanentFailure("unsigned_field", f"kind {kind!r} for this municipality is not the signed request")
    if claims.get("moveId") is not None or payload.get("moveId") is not None:
        raise PermanentFailure("unsigned_field", "a request has no move id")
    problems = residentrequests.problems(application)
    if problems:
        raise PermanentFailure("schema", f"the signed request breaks its schema at: {', '.join(problems)}")
    if application["municipalityCode"] != here:
        raise PermanentFailure("unsigned_field", "the signed request is for another municipality")
    digest = signature_digest(jws)
    if session.execute(select(ResidentRequest.id).where(ResidentRequest.signature_sha256 == digest)).first():
        raise PermanentFailure("signature_replayed", "this signature was already acted on for another request")
    findings: list[dict[str, str]] = []
    requester = _applicant(session, verified.serial, verified.items, findings)
    if requester is None or findings:
        _returned(session, receipt, REASONS["requester_not_found"],
                  {"kind": kind, "findings": [f["code"] for f in findings]})
        return None
    try:
        return resident_requests.receive(
            session, kind=residentrequests.KINDS[kind], resident_id=requester.id, by=None,
            item=application.get("item") or application.get("use"), correct_value=application.get("correctValue"),
            receipt_number=receipt, signature_sha256=digest, statement=application.get("reason"))
    except resident_requests.RequestError as exc:
        raise PermanentFailure("schema", f"the signed request was refused at {exc.field}") from exc


def _withdrawal_once(session: Session, opened: Opened, case: Case, jws: str, verified: VerifiedApplication) -> bool:
    """Record the signed withdrawal as judged (acted on or refused); a second use of it is refused (False)."""
    try:
        _accept_once(session, jws, "withdrawal", verified, case=case, message_id=opened.message_id)
    except PermanentFailure:
        _refuse_withdrawal(session, opened, case, "withdrawal_signature", "this signed withdrawal was already used")
        return False
    return True


def _cancel_move(session: Session, opened: Opened, case: Case) -> None:
    """転出取消 or 予約取消 on the resident's verified signature: refused with the reason after the 転入, or
    when the signer is no longer entitled under 第26条 on the ledger as it stands."""
    refused = cancellation.refusal(session, case)
    if refused is None and cancellation.signer_refusal(session, case) is not None:
        refused = "signer"
    if refused is not None:
        reason = REASONS[{"signer": "cancellation_signer", "moved_in": "cancellation_moved_in",
                          "householder_changed": "cancellation_householder"}.get(refused, "withdrawal_too_late")]
        audit.record("intake.cancellation_refused", outcome="denied", actor="bridge", target_type="case",
                     target_id=case.id, detail={"reason": refused, "status": case.status.value})
        cases.send_status(session, case, reason=reason)
        return
    cancellation.cancel(session, case, by=None, how="online", detail={"message": opened.message_id})


def _handle_submitted(session: Session, opened: Opened) -> None:
    if opened.payload["kind"] in messages.REQUEST_KINDS:
        receive_resident_request(session, opened)
    else:
        receive_application(session, opened)


def rehearsal_messages(session: Session, queue: str) -> list[Opened]:
    """What an intake worker's parent rehearses before its first fork (``bridge.jobs.deliver.rehearse``).

    Applications made here whose signature cannot verify (the refusal path a forged one takes): their
    transaction, rolled back, runs the intake's statements so that the parent compiles them once. The
    lookups of a verified signer, its movers and its signature, which a refused signature never
    reaches, are run here with values that match nothing, and so is the insert of an accepted
    signature, for a case made here (rolled back too: nothing of it is kept).
    """
    if not queue.startswith("intake:"):
        return []
    nobody = BasicItems(name="", sex="", birth_date=EARLIEST_BIRTH_DATE, address="")
    _applicant(session, 0, nobody, [], awaiting_moveout=True)
    session.get(Resident, 0)
    _open_move_out_names(session, {0})
    _signature_taken(session, "", "certificate")
    now = clock.utcnow()
    case = Case(receipt_number=f"rehearsal-{uuid.uuid4().hex[:12]}", message_id=str(uuid.uuid4()), kind="certificate",
                status=CaseStatus.RETURNED, mover_resident_ids="[]", signed_jws="", sign_cert_serial="",
                signature_checked_at=now, findings="[]", sensitive=False, received_at=now, updated_at=now)
    session.add(case)
    session.flush()
    session.add(AcceptedSignature(signature_sha256="0" * 64, part="certificate", case_id=case.id,
                                  message_id=case.message_id, signed_at=now, accepted_at=now))
    session.flush()

    def segment(value: dict[str, Any]) -> str:
        return b64url_encode(json.dumps(value).encode())

    unsigned = f"{segment({'alg': 'RS256'})}.{segment({'application': {'type': 'move', 'movers': []}})}.AA"
    now = clock.utcnow()
    return [Opened(message_id=str(uuid.uuid4()), message_type=SUBMITTED, sender="portal",
                   recipient=current_bridge().party, created_at=now,
                   payload={"receiptNumber": f"rehearsal-{uuid.uuid4().hex[:12]}", "kind": kind, "moveId": None,
                            "submittedAt": now.isoformat(), "signedApplication": unsigned})
            for kind in ("certificate", "move_out")]


def register_handlers() -> None:
    """The message types the back office takes from the portal, and what its intake workers rehearse."""
    register(SUBMITTED, _handle_submitted, zone="backoffice", senders={"portal"})
    register(WITHDRAWN, receive_withdrawal, zone="backoffice", senders={"portal"})
    register_rehearsal("backoffice", rehearsal_messages)
