"""Support measures (支援措置) for victims of DV, stalking and abuse (R22; 住民基本台帳事務処理要領 第5-10).

A measure protects one person and the household members it names, for a period (one year, then
extended a year at a time), and is set and extended by two people: a clerk asks, an approver who
is not that clerk approves. While it is in force:

- a certificate about a protected person asked for by anyone but that person is refused at
  approval and flagged at intake for a clerk (never answered automatically); where the measure
  says so the person is left off another member's household certificate instead;
- any application naming a protected person other than the applicant (a move taking them along)
  is flagged at intake and made sensitive: a clerk decides, it is never returned automatically;
- every view of the protected person's record is an alert for the security officer (R18);
- the portal is told nothing of a case reaching a protected person other than its applicant that it would
  not be told of a case reaching nobody protected: "received" while only flagged, and as a reason only
  ``PORTAL_REASON``, never what a clerk wrote (``for_portal``, called by ``cases.send_status``).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from backoffice.models import BridgeAlert, Case, CaseStatus, RecordStatus, Resident, Role, Staff, SupportMeasure
from backoffice.services import audit
from core import clock
from core.refusal import Refused

MAX_PERIOD_DAYS = 366
REASON_MAX = 200
ALERT_KIND = "support_measure_access"
FINDING = "support_measure"
_PROTECTED = "support.protected"  # session.info: (transaction, day, people) of the last ``protected`` read
# All the portal is told of why a case reaching a protected person was returned or refused: the same words
# for every such case, so they say nothing of the person, the measure or where anyone lives.
PORTAL_REASON = ("この申請については、市役所から直接ご連絡します。窓口またはお電話でもお問い合わせいただけます。 / "
                 "The city will contact you directly about this application; you may also ask at the counter "
                 "or by phone.")

PORTAL_REASONS = {"city_will_contact": PORTAL_REASON}  # its code in the status message (bridge.reasons)

# What the clerk reads when a step is refused, in the catalogue (English source, Japanese in translations/ja):
# the page's language.
MESSAGES = {
    "resident_id": _l("The person is not in the ledger."),
    "covered_ids": _l("Only members of the same household can be covered."),
    "period": _l("The period ends after it starts and lasts at most one year."),
    "requested_by": _l("Only a clerk can record a support measure."),
    "approved_by": _l("An approver other than the clerk who recorded it must approve."),
    "state": _l("The support measure is not in a state that allows this."),
    "pending": _l("A change of this support measure is waiting for approval; approve it first."),
    "reason": _l("Enter the reason for the extension, 1 to 200 characters."),
    "covered_same": _l("These are the members covered now; choose a change."),
}


class SupportError(Refused, ValueError):
    """A support-measure step refused; ``field`` names what to correct (and its message in ``MESSAGES``)."""

    def __init__(self, field: str) -> None:
        super().__init__(field, MESSAGES[field])


def _ids(measure: SupportMeasure) -> set[int]:
    return {measure.resident_id, *json.loads(measure.covered_ids or "[]")}


def _check_period(starts_on: dt.date, ends_on: dt.date) -> None:
    if not starts_on < ends_on or (ends_on - starts_on).days > MAX_PERIOD_DAYS:
        raise SupportError("period")


def request(session: Session, *, resident_id: int, covered_ids: list[int], starts_on: dt.date, ends_on: dt.date,
            hide_from_household: bool, by: Staff) -> SupportMeasure:
    """A clerk records the request; nothing is enforced until a second person approves."""
    if Role.CLERK not in by.role_set:
        raise SupportError("requested_by")
    person = session.get(Resident, resident_id)
    if person is None:
        raise SupportError("resident_id")
    for other in covered_ids:
        member = session.get(Resident, other)
        if member is None or member.household_id != person.household_id:
            raise SupportError("covered_ids")
    _check_period(starts_on, ends_on)
    measure = SupportMeasure(resident_id=resident_id, covered_ids=json.dumps(sorted(set(covered_ids) - {resident_id})),
                             starts_on=starts_on, ends_on=ends_on, hide_from_household=hide_from_household,
                             requested_by=by.login_id, requested_at=clock.utcnow(), history="[]")
    session.add(measure)
    session.flush()
    _audit("request", measure, by, {"covered": len(_ids(measure)), "starts_on": starts_on.isoformat(),
                                    "ends_on": ends_on.isoformat(), "hide_from_household": hide_from_household})
    return measure


def newest_first(session: Session) -> list[Any]:
    """Every measure with its protected person, newest first (the list page)."""
    return list(session.execute(select(SupportMeasure, Resident)
                                .join(Resident, Resident.id == SupportMeasure.resident_id)
                                .order_by(SupportMeasure.id.desc())).all())


def _second_person(by: Staff, first: str | None) -> None:
    if Role.APPROVER not in by.role_set or by.login_id == first:
        raise SupportError("approved_by")


def approve(session: Session, measure_id: int, *, by: Staff) -> SupportMeasure:
    """The second person puts the measure in force."""
    measure = session.get(SupportMeasure, measure_id, with_for_update=True)
    if measure is None or measure.approved_at is not None:
        raise SupportError("state")
    _second_person(by, measure.requested_by)
    measure.approved_by, measure.approved_at = by.login_id, clock.utcnow()
    _audit("approve", measure, by, {"requested_by": measure.requested_by})
    return measure


def _changeable(session: Session, measure_id: int) -> SupportMeasure:
    """The approved measure, locked, not yet ended and with no change waiting for its second person."""
    measure = session.get(SupportMeasure, measure_id, with_for_update=True)
    if measure is None or measure.approved_at is None or measure.ends_on < clock.today_jst():
        raise SupportError("state")
    if measure.pending_ends_on is not None or measure.pending_covered_ids is not None:
        raise SupportError("pending")
    return measure


def _waiting(session: Session, measure_id: int, pending: str, asked_by: str, by: Staff) -> SupportMeasure:
    """The measure, locked, with its change ``pending`` waiting, and ``by`` a second person to the one who asked."""
    measure = session.get(SupportMeasure, measure_id, with_for_update=True)
    if measure is None or getattr(measure, pending) is None:
        raise SupportError("state")
    _second_person(by, getattr(measure, asked_by))
    return measure


def _audit(action: str, measure: SupportMeasure, by: Staff, detail: dict[str, object]) -> None:
    audit.record(f"support_measure.{action}", target_type="support_measure", target_id=measure.id,
                 actor=by.login_id, actor_id=by.id, detail=detail)


def _record_change(measure: SupportMeasure, change: dict[str, object]) -> None:
    changes = json.loads(measure.history or "[]")
    changes.append(change)
    measure.history = json.dumps(changes, ensure_ascii=False)


def history(measure: SupportMeasure) -> list[dict[str, object]]:
    """The approved changes of ``measure``, oldest first."""
    return list(json.loads(measure.history or "[]"))


def request_extension(session: Session, measure_id: int, *, ends_on: dt.date, reason: str,
                      by: Staff) -> SupportMeasure:
    """A clerk asks to extend a measure in force by up to a year from its current end, saying why (延長の申出)."""
    if Role.CLERK not in by.role_set:
        raise SupportError("requested_by")
    measure = _changeable(session, measure_id)
    _check_period(measure.ends_on, ends_on)
    text = (reason or "").strip()
    if not 1 <= len(text) <= REASON_MAX:
        raise SupportError("reason")
    measure.pending_ends_on, measure.pending_by, measure.pending_reason = ends_on, by.login_id, text
    _audit("extension_request", measure, by, {"ends_on": ends_on.isoformat(), "reason": text})
    return measure


def approve_extension(session: Session, measure_id: int, *, by: Staff) -> SupportMeasure:
    """A second person approves the extension; the measure then runs to the new end."""
    measure = _waiting(session, measure_id, "pending_ends_on", "pending_by", by)
    _record_change(measure, {"change": "extension", "ends_on": measure.pending_ends_on.isoformat(),
                             "reason": measure.pending_reason, "by": measure.pending_by, "approved_by": by.login_id})
    measure.ends_on = measure.pending_ends_on
    measure.pending_ends_on = measure.pending_by = measure.pending_reason = None
    _audit("extension_approve", measure, by, {"ends_on": measure.ends_on.isoformat()})
    return measure


def household(session: Session, measure: SupportMeasure) -> list[Resident]:
    """The current members of the protected person's household other than that person: whom a measure may cover."""
    person = session.get(Resident, measure.resident_id)
    if person is None:
        return []
    return list(session.execute(select(Resident).where(
        Resident.household_id == person.household_id, Resident.id != person.id,
        Resident.status == RecordStatus.CURRENT).order_by(Resident.id)).scalars())


