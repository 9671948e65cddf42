"""The case workflow (F4, F5, R7): the inbox, claim, confirm, return, reject, and approval by a second person.

A clerk confirms (確認) what the resident sent, or returns it (差戻し) with a reason the resident can act
on, or rejects it (却下). A person with the approver role who did not confirm it then approves (承認)
with a fresh one-time code; approval runs the effect registered for the case's kind (the ledger change,
the certificate, ...) in the same transaction, so a refused effect leaves nothing behind.

Every transition locks the case row (``SELECT ... FOR UPDATE`` on PostgreSQL; the ``version`` column
catches a stale write anywhere else), writes a ``case_event`` row, an operation-log row and a status
message to the portal through the outbox. Services flush and never commit: the caller commits once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from backoffice.models import Case, CaseEvent, CaseNote, CaseStatus, Resident, Role, Staff
from backoffice.services import audit, ledger, support
from backoffice.services.staff import check_second_factor
from bridge import messages
from bridge.binding import send
from core import clock, officecalendar
from core.jpki import jws_claims
from core.refusal import Refused
from core.textfold import fold

STATUS = messages.APPLICATION_STATUS
KINDS = ("move_out", "move_in_reservation", "in_city_reservation", "certificate")
OPEN = (CaseStatus.RECEIVED, CaseStatus.IN_REVIEW, CaseStatus.CONFIRMED)
FINAL = (CaseStatus.RETURNED, CaseStatus.REJECTED, CaseStatus.WITHDRAWN, CaseStatus.COMPLETED)
# What the resident sees on "My applications" (portal ApplicationStatus); confirmed is still "in review" there.
PORTAL_STATUS = {
    CaseStatus.RECEIVED: "received",
    CaseStatus.IN_REVIEW: "in_review",
    CaseStatus.CONFIRMED: "in_review",
    CaseStatus.RETURNED: "returned",
    CaseStatus.APPROVED: "approved",
    CaseStatus.REJECTED: "rejected",
    CaseStatus.WITHDRAWN: "withdrawn",
    CaseStatus.COMPLETED: "completed",
}
REASON_MAX = 1000
NOTE_MAX = 2000


class CaseError(Refused):
    """A workflow step that is not allowed; ``field`` names the input to correct, ``message`` says why.

    ``message`` is from the catalogue (backoffice.services.cases.MESSAGES): it reads in the page's language.
    """

    def __init__(self, field: str, message: Any, *, code: str = "refused") -> None:
        super().__init__(field, message, code=code)


# What each refusal says, in the catalogue (English source, Japanese in translations/ja): the page's language.
MESSAGES = {
    "not_found": _l("There is no such case."),
    "stale": _l("Another member of staff changed this case first. Please open it again."),
    "claimed_by_other": _l("Another member of staff has claimed this case."),
    "not_claimed": _l("You have not claimed this case."),
    "closed": _l("This case is already closed."),
    "not_open": _l("This step is not possible for a case in this status."),
    "need_clerk": _l("Only a clerk may confirm, return or reject."),
    "need_approver": _l("Only staff with the approver role may approve."),
    "not_confirmed": _l("Only a confirmed case can be approved."),
    "no_effect": _l("Approval is not defined for this kind of case."),
    "same_person": _l("The person who confirmed a case cannot approve it. Please ask another approver."),
    "totp": _l("The one-time code is wrong or was already used. Please enter a new code."),
    "reason_missing": _l("Please enter a reason; the applicant will see it."),
    "reason_long": _l("The reason must be at most %(max)d characters.", max=REASON_MAX),
    "note_missing": _l("Please enter a note."),
    "note_long": _l("The note must be at most %(max)d characters.", max=NOTE_MAX),
    "not_approved": _l("Only an approved case can be completed."),
    "signature_refused": _l("The resident's signature on this application could not be verified: it can only be "
                            "returned or rejected."),
}


def _error(field: str, code: str) -> CaseError:
    return CaseError(field, MESSAGES[code], code=code)


# -- approval effects ---------------------------------------------------------------------------------

# What approving each kind does is the table in backoffice/services/approval.py (APPROVAL_EFFECTS).
ApprovalEffect = Callable[[Session, Case, Staff], None]


# -- history, status, audit ----------------------------------------------------------------------------


def _actor(by: Staff | None) -> tuple[str, int | None]:
    return (by.login_id, by.id) if by is not None else ("bridge", None)


def add_event(session: Session, case: Case, action: str, *, by: Staff | None,
              detail: dict[str, Any] | None = None, from_status: CaseStatus | None = None) -> CaseEvent:
    """Append one step to the history of ``case`` (``by`` None: the bridge or a job did it)."""
    actor, actor_id = _actor(by)
    event = CaseEvent(case_id=case.id, action=action, from_status=from_status, to_status=case.status,
                      actor=actor, actor_id=actor_id,
                      detail=json.dumps(detail, ensure_ascii=False) if detail else None, created_at=clock.utcnow())
    session.add(event)
    return event


def send_status(session: Session, case: Case, *, reason: str | None = None) -> None:
    """Tell the portal where the case stands (through the outbox, so nothing is sent before the commit).

    ``reason`` explains a status that did not change, e.g. a withdrawal the city could not accept. A reason of
    intake's own goes as its code (bridge.reasons), which the portal words in the resident's language; a
    clerk's typed reason goes as typed.
    """
    from backoffice.services.intake import reason_code

    if reason is None:
        reason = case.status_reason if case.status in (CaseStatus.RETURNED, CaseStatus.REJECTED) else None
    # R22: nothing of a protected person to the other party (the status and reason are decided before the code).
    status, reason = support.for_portal(session, case, PORTAL_STATUS[case.status], reason)
    code = reason_code(reason)
    send(session, message_type=STATUS, recipient="portal",
         payload={"receiptNumber": case.receipt_number, "status": status,
                  "reason": None if code else reason, "reasonCode": code})


def _audit(action: str, case: Case, by: Staff | None, *, outcome: str = "success",
           detail: dict[str, Any] | None = None) -> None:
    actor, actor_id = _actor(by)
    audit.record(f"case.{action}", outcome=outcome, target_type="case", target_id=case.id, actor=actor,
                 actor_id=actor_id, detail={"kind": case.kind, "status": case.status.value, **(detail or {})})


def _transition(session: Session, case: Case, action: str, new: CaseStatus, *, by: Staff | None,
                detail: dict[str, Any] | None = None) -> None:
    before = case.status
    case.status = new
    case.updated_at = clock.utcnow()
    _flush(session)
    add_event(session, case, action, by=by, detail=detail, from_status=before)
    _audit(action, case, by, detail={"from": before.value, **(detail or {})})
    send_status(session, case)
    session.flush()


def _flush(session: Session) -> None:
    try:
        session.flush()
    except StaleDataError as exc:
        raise _error("case", "stale") from exc


# -- loading and locking -------------------------------------------------------------------------------


def _lock(session: Session, case_id: int) -> Case:
    """The case, locked for this transaction and read fresh (whatever the session held before)."""
    case = session.execute(
        select(Case).where(Case.id == case_id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if case is None:
        raise _error("case", "not_found")
    return case


def _lock_staff(session: Session, by: Staff) -> Staff:
    # Locked too, so one one-time code cannot pass two concurrent approvals.
    staff = session.execute(
        select(Staff).where(Staff.id == by.id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one()
    return staff


def _not_claimed_by_other(case: Case, by: Staff) -> None:
    if case.claimed_by is not None and case.claimed_by != by.id:
        raise _error("case", "claimed_by_other")


def _reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise _error("reason", "reason_missing")
    if len(text) > REASON_MAX:
        raise _error("reason", "reason_long")
    return text


# -- the workflow ----------------------------------------------------------------------------------------


def claim(session: Session, case_id: int, *, by: Staff) -> Case:
    """Take an open case to work on it; others see who has it."""
    case = _lock(session, case_id)
    if case.status not in OPEN:
        raise _error("case", "closed")
    _not_claimed_by_other(case, by)
    if case.claimed_by == by.id:
        return case
    case.claimed_by, case.claimed_at, case.updated_at = by.id, clock.utcnow(), clock.utcnow()
    _flush(session)
    add_event(session, case, "claim", by=by, from_status=case.status)
    _audit("claim", case, by)
    return case


def release(session: Session, case_id: int, *, by: Staff) -> Case:
    """Give a claimed case back to the inbox."""
    case = _lock(session, case_id)
    if case.claimed_by != by.id:
        raise _error("case", "not_claimed")
    case.claimed_by, case.claimed_at, case.updated_at = None, None, clock.utcnow()
    _flush(session)
    add_event(session, case, "release", by=by, from_status=case.status)
    _audit("release", case, by)
    return case


def confirm(session: Session, case_id: int, *, by: Staff) -> Case:
    """確認: a clerk has checked the application against the ledger; it now waits for a second person."""
    case = _lock(session, case_id)
    if Role.CLERK not in by.role_set:
        raise _error("case", "need_clerk")
    if case.status not in (CaseStatus.RECEIVED, CaseStatus.IN_REVIEW):
        raise _error("case", "not_open")
    _signature_verified(case)
    _not_claimed_by_other(case, by)
    now = clock.utcnow()
    case.confirmed_by, case.confirmed_at = by.id, now
    case.claimed_by, case.claimed_at = None, None  # back to the inbox, for an approver
    _transition(session, case, "confirm", CaseStatus.CONFIRMED, by=by)
    return case


def _close(session: Session, case_id: int, action: str, status: CaseStatus, *, by: Staff, reason: str | None) -> Case:
    case = _lock(session, case_id)
    if not ({Role.CLERK, Role.APPROVER} & by.role_set):
        raise _error("case", "need_clerk")
    if case.status not in OPEN:
        raise _error("case", "not_open")
    _not_claimed_by_other(case, by)
    text = _reason(reason)
    case.status_reason = text
    case.claimed_by, case.claimed_at = None, None
    _transition(session, case, action, status, by=by, detail={"reason": text})
    return case


def return_case(session: Session, case_id: int, *, by: Staff, reason: str) -> Case:
    """差戻し: send the application back with a reason the resident can act on (the portal shows it)."""
    return _close(session, case_id, "return", CaseStatus.RETURNED, by=by, reason=reason)


def reject(session: Session, case_id: int, *, by: Staff, reason: str) -> Case:
    """却下: refuse the application, with the reason."""
    return _close(session, case_id, "reject", CaseStatus.REJECTED, by=by, reason=reason)


def signature_refused(case: Case) -> bool:
    """Whether intake refused the resident's signature: the case only carries the refusal back (a kind made
    sensitive sends it to a clerk instead of returning it at once), and nothing of it may take effect."""
    return any(f.get("code") == "signature_refused" for f in json.loads(case.findings or "[]"))


def _signature_verified(case: Case) -> None:
    if signature_refused(case):
        raise _error("case", "signature_refused")


def approve(session: Session, case_id: int, *, by: Staff, totp_code: str) -> Case:
    """承認 (R7): by an approver who did not confirm, with a fresh one-time code; runs the kind's effect."""
    case = _lock(session, case_id)
    staff = _lock_staff(session, by)
    if Role.APPROVER not in staff.role_set:
        raise _error("case", "need_approver")
    if case.status is not CaseStatus.CONFIRMED:
        raise _error("case", "not_confirmed")
    _signature_verified(case)
    _not_claimed_by_other(case, staff)
    if case.confirmed_by == staff.id:
        raise _error("case", "same_person")
    if not check_second_factor(staff, totp_code or ""):
        raise _error("totp_code", "totp")
    staff.failed_attempts = 0
    case.approved_by, case.approved_at = staff.id, clock.utcnow()
    case.claimed_by, case.claimed_at = None, None
    _transition(session, case, "approve", CaseStatus.APPROVED, by=staff)
    from backoffice.services.approval import APPROVAL_EFFECTS  # the table imports the kinds' services, and they this

    effect = APPROVAL_EFFECTS.get(case.kind)
    if effect is None:  # never silently approve a kind whose approval does nothing
        raise _error("case", "no_effect")
    effect(session, case, staff)
    session.flush()
    return case


