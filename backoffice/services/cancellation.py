"""転出取消 and 予約取消 (F5, F9, R9, R10): a move cancelled before the 転入.

A 転出届 approved here left each mover's record a 除票 (転出予定, awaiting the destination's 転入通知).
Until that 転入通知 records the 転出確定, the resident may cancel the move, online (a withdrawal
signed with the card that signed the 転出届, through the portal and the bridge like any application)
or at the counter (a member of staff with the approver role and a fresh one-time code). Then:

- each 除票 is a current record again (``records.restore_record``: the history keeps the 除票 as it
  was and the cancellation, 事由 転出取消; the history table stays append-only);
- the destination is told (``moveout.cancellation`` through ``provision.send``): it withdraws the
  転出証明書情報 it holds for the person and cancels the 転入予約 that waits for it;
- the prefecture is told (本人確認情報の更新, 事由 転出取消), and the departments the 転出 concerned;
- the 転出届 case is closed as withdrawn, with the reason in its history.

Once a 転入通知 has confirmed the move (転出確定) it is refused with the reason: the person is a
resident of the destination, which alone can record a move back. A 転入予約 or 転居予約 approved
but not yet completed at the counter is cancelled the same way (予約取消): the case is closed and a
matched 転出証明書情報 is freed for a new reservation.

The portal is assumed compromised: the back office acts only on a withdrawal whose signature it
verified itself, made with the certificate that signed the application, by a signer still entitled
under 第26条 (``filing.cancellation_refusal``) on the ledger as it stands. Services flush; the caller commits.
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
    Case,
    CaseEvent,
    CaseStatus,
    IdoReason,
    MoveoutCertificate,
    RecordStatus,
    Resident,
    Role,
    Staff,
)
from backoffice.services import audit, filing, moves, provision, records
from backoffice.services.cases import CaseError, add_event, send_status, signed_application
from backoffice.services.records import RecordError
from bridge import messages
from bridge.handlers import PermanentFailure, register
from core import clock
from core.config import connected_municipalities
from core.envelope import Opened

MOVEOUT_CANCELLATION = messages.MOVEOUT_CANCELLATION
DEPT_NOTICE = "dept.notice.move_out_cancelled"  # the departments told of the 転出 learn it was cancelled
RESERVATIONS = ("move_in_reservation", "in_city_reservation")
CANCELLED, RESERVATION_CANCELLED = "moveout_cancelled", "reservation_cancelled"

# What the clerk reads on the case and the resident on "My applications" (the page's language).
MESSAGES = {
    "moved_in": _l("The move is already confirmed by the destination's 転入通知 (転出確定): the 転出 can no longer "
                   "be cancelled. The person is a resident of the destination, which records any move back."),
    "not_cancellable": _l("Only an approved 転出届, 転入予約 or 転居予約 not yet completed can be cancelled."),
    "signer": _l("The person cancelling is not one of the movers or a member of their household (第26条)."),
    "current_again": _l("A current record of this person already exists: the 除票 cannot be restored."),
    "householder_changed": _l("The household has another householder since the move-out (第25条): record the "
                              "householder the members state (世帯主変更届) first, then cancel the 転出."),
    "need_clerk": _l("Only a clerk may record the resident's request at the counter."),
    "no_counter_request": _l("A clerk records the resident's request at the counter first, today; then another "
                             "person with the approver role cancels the move."),
    "same_person": _l("The person who recorded the resident's request cannot also cancel the move. Please ask "
                      "another approver."),
}
REQUESTED = "cancellation_requested"  # the case event of a clerk who recorded the resident's request at the counter
# The reason the destination's resident reads on "My applications" when the origin cancelled the 転出.
DESTINATION_REASON = ("転出元の市区町村で転出が取り消されたため、転入予約を取り消しました。 / "
                      "The move-out was cancelled at the former municipality, so this move-in reservation "
                      "was cancelled.")


def _error(field: str, code: str) -> CaseError:
    return CaseError(field, MESSAGES[code], code=code)


def _movers(session: Session, case: Case) -> list[Resident]:
    return [r for i in json.loads(case.mover_resident_ids) if i is not None
            and (r := session.get(Resident, i)) is not None]


def refusal(session: Session, case: Case) -> str | None:
    """Why this case cannot be cancelled now (a key of ``MESSAGES``), or None."""
    if case.kind == "move_out":
        movers = _movers(session, case)
        if case.status is CaseStatus.COMPLETED or any(m.confirmed_moveout_address for m in movers):
            return "moved_in"
        if case.status is not CaseStatus.APPROVED or not movers \
                or not all(records.awaiting_moveout(m) for m in movers):
            return "not_cancellable"
        if any(_householder_replaced(m) for m in movers):
            return "householder_changed"
        return None
    if case.kind in RESERVATIONS and case.status is CaseStatus.APPROVED:
        return None
    return "not_cancellable"


def cancellable(session: Session, case: Case) -> bool:
    """Whether the case page offers the cancellation (an approved move not yet completed)."""
    return case.kind in ("move_out", *RESERVATIONS) and case.status is CaseStatus.APPROVED \
        and refusal(session, case) is None


def signer_refusal(session: Session, case: Case) -> str | None:
    """第26条 for the cancellation, on the ledger as it stands: the case's signer still entitled, or the reason."""
    signer = session.get(Resident, case.applicant_resident_id) if case.applicant_resident_id is not None else None
    if case.kind == "move_in_reservation":
        return None  # the people it names are not residents here; the same certificate signed it (checked by intake)
    return "signer" if filing.cancellation_refusal(signer, _movers(session, case)) else None