def covered(measure: SupportMeasure) -> list[int]:
    """The household members the measure covers besides the protected person."""
    return [int(i) for i in json.loads(measure.covered_ids or "[]")]


def pending_covered(measure: SupportMeasure) -> list[int] | None:
    """The members a change waiting for its second person would cover, if one waits."""
    if measure.pending_covered_ids is None:
        return None
    return [int(i) for i in json.loads(measure.pending_covered_ids)]


def request_covered(session: Session, measure_id: int, *, covered_ids: list[int], by: Staff) -> SupportMeasure:
    """A clerk asks to change which household members the measure covers; nothing changes until approved."""
    if Role.CLERK not in by.role_set:
        raise SupportError("requested_by")
    measure = _changeable(session, measure_id)
    wanted = sorted(set(covered_ids))
    if not set(wanted) <= {m.id for m in household(session, measure)}:
        raise SupportError("covered_ids")
    if wanted == sorted(covered(measure)):
        raise SupportError("covered_same")
    measure.pending_covered_ids, measure.pending_covered_by = json.dumps(wanted), by.login_id
    _audit("covered_request", measure, by, {"covered_before": len(covered(measure)), "covered": len(wanted)})
    return measure


def approve_covered(session: Session, measure_id: int, *, by: Staff) -> SupportMeasure:
    """A second person approves the change of the members covered; it is enforced from then on."""
    measure = _waiting(session, measure_id, "pending_covered_ids", "pending_covered_by", by)
    wanted = [int(i) for i in json.loads(measure.pending_covered_ids)]
    if not set(wanted) <= {m.id for m in household(session, measure)}:
        raise SupportError("covered_ids")  # the household changed since it was asked for
    _record_change(measure, {"change": "covered", "covered": wanted, "by": measure.pending_covered_by,
                             "approved_by": by.login_id})
    measure.covered_ids = json.dumps(wanted)
    measure.pending_covered_ids = measure.pending_covered_by = None
    _audit("covered_approve", measure, by, {"covered": len(wanted)})
    return measure