def complete(session: Session, case: Case, *, by: Staff | None, detail: dict[str, Any] | None = None) -> Case:
    """完了: the approved case is finished (the counter visit, the mailing, the 転入通知 ...)."""
    if case.status is not CaseStatus.APPROVED:
        raise _error("case", "not_approved")
    _transition(session, case, "complete", CaseStatus.COMPLETED, by=by, detail=detail)
    return case


def add_note(session: Session, case_id: int, *, by: Staff, text: str) -> CaseNote:
    """A note between clerks (never sent to the resident); the log records that one was written."""
    case = _lock(session, case_id)
    body = (text or "").strip()
    if not body:
        raise _error("text", "note_missing")
    if len(body) > NOTE_MAX:
        raise _error("text", "note_long")
    note = CaseNote(case_id=case.id, author_id=by.id, text=body, created_at=clock.utcnow())
    session.add(note)
    session.flush()
    _audit("note", case, by, detail={"note": note.id})
    return note


def refused(session: Session, case_id: int, action: str, *, by: Staff, error: CaseError) -> None:
    """Log a refused step (call after the rollback, then commit): the operation log keeps attempts too.

    A wrong step-up code counts toward the lockout exactly as a wrong code at sign-in does, so the
    approve form is no way round the sign-in's limit on guesses.
    """
    detail: dict[str, Any] = {"reason": error.code}
    if error.code == "totp":
        staff = _lock_staff(session, by)
        staff.failed_attempts += 1
        detail["failed_attempts"] = staff.failed_attempts
        if staff.failed_attempts >= current_app.config["LOCKOUT_THRESHOLD"]:
            staff.locked_at = clock.utcnow()
            detail["locked"] = True
        session.flush()
    audit.record(f"case.{action}", outcome="denied", target_type="case", target_id=case_id, actor=by.login_id,
                 actor_id=by.id, detail=detail)