def cancel(session: Session, case: Case, *, by: Staff | None, how: str, detail: dict[str, Any] | None = None) -> Case:
    """Cancel an approved move (``how``: "online" or "counter"); raises CaseError with the reason, changing nothing.

    The caller has checked who asks (the signature and ``signer_refusal`` online; the approver and the
    one-time code at the counter).
    """
    session.execute(select(Case.id).where(Case.id == case.id).with_for_update())
    code = refusal(session, case)
    if code is not None:
        raise _error("case", code)
    actor = by.login_id if by is not None else "bridge"
    if case.kind == "move_out":
        _cancel_move_out(session, case, actor=actor)
        action = CANCELLED
    else:
        for certificate in session.execute(select(MoveoutCertificate).where(
                MoveoutCertificate.case_id == case.id)).scalars():
            certificate.case_id, certificate.matched_at = None, None  # free for a new reservation
        action = RESERVATION_CANCELLED
    before = case.status
    case.status, case.updated_at = CaseStatus.WITHDRAWN, clock.utcnow()
    case.claimed_by, case.claimed_at = None, None
    session.flush()
    add_event(session, case, action, by=by, from_status=before, detail={"how": how, **(detail or {})})
    audit.record(f"case.{action}", actor=actor, actor_id=by.id if by is not None else None, target_type="case",
                 target_id=case.id, detail={"kind": case.kind, "how": how})
    send_status(session, case)
    session.flush()
    return case


def _cancel_move_out(session: Session, case: Case, *, actor: str) -> None:
    """Each 除票 current again; the destination and the prefecture told."""
    application = signed_application(case)
    destination = application.get("destination") or {}
    code = destination.get("municipalityCode")
    own = str(current_app.config["MUNICIPALITY_CODE"])
    party = f"muni:{code}" if code and code != own and code in connected_municipalities() else None
    today = clock.today_jst()
    why = f"転出取消 {case.receipt_number}"
    for resident in _movers(session, case):
        try:
            records.restore_record(session, resident, changed_on=today, notified_on=today, by=actor)
        except RecordError as exc:
            raise _error("movers", "current_again") from exc
        items = {"juminhyo_code": resident.juminhyo_code, "name": resident.name,
                 "birth_date": resident.birth_date.isoformat(), "move_id": case.move_id}
        if party is not None:
            provision.send(session, recipient_id=moves.MUNICIPALITY, party=party, message_type=MOVEOUT_CANCELLATION,
                           data=items, reason=why, resident_id=resident.id, actor=actor)
        else:
            provision.send(session, recipient_id=moves.STANDIN, message_type=MOVEOUT_CANCELLATION, data=items,
                           reason=why, resident_id=resident.id, actor=actor)
        moves.identity_update(session, resident, reason=IdoReason.MOVE_OUT_CANCELLED, on=today, why=why, actor=actor)
        _tell_departments(session, resident, on=today, why=why, actor=actor)


def _tell_departments(session: Session, resident: Resident, *, on: dt.date, why: str, actor: str) -> None:
    """The departments the 転出 was notified to learn that it was cancelled (each only its listed items)."""
    data = {"name": resident.name, "name_kana": resident.name_kana, "birth_date": resident.birth_date.isoformat(),
            "sex": resident.sex.value, "address": moves.full_address(resident),
            "my_number": records.my_number(resident),
            "household_number": resident.household.household_number,
            "householder_name": resident.household.householder_name, "relationship": resident.relationship_to_head,
            "change_reason": IdoReason.MOVE_OUT_CANCELLED.value, "change_date": on.isoformat()}
    moves.notify_departments(session, resident, message_type=DEPT_NOTICE, data=data, on=on, reason=why, actor=actor)


def _householder_replaced(resident: Resident) -> bool:
    """Whether a householder who left has been replaced by another current householder of the household (第25条):
    restoring the record would give the household two; that is settled at the counter, never automatically."""
    return resident.is_householder and any(
        m.id != resident.id and m.is_householder and m.status is RecordStatus.CURRENT
        for m in resident.household.members)


def _counter_case(session: Session, case_id: int) -> Case:
    from backoffice.services.cases import get_case

    session.execute(select(Case.id).where(Case.id == case_id).with_for_update())
    case = get_case(session, case_id)
    if case is None:
        raise CaseError("case", _l("There is no such case."), code="not_found")
    return case