def protected(session: Session, on: dt.date | None = None) -> dict[int, int]:
    """Every person an approved measure protects on ``on`` (today), with that measure's id (the oldest's).

    One query of three columns: the covered members are a JSON list, so the rows are read, not the measures.
    Read once per transaction (an intake job asks twice: for its findings and for the status it sends),
    and again whenever a measure was changed in it.
    """
    day = on or clock.today_jst()
    cached = session.info.get(_PROTECTED)
    if (cached is not None and cached[0] is session.get_transaction() and cached[1] == day
            and not _measures_changed(session)):
        return dict(cached[2])
    rows = session.execute(select(SupportMeasure.id, SupportMeasure.resident_id, SupportMeasure.covered_ids).where(
        SupportMeasure.approved_at.is_not(None), SupportMeasure.starts_on <= day,
        SupportMeasure.ends_on >= day).order_by(SupportMeasure.id)).all()
    found: dict[int, int] = {}
    for measure_id, resident_id, covered_ids in rows:
        for person in (resident_id, *json.loads(covered_ids or "[]")):
            found.setdefault(int(person), measure_id)
    session.info[_PROTECTED] = (session.get_transaction(), day, dict(found))
    return found


def _measures_changed(session: Session) -> bool:
    return any(isinstance(o, SupportMeasure) for o in (*session.new, *session.dirty, *session.deleted))


@event.listens_for(Session, "before_flush")
def _forget_protected(session: Session, _context: Any, _instances: Any) -> None:
    """A measure written in this transaction makes the next ``protected`` read them again."""
    if _PROTECTED in session.info and _measures_changed(session):
        del session.info[_PROTECTED]


def in_force(session: Session, resident_id: int, on: dt.date | None = None) -> SupportMeasure | None:
    """The approved measure protecting ``resident_id`` on ``on`` (today), if any."""
    measure_id = protected(session, on).get(resident_id)
    return session.get(SupportMeasure, measure_id) if measure_id is not None else None


def alert_access(session: Session, resident_id: int, action: str) -> None:
    """Every access to a protected person's record is an alert for the security officer (R18)."""
    measure = in_force(session, resident_id)
    if measure is None:
        return
    alert = BridgeAlert(kind=ALERT_KIND, messages=0, created_at=clock.utcnow(),
                        detail=json.dumps({"action": action, "support_measure": measure.id, "resident": resident_id}))
    if session.get_bind().dialect.name == "sqlite":
        session.add(alert)  # one writer at a time: a second connection would wait on this transaction's lock
        return
    # Committed on its own: a refused request (whose transaction is rolled back) is what the officer must see.
    with Session(session.get_bind()) as own:
        own.add(alert)
        own.commit()


