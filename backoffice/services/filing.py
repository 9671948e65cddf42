"""Who may file a move, and for whom (住民基本台帳法第26条; F3, R9, R10).

A 転出届 or 転居届 is made by the person who moves, or for them by the 世帯主 or another 世帯員 of
their household (第26条第1項; the national moving service lets one card holder of the household file
for the members moving). So, checked on the ledger at intake and again at approval, because the
ledger may change in between:

- every mover is a distinct current resident of **one** household;
- the household has at least as many members as the application names movers;
- the signer is a current member of that household (one of the movers, or the 世帯主 or a 世帯員
  who stays: a parent may file for a student child moving alone).

A card holder naming a resident of another household is returned with the reason; nothing else of
the ledger is read or shown. ``docs/moves.md`` states the rule and what stays uncertain (a
代理人 with a 委任状 files at the counter, never online).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backoffice.models import Case, CaseEvent, RecordStatus, Resident, Staff
from backoffice.services import audit
from backoffice.services.cases import add_event
from core import officecalendar

NOTIFICATION_DAYS = 14  # 転入届・転居届 within 14 days of the move (第22条, 第23条)
TOKUREI_AFTER_MOVE_DAYS = 14  # 特例転入: until 14 days after the actual move ...
TOKUREI_AFTER_PLANNED_DAYS = 30  # ... and at most 30 days after the planned 転出 date (施行令第24条の2 / 第24条の3)
LATE = "notification_late"  # 届出期間経過: the case event the summary-court list (第52条) is made of

# What the resident reads on "My applications" and the clerk reads on the case (Japanese first).
REASONS = {
    "movers_not_one_household": "届出の対象となる方が、同じ世帯の方ではありません。"
                                "同じ世帯の方だけをまとめて届け出てください。 / The people named do not all belong to "
                                "one household. Only members of one household can be notified together.",
    "more_movers_than_household": "届出の対象となる方の人数が、世帯の人数より多くなっています。"
                                  "内容を確認して送り直してください。 / The application names more people than "
                                  "the household has. Please check it and send it again.",
    "signer_not_in_household": "届出をする方（署名した方）が、移動する方の世帯の方ではありません。"
                               "本人または同じ世帯の方が届け出てください。 / The person who signed is not a member "
                               "of the movers' household. The person who moves or a member of their household "
                               "must notify.",
}


def household_members(session: Session, household_id: int) -> int:
    """How many current residents the household has."""
    return int(session.execute(select(func.count()).select_from(Resident).where(
        Resident.household_id == household_id, Resident.status == RecordStatus.CURRENT)).scalar_one())


def filing_refusal(session: Session, signer: Resident | None, movers: Sequence[Resident | None]) -> str | None:
    """Why this signer may not file for these movers (a key of ``REASONS``), or None.

    Movers not found in the ledger (None) are for the clerk to settle; the rule is applied to the
    ones found, and to how many are named. A signer not found is left to the clerk at intake and
    refused at approval (``require_may_file``).
    """
    found = [m for m in movers if m is not None]
    if not found:
        return None
    households = {m.household_id for m in found}
    if len(households) > 1 or any(m.status is not RecordStatus.CURRENT for m in found):
        return "movers_not_one_household"
    household_id = households.pop()
    if len({m.id for m in found}) < len(found) or len(movers) > household_members(session, household_id):
        return "more_movers_than_household"
    if signer is not None and (signer.household_id != household_id or signer.status is not RecordStatus.CURRENT):
        return "signer_not_in_household"
    return None


def approval_refusal(session: Session, signer: Resident | None, movers: Sequence[Resident]) -> str | None:
    """At approval everything must hold: the signer known and a member, the movers of one household."""
    if signer is None:
        return "signer_not_in_household"
    return filing_refusal(session, signer, movers)


def cancellation_refusal(signer: Resident | None, movers: Sequence[Resident]) -> str | None:
    """第26条 for a 転出取消 or 予約取消, on the ledger as it stands when it arrives: the signer is one of the
    movers (their 除票 counts until the 転入) or a current member of the movers' household; else the reason."""
    if signer is None or not movers:
        return "signer_not_in_household"
    if signer.id in {m.id for m in movers}:
        return None
    if signer.status is RecordStatus.CURRENT and signer.household_id in {m.household_id for m in movers}:
        return None
    return "signer_not_in_household"