def request_counter_cancellation(session: Session, case_id: int, *, by: Staff) -> Case:
    """The first person: a clerk records that the resident asked at the counter to cancel, having checked who
    asks (as for any 届出 at the counter). Nothing changes yet; another person with the approver role cancels."""
    case = _counter_case(session, case_id)
    if Role.CLERK not in by.role_set:
        raise _error("case", "need_clerk")
    code = refusal(session, case)
    if code is not None:
        raise _error("case", code)
    add_event(session, case, REQUESTED, by=by, from_status=case.status)
    audit.record(f"case.{REQUESTED}", target_type="case", target_id=case.id, detail={"kind": case.kind})
    session.flush()
    return case


def counter_request(session: Session, case: Case) -> CaseEvent | None:
    """Today's recorded request to cancel ``case`` at the counter, if any (a request lapses with the day)."""
    event = session.execute(select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.action == REQUESTED)
                            .order_by(CaseEvent.id.desc()).limit(1)).scalar_one_or_none()
    if event is None or clock.jst_date(event.created_at) != clock.today_jst():
        return None
    return event


def cancel_at_counter(session: Session, case_id: int, *, by: Staff, totp_code: str) -> Case:
    """The second person: with the approver role, not the clerk who recorded today's request, and a fresh one-time
    code, cancels the move the resident asked to cancel at the counter (R7). Raises CaseError with the reason."""
    from backoffice.services.staff import check_second_factor

    case = _counter_case(session, case_id)
    if Role.APPROVER not in by.role_set:
        raise CaseError("case", _l("Only staff with the approver role may approve."), code="need_approver")
    code = refusal(session, case)
    if code is not None:
        raise _error("case", code)
    requested = counter_request(session, case)
    if requested is None:
        raise _error("case", "no_counter_request")
    if requested.actor_id == by.id:
        raise _error("case", "same_person")
    if not check_second_factor(by, totp_code or ""):
        raise CaseError("totp_code", _l("The one-time code is wrong or was already used. Please enter a new code."),
                        code="totp")
    return cancel(session, case, by=by, how="counter")


# -- the destination: the origin cancelled the 転出 ------------------------------------------------------


def receive_moveout_cancellation(session: Session, opened: Opened) -> None:
    """Withdraw the 転出証明書情報 the sender sent for this person and cancel the reservation waiting for it.

    Only the municipality that sent the certificate withdraws it; once the 転入 is recorded here the
    cancellation is refused (dead-lettered for an administrator: the two cities must settle it).
    """
    items = opened.payload["items"]  # its shape was checked against bridge.messages on arrival
    stmt = select(MoveoutCertificate).where(MoveoutCertificate.origin == opened.sender,
                                            MoveoutCertificate.juminhyo_code == items["juminhyo_code"])
    if items.get("move_id"):
        stmt = stmt.where(MoveoutCertificate.move_id == items["move_id"])
    certificates = list(session.execute(stmt.order_by(MoveoutCertificate.id)).scalars())
    ids = [c.id for c in certificates]
    if any(c.resident_id is not None for c in certificates):
        raise PermanentFailure("already_moved_in", "the 転入 of this person is already recorded here")
    cases = {c.case_id for c in certificates if c.case_id is not None}
    if items.get("move_id"):
        # A reservation whose certificate has not arrived yet: only the municipality it moves from, as the
        # resident signed it, may cancel it (another city knowing the move id cancels nothing).
        sender_code = opened.sender.removeprefix("muni:")
        cases |= {c.id for c in session.execute(select(Case).where(Case.kind == "move_in_reservation",
                                                                   Case.move_id == items["move_id"])).scalars()
                  if signed_application(c).get("fromMunicipalityCode") == sender_code}
    for certificate in certificates:
        session.delete(certificate)  # withdrawn: the destination keeps no personal data of a move that did not happen
    session.flush()
    audit.record("move.certificate_withdrawn", actor="bridge", target_type="message", target_id=opened.message_id,
                 detail={"origin": opened.sender, "certificates": ids})
    for case_id in sorted(cases):
        case = session.get(Case, case_id)
        if case is None or case.status not in moves.WAITING_STATUSES:
            continue
        before = case.status
        case.status, case.updated_at, case.status_reason = CaseStatus.WITHDRAWN, clock.utcnow(), None
        case.claimed_by, case.claimed_at = None, None
        session.flush()
        add_event(session, case, RESERVATION_CANCELLED, by=None, from_status=before,
                  detail={"how": "moveout_cancelled", "origin": opened.sender})
        audit.record(f"case.{RESERVATION_CANCELLED}", actor="bridge", target_type="case", target_id=case.id,
                     detail={"kind": case.kind, "how": "moveout_cancelled"})
        send_status(session, case, reason=DESTINATION_REASON)


def register_handlers() -> None:
    """The cancellation one back office takes from another."""
    register(MOVEOUT_CANCELLATION, receive_moveout_cancellation, zone="backoffice", senders={"muni:*"})