@dataclass
class Screened:
    """Who a certificate may show, and whether a protected person makes it a refusal."""

    residents: list[Resident]
    refused: bool


def screen_certificate(session: Session, applicant: Resident, residents: list[Resident]) -> Screened:
    """Leave protected people off another member's certificate where the measure says so; else refuse it."""
    kept: list[Resident] = []
    refused = False
    for person in residents:
        measure = in_force(session, person.id) if person.id != applicant.id else None
        if measure is None:
            kept.append(person)
            continue
        alert_access(session, person.id, "certificate")
        if not measure.hide_from_household:
            refused = True
    return Screened(kept, refused)


def _reaches_another(session: Session, kind: str, applicant: Resident | None,
                     mover_ids: list[int | None]) -> bool:
    """Whether a request reaches a person protected today other than the applicant: a certificate reaches the
    applicant's household, a move the people it names as movers. With no measure in force, one query."""
    people = protected(session)
    if not people:
        return False
    if kind == "certificate":
        reached = set(session.execute(select(Resident.id).where(
            Resident.household_id == applicant.household_id)).scalars()) if applicant is not None else set()
    else:
        reached = {m for m in mover_ids if m is not None}
    return not (reached - {applicant.id if applicant is not None else None}).isdisjoint(people)


def protected_among(session: Session, applicant: Resident | None, movers: list[Resident | None]) -> set[int]:
    """The movers named who are protected today, the applicant left out."""
    named = {m.id for m in movers if m is not None and (applicant is None or m.id != applicant.id)}
    return named & protected(session).keys()


def keep_portal_answer(shielded: list[dict[str, Any]], status: str, reason: str | None) -> None:
    """Keep on the support finding (``intake_findings``) what the portal is told instead of the case's status."""
    for finding in shielded:
        finding.update({"portalStatus": status, "portalReason": reason})


def _portal_answer(case: Case) -> tuple[str, str | None] | None:
    for finding in json.loads(case.findings or "[]"):
        if finding.get("code") == FINDING and "portalStatus" in finding:
            return finding["portalStatus"], finding["portalReason"]
    return None


def intake_findings(session: Session, kind: str, applicant: Resident | None,
                    movers: list[Resident | None] | None = None) -> list[dict[str, str]]:
    """At intake: a request that reaches a protected person other than the applicant goes to a clerk, flagged.

    A certificate reaches the applicant's household; a move reaches the people it names as movers (a 転入予約
    from elsewhere too, whose signer the ledger does not hold).
    """
    if _reaches_another(session, kind, applicant, [m.id if m else None for m in movers or []]):
        return [{"code": FINDING, "detail": "a person this request reaches is under a support measure"}]
    return []


def shields(session: Session, case: Case) -> bool:
    """Whether ``case`` reaches a person protected today other than its applicant."""
    applicant = session.get(Resident, case.applicant_resident_id) if case.applicant_resident_id else None
    return _reaches_another(session, case.kind, applicant, json.loads(case.mover_resident_ids or "[]"))


def for_portal(session: Session, case: Case, status: str, reason: str | None) -> tuple[str, str | None]:
    """What the portal may be told of ``case``: its status and reason, or, while the case reaches a person
    protected today other than its applicant, what a case reaching nobody protected would show.

    A move flagged at intake shows what it would have shown had the protected people it names lived nowhere
    here (kept at intake, ``keep_portal_answer``): returned with that reason for good, or, while a clerk
    reviews it, "in review" or "received"; any other flagged case shows "received" while in review, as a case
    without findings does. A reason is only ``PORTAL_REASON``, never the clerk's words, which may say where
    that person lives. The portal is assumed compromised and the applicant may be the other party, so the
    back office decides here; the clerk's text stays on the case.
    """
    if not shields(session, case):
        return status, reason
    answer = _portal_answer(case)
    if answer is not None and answer[0] == CaseStatus.RETURNED.value:
        return answer  # a person unknown here would have had the application back at once, and kept it so
    if reason is not None:
        audit.record("support_measure.portal_reason_withheld", target_type="case", target_id=case.id,
                     detail={"kind": case.kind})
        reason = PORTAL_REASON
    if case.status is CaseStatus.IN_REVIEW:
        status = answer[0] if answer is not None else "received"
    return status, reason


def flagged(findings: list[dict[str, str]]) -> bool:
    """Whether intake found a protected person: the case is then sensitive, never returned automatically."""
    return any(f.get("code") == FINDING for f in findings)