def notification_deadline(moved_on: dt.date) -> dt.date:
    """The last day of the 14 days for a 転入届 or 転居届; on a closed day the next open day (自治法第4条の2第4項)."""
    return officecalendar.deadline(moved_on + dt.timedelta(days=NOTIFICATION_DAYS))


def record_if_late(session: Session, case: Case, *, moved_on: dt.date, notified_on: dt.date, by: Staff) -> int | None:
    """届出期間経過: a notification after the deadline is still recorded, marked with its days since the move
    and listed for the clerk's notice to the summary court (第52条 過料通知). Returns the days, or None."""
    if notified_on <= notification_deadline(moved_on):
        return None
    days = (notified_on - moved_on).days
    add_event(session, case, LATE, by=by, detail={"days": days, "moved_on": moved_on.isoformat(),
                                                   "notified_on": notified_on.isoformat()})
    audit.record("move.notification_late", target_type="case", target_id=case.id, detail={"days": days})
    return days


def late_notifications(session: Session) -> list[tuple[Case, int]]:
    """The cases completed past the 14 days, oldest first, with their days: the list for 第52条 notices."""
    rows = session.execute(select(Case, CaseEvent.detail).join(CaseEvent, CaseEvent.case_id == Case.id)
                           .where(CaseEvent.action == LATE).order_by(CaseEvent.id)).all()
    return [(case, int(json.loads(detail or "{}").get("days", 0))) for case, detail in rows]


@dataclass(frozen=True)
class LateNotification:
    """One 転入 or 転居 notified after the 14 days, as the clerk's notice to the summary court names it."""

    case: Case
    people: list[Resident]
    moved_on: dt.date
    notified_on: dt.date
    days: int  # from the move to the notification
    days_late: int  # past the last day of the period (moved past closed days)


def late_list(session: Session) -> list[LateNotification]:
    """Every late notification, one by one with the people it recorded, for the 第52条 過料通知; logged (R6)."""
    found = []
    for case, detail in session.execute(select(Case, CaseEvent.detail).join(CaseEvent, CaseEvent.case_id == Case.id)
                                        .where(CaseEvent.action == LATE).order_by(CaseEvent.id)).all():
        items = json.loads(detail or "{}")
        moved_on, notified_on = dt.date.fromisoformat(items["moved_on"]), dt.date.fromisoformat(items["notified_on"])
        people = [r for i in json.loads(case.mover_resident_ids) if i is not None
                  and (r := session.get(Resident, i)) is not None]
        found.append(LateNotification(case=case, people=people, moved_on=moved_on, notified_on=notified_on,
                                      days=int(items.get("days", (notified_on - moved_on).days)),
                                      days_late=(notified_on - notification_deadline(moved_on)).days))
    audit.record("move.late_list", target_type="case", detail={"cases": [n.case.id for n in found],
                         "residents": [p.id for n in found for p in n.people]})
    return found


def tokurei_limit(*, moved_on: dt.date, planned_moveout_on: dt.date) -> dt.date:
    """The last day the 転出証明書情報 route (特例転入) is open: the earlier of 14 days after the actual move and
    30 days after the planned move-out date. Past it a paper 転出証明書 is needed."""
    return min(moved_on + dt.timedelta(days=TOKUREI_AFTER_MOVE_DAYS),
               planned_moveout_on + dt.timedelta(days=TOKUREI_AFTER_PLANNED_DAYS))
