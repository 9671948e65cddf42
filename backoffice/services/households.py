"""世帯主の変更: who heads a household that its householder leaves while others stay (住民基本台帳法第25条).

When the householder moves away alone (a 転居 to another household, or a 転出 confirmed by the
destination) the members who stay need a householder. No 世帯主変更届 is needed when only one
member stays, or only one who is 15 or older: that member becomes the householder. Otherwise the
members who stay state the new householder in their 世帯主変更届, and the clerk records that choice;
without it the change is refused and nothing is written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from backoffice.models import Household, IdoReason, RecordStatus, Resident
from backoffice.services import records
from backoffice.services.records import RecordError
from core.clock import age_on

HOUSEHOLDER_AGE = 15  # the age from which a member counts as a possible householder without a 届出
FIELD = "remainingHouseholder"
RELATIONSHIP_LENGTH = 20  # the 続柄 column


@dataclass(frozen=True)
class Succession:
    """What happens to a household its householder leaves: who stays, and who may head it."""

    household: Household
    staying: list[Resident]
    candidates: list[Resident]

    @property
    def automatic(self) -> Resident | None:
        """The one member who becomes householder without a 届出, if there is exactly one."""
        pool = self.staying if len(self.staying) == 1 else self.candidates
        return pool[0] if len(pool) == 1 else None


def succession(session: Session, household: Household, *, leaving: Collection[int], on: dt.date) -> Succession | None:
    """The succession ``leaving`` causes, or None when the householder stays or nobody does.

    Members with a recorded 転出 of their own are leaving too: they are not asked to head the household.
    """
    members = list(session.execute(select(Resident).where(
        Resident.household_id == household.id, Resident.status == RecordStatus.CURRENT,
    ).order_by(Resident.birth_date, Resident.id)).scalars())
    head = next((m for m in members if m.is_householder), None)
    if head is None or head.id not in leaving:
        return None
    staying = [m for m in members if m.id not in leaving and m.planned_moveout_on is None]
    if not staying:
        return None
    candidates = [m for m in staying if age_on(m.birth_date, on) >= HOUSEHOLDER_AGE]
    return Succession(household=household, staying=staying, candidates=candidates)


def change_householder(session: Session, found: Succession, *, chosen: int | None, on: dt.date,
                       notified_on: dt.date | None, by: str,
                       relationships: Mapping[int, str] | None = None) -> Resident:
    """Record the new householder of ``found``: the one chosen, or the only possible one.

    ``relationships`` gives the 続柄 to the new householder of members who stay, as stated at the
    counter; a member left out keeps the one recorded. Raises ``RecordError`` on
    ``remainingHouseholder`` when two or more could head the household and none (or someone who does
    not stay) was chosen, and on ``relationship`` for an empty or too long 続柄; nothing is written then.
    """
    stated = {i: str(v).strip() for i, v in (relationships or {}).items()}
    for value in stated.values():
        if not value or len(value) > RELATIONSHIP_LENGTH:
            raise RecordError("relationship", _l("Enter each relationship in 1 to %(max)d characters.",
                                                    max=RELATIONSHIP_LENGTH))
    if chosen is not None:
        head = next((m for m in found.staying if m.id == chosen), None)
        if head is None:
            raise RecordError(FIELD, _l("The person chosen does not stay in this household."))
    else:
        head = found.automatic
        if head is None:
            staying = len(found.staying)
            raise RecordError(FIELD, _l("The householder leaves and two or more of the %(staying)d who stay could head "
                                        "the household. Choose the householder stated in their 世帯主変更届.",
                                        staying=staying))
    records.amend_record(session, head, reason=IdoReason.HOUSEHOLDER_CHANGE, changed_on=on, notified_on=notified_on,
                         by=by, is_householder=True, relationship_to_head="世帯主")
    for member in found.staying:
        relationship = stated.get(member.id)
        if member is not head and relationship and relationship != member.relationship_to_head:
            records.amend_record(session, member, reason=IdoReason.HOUSEHOLDER_CHANGE, changed_on=on,
                                 notified_on=notified_on, by=by, relationship_to_head=relationship)
    found.household.householder_name = head.name
    session.flush()
    return head