# -- reading: the inbox and one case -------------------------------------------------------------------


def counts(session: Session) -> dict[CaseStatus, int]:
    """How many cases are in each status."""
    rows = session.execute(select(Case.status, func.count()).group_by(Case.status)).all()
    found = dict(rows)
    return {status: int(found.get(status, 0)) for status in CaseStatus}


def inbox(session: Session, *, status: CaseStatus | None = None, kind: str | None = None,
          claimed_by: int | None = None, sensitive: bool = False, limit: int = 500) -> list[Case]:
    """Cases to work, oldest first (open ones unless a status is chosen)."""
    stmt = select(Case).order_by(Case.received_at, Case.id)
    if status is not None:
        stmt = stmt.where(Case.status == status)
    else:
        stmt = stmt.where(Case.status.in_(OPEN))
    if kind:
        stmt = stmt.where(Case.kind == kind)
    if claimed_by is not None:
        stmt = stmt.where(Case.claimed_by == claimed_by)
    if sensitive:
        stmt = stmt.where(Case.sensitive.is_(True))
    return list(session.execute(stmt.limit(limit)).scalars())


def get_case(session: Session, case_id: int) -> Case | None:
    """One case; opening it is logged."""
    case = session.get(Case, case_id)
    if case is not None:
        audit.record("case.view", target_type="case", target_id=case.id)
    return case


