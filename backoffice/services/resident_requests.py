"""The resident's own requests (R20): disclosure (開示), correction (訂正) and suspension of use (利用停止).

A request is received for a person of the ledger (at the counter, or from the portal signed with the
card: ``backoffice.services.intake`` makes it for the person the signature certificate identifies), gets
its statutory deadline (30 days, extendable once by
up to 30 more with a reason), is confirmed by a clerk and decided by a different approver. A
granted correction is made with ``records.amend_record`` (the ledger's own update, its history and
its log row). A disclosure's answer lists who accessed the record, when, for which procedure and on
which legal basis, read from the operation log, the certificates issued and the provision records:
the role and the office, never a staff name, and nothing about anyone else. A request filed on the
portal is told each step through the bridge's status messages, a granted disclosure with its answer
(the requester's own items, never the My Number, and the accesses), shown in "My applications".
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from backoffice.models import (
    AuditLog,
    IdoReason,
    IssuedCertificate,
    ProvisionRecord,
    Resident,
    ResidentRequest,
    Role,
    Staff,
)
from backoffice.services import audit, provision, records
from backoffice.services.cards import holder_for
from bridge import messages
from bridge.binding import send
from core import clock, residentrequests

KINDS = ("disclosure", "correction", "suspension")
DEADLINE_DAYS = 30
MAX_EXTENSION_DAYS = 30
CORRECTABLE = residentrequests.CORRECTABLE
# What each logged action on a record was, and the law it was done under (both languages).
ACT = "住民基本台帳法 / Basic Resident Registration Act"
PROCEDURES = {
    "ledger.view": ("住民票の照会 / enquiry into the record", f"{ACT} 第1条・第7条 (art. 1, 7)"),
    "ledger.unmask": ("個人番号の表示 / My Number shown", "番号法第9条第1項 / My Number Act art. 9(1)"),
    "ledger.create": ("住民票の記載 / record created", f"{ACT} 第8条 (art. 8)"),
    "ledger.amend": ("住民票の修正 / record amended", f"{ACT} 第8条 (art. 8)"),
    "ledger.remove": ("住民票の消除 / record removed", f"{ACT} 第8条 (art. 8)"),
}
CERTIFICATE = ("住民票の写し等の交付 / certificate issued", f"{ACT} 第12条 (art. 12)")
PROVIDED = "情報の提供 / data provided to the body named"
TRANSFERRED = "庁内での利用のための移転 / data passed to the city department named"
OTHER_BASIS = ACT

# What the clerk reads when a step is refused, in the catalogue (English source, Japanese in translations/ja):
# the page's language.
MESSAGES = {
    "kind": _l("Choose the kind of request."),
    "resident_id": _l("The requester is not in the ledger."),
    "item": _l("Choose the item to correct."),
    "correct_value": _l("Enter the correct value."),
    "extension_reason": _l("Give the reason; the deadline is extended once, by up to 30 days."),
    "confirmed_by": _l("A clerk confirms the request."),
    "decided_by": _l("An approver other than the clerk who confirmed it decides."),
    "decision_reason": _l("Enter the reason for the decision."),
    "state": _l("The request is not in a state that allows this."),
}


class RequestError(ValueError):
    """A request step refused; ``field`` names what to correct."""

    def __init__(self, field: str) -> None:
        self.field, self.message = field, MESSAGES[field]
        super().__init__(self.message)


def _log(action: str, request: ResidentRequest, by: Staff | None, **detail: Any) -> None:
    audit.record(action, target_type="resident_request", target_id=request.id,
                 actor=by.login_id if by else "bridge", actor_id=by.id if by else None,
                 detail={"kind": request.kind, **detail})


def _tell(session: Session, request: ResidentRequest, status: str, reason: str | None = None,
          answer: dict[str, Any] | None = None) -> None:
    """Tell the portal where a request filed there stands (through the outbox: nothing leaves before the commit)."""
    if request.receipt_number is None:
        return  # made at the counter or by post: the answer goes by post
    payload: dict[str, Any] = {"receiptNumber": request.receipt_number, "status": status, "reason": reason}
    if answer is not None:
        payload["answer"] = answer
    send(session, message_type=messages.APPLICATION_STATUS, recipient="portal", payload=payload)


def receive(session: Session, *, kind: str, resident_id: int, by: Staff | None, item: str | None = None,
            correct_value: str | None = None, receipt_number: str | None = None,
            signature_sha256: str | None = None, statement: str | None = None) -> ResidentRequest:
    """Record a request; its deadline is 30 days from today (JST). ``by`` None: filed on the portal."""
    if kind not in KINDS:
        raise RequestError("kind")
    if session.get(Resident, resident_id) is None:
        raise RequestError("resident_id")
    if kind == "correction":
        if item not in CORRECTABLE:
            raise RequestError("item")
        if not (correct_value or "").strip():
            raise RequestError("correct_value")
    request = ResidentRequest(kind=kind, resident_id=resident_id, item=item, correct_value=correct_value,
                              received_at=clock.utcnow(), received_by=by.login_id if by else "portal",
                              status="received", due_on=clock.today_jst() + dt.timedelta(days=DEADLINE_DAYS),
                              receipt_number=receipt_number, signature_sha256=signature_sha256, statement=statement)
    session.add(request)
    session.flush()
    _log("resident_request.receive", request, by, due_on=request.due_on.isoformat(), item=item,
         receipt=receipt_number)
    _tell(session, request, "received", _due_text(request))
    return request


def _due_text(request: ResidentRequest) -> str:
    text = f"回答期限 / Answer due by: {request.due_on.isoformat()}"
    if request.extension_reason:
        text += f"（延長 / extended: {request.extension_reason}）"
    return text[:1000]


def _load(session: Session, request_id: int, *states: str) -> ResidentRequest:
    request = session.get(ResidentRequest, request_id, with_for_update=True)
    if request is None or request.status not in states:
        raise RequestError("state")
    return request


def extend(session: Session, request_id: int, *, days: int, reason: str, by: Staff) -> ResidentRequest:
    """Extend the deadline once, by at most 30 days, with a reason the resident is told."""
    request = _load(session, request_id, "received", "confirmed")
    if request.extension_reason or not reason.strip() or not 1 <= days <= MAX_EXTENSION_DAYS:
        raise RequestError("extension_reason")
    request.due_on += dt.timedelta(days=days)
    request.extension_reason = reason.strip()
    _log("resident_request.extend", request, by, due_on=request.due_on.isoformat())
    _tell(session, request, "in_review", _due_text(request))
    return request


def confirm(session: Session, request_id: int, *, by: Staff) -> ResidentRequest:
    """The first person: a clerk checks the request and the requester."""
    if Role.CLERK not in by.role_set:
        raise RequestError("confirmed_by")
    request = _load(session, request_id, "received")
    request.status, request.confirmed_by = "confirmed", by.login_id
    _log("resident_request.confirm", request, by)
    _tell(session, request, "in_review", _due_text(request))
    return request


def decide(session: Session, request_id: int, *, grant: bool, reason: str, by: Staff) -> ResidentRequest:
    """The second person decides; a granted correction amends the ledger, a disclosure gets its answer."""
    request = _load(session, request_id, "confirmed")
    if Role.APPROVER not in by.role_set or by.login_id == request.confirmed_by:
        raise RequestError("decided_by")
    if not reason.strip():
        raise RequestError("decision_reason")
    if grant and request.kind == "correction":
        resident = session.get(Resident, request.resident_id)
        assert resident is not None and request.item is not None and request.correct_value is not None
        value: Any = request.correct_value.strip()
        if request.item == "birth_date":
            try:
                value = dt.date.fromisoformat(value)
            except ValueError:
                raise RequestError("correct_value") from None
        records.amend_record(session, resident, reason=IdoReason.CORRECTION, changed_on=clock.today_jst(),
                             notified_on=clock.jst_date(request.received_at), by=by.login_id,
                             **{request.item: value})
    answer = disclosure_answer(session, request.resident_id) if grant and request.kind == "disclosure" else None
    if answer is not None:
        request.answer = json.dumps(answer, ensure_ascii=False)
    request.status = "granted" if grant else "refused"
    request.decided_by, request.decided_at, request.decision_reason = by.login_id, clock.utcnow(), reason.strip()
    _log("resident_request.decide", request, by, granted=grant)
    if answer is not None and len(answer["accesses"]) > messages.ANSWER_MAX_ACCESSES:
        answer = {**answer, "accesses": answer["accesses"][-messages.ANSWER_MAX_ACCESSES:]}
    _tell(session, request, "completed" if grant else "rejected", request.decision_reason[:1000], answer)
    return request


def disclosure_answer(session: Session, resident_id: int) -> dict[str, Any]:
    """The requester's own items (never the My Number, nobody else's) and who accessed them."""
    resident = session.get(Resident, resident_id)
    assert resident is not None
    record = {"name": resident.name, "name_kana": resident.name_kana, "birth_date": resident.birth_date.isoformat(),
              "sex": resident.sex.value, "address": holder_for(resident).address,
              "relationship": resident.relationship_to_head, "honseki": resident.honseki,
              "hittosha": resident.hittosha}
    return {"record": record, "accesses": access_log(session, resident_id)}


def by_deadline(session: Session) -> list[Any]:
    """Every request with its resident, by deadline (the clerks' list)."""
    return list(session.execute(select(ResidentRequest, Resident)
                                .join(Resident, Resident.id == ResidentRequest.resident_id)
                                .order_by(ResidentRequest.due_on, ResidentRequest.id)).all())


def overdue(session: Session, on: dt.date | None = None) -> list[ResidentRequest]:
    """Undecided requests past their deadline (for the clerk's list)."""
    day = on or clock.today_jst()
    return list(session.execute(select(ResidentRequest).where(
        ResidentRequest.status.in_(("received", "confirmed")), ResidentRequest.due_on < day)
        .order_by(ResidentRequest.due_on)).scalars())


def access_log(session: Session, resident_id: int) -> list[dict[str, str]]:
    """Who accessed the record (role and office, never a name), when, for which procedure, on which basis."""
    office = f"{current_app.config.get('MUNICIPALITY_NAME') or ''} {current_app.config.get('OFFICE_NAME') or '市民課'}"
    roles: dict[int, str] = {}
    entries: list[tuple[dt.datetime, dict[str, str]]] = []
    rows = session.execute(select(AuditLog).where(
        AuditLog.target_type == "resident", AuditLog.target_id == str(resident_id),
        AuditLog.outcome == "success").order_by(AuditLog.seq)).scalars()
    for row in rows:
        if row.actor_id is None:
            who = "システム / system"
        else:
            if row.actor_id not in roles:
                staff = session.get(Staff, row.actor_id)
                roles[row.actor_id] = ", ".join(sorted(r.value for r in staff.role_set)) if staff else "staff"
            who = roles[row.actor_id]
        procedure, basis = PROCEDURES.get(row.action, (row.action, OTHER_BASIS))
        entries.append((row.ts, {"who": who, "office": office.strip(), "procedure": procedure, "basis": basis}))
    for cert in session.execute(select(IssuedCertificate)).scalars():
        if resident_id in json.loads(cert.resident_ids or "[]"):
            entries.append((cert.issued_at, {"who": "clerk", "office": office.strip(), "procedure": CERTIFICATE[0],
                                             "basis": CERTIFICATE[1]}))
    recipients = provision.load_recipients()
    for record in session.execute(select(ProvisionRecord).where(ProvisionRecord.resident_id == resident_id)).scalars():
        recipient = recipients.get(record.recipient_id)
        who = f"{recipient.name.ja} / {recipient.name.en}" if recipient else record.recipient_id
        entries.append((record.created_at, {
            "who": who, "office": office.strip(), "basis": record.legal_basis[:1000],
            "procedure": TRANSFERRED if recipient and recipient.kind == provision.TRANSFER else PROVIDED}))
    entries.sort(key=lambda e: e[0])
    return [{"at": at.astimezone(clock.JST).strftime("%Y-%m-%d %H:%M"), **entry} for at, entry in entries]