def events(session: Session, case: Case) -> list[CaseEvent]:
    """The history of a case, oldest first."""
    return list(session.execute(select(CaseEvent).where(CaseEvent.case_id == case.id)
                                .order_by(CaseEvent.id)).scalars())


def notes(session: Session, case: Case) -> list[CaseNote]:
    """Notes between clerks, oldest first."""
    return list(session.execute(select(CaseNote).where(CaseNote.case_id == case.id).order_by(CaseNote.id)).scalars())


def signed_application(case: Case) -> dict[str, Any]:
    """The application as the resident signed it (verified again at intake)."""
    application: dict[str, Any] = jws_claims(case.signed_jws).get("application", {})
    return application


def signature_digest(jws: str) -> str:
    """SHA-256 of the JWS signing input: the header and payload exactly as the resident's card signed them."""
    header, payload = jws.split(".")[:2]
    return hashlib.sha256(f"{header}.{payload}".encode("ascii")).hexdigest()


# -- working hours and the SLA ---------------------------------------------------------------------------

JST = ZoneInfo("Asia/Tokyo")


_is_working_day = officecalendar.is_open  # weekends, national holidays and 12/29–1/3 (the office calendar)


def _working_window(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.time.fromisoformat(current_app.config.get("WORKING_DAY_START", "08:30"))
    end = dt.time.fromisoformat(current_app.config.get("WORKING_DAY_END", "17:15"))
    return dt.datetime.combine(day, start, JST), dt.datetime.combine(day, end, JST)


def working_hours_between(start: dt.datetime, end: dt.datetime) -> float:
    """Office hours (JST, working days only) between two instants."""
    if end <= start:
        return 0.0
    total = 0.0
    day = start.astimezone(JST).date()
    last = end.astimezone(JST).date()
    while day <= last:
        if _is_working_day(day):
            open_at, close_at = _working_window(day)
            lo, hi = max(start, open_at), min(end, close_at)
            if hi > lo:
                total += (hi - lo).total_seconds() / 3600
        day += dt.timedelta(days=1)
    return total


def sla_hours() -> float:
    """The working hours a case may wait before it is overdue (CASE_SLA_WORKING_HOURS; default three working days)."""
    configured = current_app.config.get("CASE_SLA_WORKING_HOURS")
    if configured is not None:
        return float(configured)
    open_at, close_at = _working_window(dt.date(2000, 1, 1))
    return 3 * (close_at - open_at).total_seconds() / 3600


@dataclass(frozen=True)
class Age:
    """How long a case has waited, in calendar days and in working hours, against the SLA."""

    days: int
    working_hours: float
    sla_hours: float

    @property
    def overdue(self) -> bool:
        """Past the SLA."""
        return self.working_hours > self.sla_hours

    @property
    def remaining_hours(self) -> float:
        """Working hours left before the SLA (negative when overdue)."""
        return self.sla_hours - self.working_hours


def age(case: Case, now: dt.datetime | None = None) -> Age:
    """The age of ``case`` now."""
    now = now or clock.utcnow()
    return Age(days=(now - case.received_at).days, working_hours=working_hours_between(case.received_at, now),
               sla_hours=sla_hours())


# -- the case beside the ledger --------------------------------------------------------------------------


@dataclass(frozen=True)
class Compared:
    """One item as the application states it and as the ledger records it."""

    item: str  # name, kana, birth_date, relationship
    applied: str
    recorded: str

    @property
    def differs(self) -> bool:
        """Whether the two disagree (ignoring width and spacing differences)."""
        return fold(self.applied) != fold(self.recorded)


@dataclass(frozen=True)
class Side:
    """A person of the case: what the application says and their ledger record (None: not found)."""

    role: str  # mover or applicant
    applied: dict[str, Any]
    resident: Resident | None
    items: list[Compared]

    @property
    def differences(self) -> int:
        """How many items disagree."""
        return sum(1 for c in self.items if c.differs)


def _compare(applied: dict[str, Any], resident: Resident | None) -> list[Compared]:
    if resident is None:
        return []
    pairs = [("name", applied.get("name", ""), resident.name),
             ("kana", applied.get("kana", ""), resident.name_kana),
             ("birth_date", applied.get("birthDate", ""), resident.birth_date.isoformat()),
             ("relationship", applied.get("relationship", ""), resident.relationship_to_head)]
    stated = {"name", "birth_date"} | ({"kana"} if "kana" in applied else set()) | (
        {"relationship"} if "relationship" in applied else set())
    return [Compared(item, str(a or ""), str(r or "")) for item, a, r in pairs if item in stated]


def sides(session: Session, case: Case) -> list[Side]:
    """Every mover (or the applicant) beside their ledger record; each record shown is a logged ledger view."""
    application = signed_application(case)
    ids: list[int | None] = json.loads(case.mover_resident_ids or "[]")
    out: list[Side] = []
    for i, mover in enumerate(application.get("movers", []) or []):
        resident_id = ids[i] if i < len(ids) else None
        resident = ledger.get_record(session, resident_id) if resident_id is not None else None
        out.append(Side("mover", mover, resident, _compare(mover, resident)))
    shown = {s.resident.id for s in out if s.resident is not None}
    if case.applicant_resident_id is not None and case.applicant_resident_id not in shown:
        resident = ledger.get_record(session, case.applicant_resident_id)
        out.insert(0, Side("applicant", {}, resident, []))
    return out
