"""Changing the ledger (F5): create (記載), amend (修正), remove (消除), each with its 異動履歴.

A removed record is never deleted: it stays as a 除票 with the date and reason of removal.
History snapshots never contain the My Number nor the 在留カード等の番号 (only whether they changed).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from backoffice.models import Household, IdoReason, RecordStatus, Resident, ResidentHistory
from backoffice.services import audit
from core import checkdigits, clock
from core.addressmaster import machiaza_by_code
from core.fieldcrypto import FieldCipher, blind_index
from core.refusal import Refused
from core.textfold import fold

# A foreign resident's items (第30条の45 and 別添1) besides the 在留カード等の番号, which is kept encrypted.
FOREIGN_RESIDENT_ITEMS = (
    "foreign_resident_category", "became_foreign_resident_on", "became_foreign_resident_reason",
    "became_foreign_resident_notified_on", "nationality", "residence_status", "residence_period_years",
    "residence_period_months", "residence_period_days", "residence_expiry", "special_permanent_certificate_issued_on",
    "tsusho", "alphabet_name", "alphabet_name_kana", "kanji_name", "kanji_name_kana",
)
# Items a history snapshot records; the search keys and ciphertext are derived, not history.
HISTORY_ITEMS = (
    "name", "name_kana", "birth_date", "sex", "relationship_to_head", "is_householder", "household_id",
    "machiaza_code", "banchi", "katagaki", "honseki", "hittosha", "became_resident_on", "became_resident_reason",
    "address_set_on", "address_set_reason", "previous_address", "planned_moveout_address", "planned_moveout_on",
    "confirmed_moveout_address", "removed_on", "removal_reason", "removal_notified_on", "status",
    *FOREIGN_RESIDENT_ITEMS, "nhi_since", "late_elderly_since", "ltc_since", "pension_since", "child_allowance_since",
    "electoral_roll",
)


RESIDENCE_CARD_CONTEXT = b"residence_card_number"
# 在留カード and 特別永住者証明書 numbers: two letters, eight digits, two letters (入管法施行規則).
RESIDENCE_CARD_NUMBER = re.compile(r"[A-Z]{2}[0-9]{8}[A-Z]{2}")


class RecordError(Refused, ValueError):
    """A ledger change that the rules refuse; ``field`` names the item."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "value"):
        return value.value
    return value


def snapshot(resident: Resident) -> dict[str, Any]:
    """The history-relevant items of a record, as JSON values."""
    return {item: _jsonable(getattr(resident, item)) for item in HISTORY_ITEMS}


def _refresh_search_keys(resident: Resident) -> None:
    code = current_app.config["MUNICIPALITY_CODE"]
    machiaza = machiaza_by_code(code, resident.machiaza_code)
    if machiaza is None:
        raise RecordError("machiaza_code", _l("The town area is not in the address master."))
    resident.name_search = fold(resident.name)
    resident.kana_search = fold(resident.name_kana)
    resident.address_search = fold(machiaza.name + resident.banchi)


def _history(session: Session, resident: Resident, *, reason: IdoReason, changed_on: dt.date,
             notified_on: dt.date | None, by: str, before: dict[str, Any], my_number_changed: bool = False,
             card_number_changed: bool = False) -> None:
    after = snapshot(resident)
    if my_number_changed:
        after["my_number"] = "changed"
    if card_number_changed:
        after["residence_card_number"] = "changed"
    session.add(ResidentHistory(
        resident_id=resident.id, reason=reason, changed_on=changed_on, notified_on=notified_on,
        recorded_at=clock.utcnow(), recorded_by=by,
        before=json.dumps(before, ensure_ascii=False, sort_keys=True),
        after=json.dumps(after, ensure_ascii=False, sort_keys=True),
    ))


def set_my_number(resident: Resident, number: str) -> None:
    """Store a My Number encrypted, with its keyed index; refuses an invalid check digit."""
    if not checkdigits.is_valid_my_number(number):
        raise RecordError("my_number", _l("The number is not valid (check digit)."))
    cfg = current_app.config
    resident.my_number_encrypted = FieldCipher(cfg["FIELD_ENCRYPTION_KEY"]).encrypt(number, context=b"my_number")
    resident.my_number_index = blind_index(cfg["BLIND_INDEX_KEY"], number, purpose="my_number")


def my_number(resident: Resident) -> str | None:
    """The resident's My Number in clear (None when none is recorded): the one place it is decrypted.

    The caller decides who may see it and writes the access to the operation log.
    """
    if resident.my_number_encrypted is None:
        return None
    return FieldCipher(current_app.config["FIELD_ENCRYPTION_KEY"]).decrypt(resident.my_number_encrypted,
                                                                           context=b"my_number")


HOUSEHOLD_NUMBER_DIGITS = 14  # 世帯番号, as the demo seed writes it too
ATENA_NUMBER_DIGITS = 15  # 宛名番号


def new_number(session: Session, column: Any, digits: int) -> str:
    """A random ``digits``-digit number no row holds in ``column`` (a 世帯番号 or 宛名番号 of this ledger)."""
    while True:
        number = f"{secrets.randbelow(10 ** digits):0{digits}d}"
        if session.execute(select(column).where(column == number)).first() is None:
            return number


def new_household_number(session: Session) -> str:
    """The 世帯番号 of a household made here, whichever procedure makes it (a 転入, a 転居 to a new household)."""
    return new_number(session, Household.household_number, HOUSEHOLD_NUMBER_DIGITS)


def new_atena_number(session: Session) -> str:
    """The 宛名番号 of a record made here."""
    return new_number(session, Resident.atena_number, ATENA_NUMBER_DIGITS)


def set_residence_card_number(resident: Resident, number: str | None) -> None:
    """Store a 在留カード等の番号 encrypted (two letters, eight digits, two letters on a 在留カード)."""
    if not number:
        resident.residence_card_number_encrypted = None
        return
    if not RESIDENCE_CARD_NUMBER.fullmatch(number):
        raise RecordError("residence_card_number",
                          _l("The residence card number is not two letters, eight digits and two letters."))
    resident.residence_card_number_encrypted = FieldCipher(current_app.config["FIELD_ENCRYPTION_KEY"]).encrypt(
        number, context=RESIDENCE_CARD_CONTEXT)


def residence_card_number(resident: Resident) -> str | None:
    """The 在留カード等の番号 in the clear (the caller logs the access)."""
    if resident.residence_card_number_encrypted is None:
        return None
    return FieldCipher(current_app.config["FIELD_ENCRYPTION_KEY"]).decrypt(resident.residence_card_number_encrypted,
                                                                           context=RESIDENCE_CARD_CONTEXT)


def current_record_with(session: Session, *, juminhyo_code: str | None = None,
                        my_number_index: str | None = None) -> Resident | None:
    """The current record holding this 住民票コード or My Number index, if any (a 除票 never counts)."""
    if juminhyo_code:
        found = session.execute(select(Resident).where(Resident.juminhyo_code == juminhyo_code,
                                                       Resident.status == RecordStatus.CURRENT)).scalar_one_or_none()
        if found is not None:
            return found
    if my_number_index:
        return session.execute(select(Resident).where(Resident.my_number_index == my_number_index,
                                                      Resident.status == RecordStatus.CURRENT)).scalar_one_or_none()
    return None


def create_record(session: Session, *, household: Household, reason: IdoReason, changed_on: dt.date,
                  notified_on: dt.date | None, by: str, my_number: str | None = None,
                  residence_card_number: str | None = None, **items: Any) -> Resident:
    """記載: add a person to the ledger (転入, 出生, …) with the first history entry."""
    if not checkdigits.is_valid_juminhyo_code(items.get("juminhyo_code", "")):
        raise RecordError("juminhyo_code", _l("The code is not valid (check digit)."))
    resident = Resident(
        household_id=household.id, status=RecordStatus.CURRENT, last_reason=reason, last_changed_on=changed_on,
        last_notified_on=notified_on, updated_at=clock.utcnow(), updated_by=by,
        became_resident_on=items.pop("became_resident_on", changed_on), became_resident_reason=reason,
        became_resident_notified_on=notified_on,
        address_set_on=items.pop("address_set_on", changed_on), address_set_reason=reason,
        address_set_notified_on=notified_on, **items,
    )
    if my_number:
        set_my_number(resident, my_number)
    if residence_card_number:
        set_residence_card_number(resident, residence_card_number)
    # A person has one current record (R10); a 除票 with the same numbers is kept beside it (a return).
    if current_record_with(session, juminhyo_code=resident.juminhyo_code) is not None:
        raise RecordError("juminhyo_code", _l("A current record with this code already exists."))
    if current_record_with(session, my_number_index=resident.my_number_index) is not None:
        raise RecordError("my_number", _l("A current record with this My Number already exists."))
    _refresh_search_keys(resident)
    session.add(resident)
    session.flush()
    _history(session, resident, reason=reason, changed_on=changed_on, notified_on=notified_on, by=by, before={},
             my_number_changed=bool(my_number), card_number_changed=bool(residence_card_number))
    audit.record("ledger.create", target_type="resident", target_id=resident.id, detail={"reason": reason.value})
    return resident


def amend_record(session: Session, resident: Resident, *, reason: IdoReason, changed_on: dt.date,
                 notified_on: dt.date | None, by: str, **changes: Any) -> Resident:
    """修正: change items of a current record; the history keeps before and after."""
    if resident.status is not RecordStatus.CURRENT:
        raise RecordError("status", _l("A removed record (除票) cannot be amended."))
    unknown = set(changes) - set(HISTORY_ITEMS)
    if unknown:
        raise RecordError(sorted(unknown)[0], _l("This item cannot be changed here."))
    before = snapshot(resident)
    for item, value in changes.items():
        setattr(resident, item, value)
    _refresh_search_keys(resident)
    resident.last_reason, resident.last_changed_on, resident.last_notified_on = reason, changed_on, notified_on
    resident.updated_at, resident.updated_by = clock.utcnow(), by
    session.flush()
    _history(session, resident, reason=reason, changed_on=changed_on, notified_on=notified_on, by=by, before=before)
    audit.record("ledger.amend", target_type="resident", target_id=resident.id,
                 detail={"reason": reason.value, "items": sorted(changes)})
    return resident


def remove_record(session: Session, resident: Resident, *, reason: IdoReason, changed_on: dt.date,
                  notified_on: dt.date | None, by: str, confirmed_moveout_address: str | None = None,
                  planned_moveout_address: str | None = None, planned_moveout_on: dt.date | None = None) -> Resident:
    """消除: the record becomes a 除票 with the date and reason; it is kept, never deleted.

    A 転出届 removes the record as of the planned date with the 転出予定地 (``planned_moveout_*``); the
    destination's 転入通知 later records the 転出確定 on the 除票 (``confirm_moveout``).
    """
    if resident.status is RecordStatus.REMOVED:
        raise RecordError("status", _l("The record is already removed."))
    before = snapshot(resident)
    resident.status = RecordStatus.REMOVED
    resident.removed_on, resident.removal_reason, resident.removal_notified_on = changed_on, reason, notified_on
    if confirmed_moveout_address:
        resident.confirmed_moveout_address = confirmed_moveout_address
    if planned_moveout_address:
        resident.planned_moveout_address, resident.planned_moveout_on = planned_moveout_address, planned_moveout_on
    resident.last_reason, resident.last_changed_on, resident.last_notified_on = reason, changed_on, notified_on
    resident.updated_at, resident.updated_by = clock.utcnow(), by
    session.flush()
    _history(session, resident, reason=reason, changed_on=changed_on, notified_on=notified_on, by=by, before=before)
    audit.record("ledger.remove", target_type="resident", target_id=resident.id, detail={"reason": reason.value})
    return resident


def awaiting_moveout(resident: Resident) -> bool:
    """Whether ``resident`` is the 除票 a 転出届 left, not yet confirmed by the destination (転出予定)."""
    return (resident.status is RecordStatus.REMOVED and resident.removal_reason is IdoReason.MOVE_OUT
            and resident.planned_moveout_on is not None and resident.confirmed_moveout_address is None)


def confirm_moveout(session: Session, resident: Resident, *, moved_on: dt.date, address: str, by: str) -> Resident:
    """転出確定 on the 除票 a 転出届 left: the destination's 転入通知 gives the confirmed address and move date.

    Only the 転出 items change (the 転出確定地); the history keeps before and after, dated the actual move.
    """
    if resident.status is not RecordStatus.REMOVED or resident.removal_reason is not IdoReason.MOVE_OUT:
        raise RecordError("status", _l("This is not the 除票 of a planned move-out."))
    before = snapshot(resident)
    resident.confirmed_moveout_address = address
    resident.last_reason, resident.last_changed_on = IdoReason.MOVE_OUT, moved_on
    resident.updated_at, resident.updated_by = clock.utcnow(), by
    session.flush()
    _history(session, resident, reason=IdoReason.MOVE_OUT, changed_on=moved_on, notified_on=None, by=by,
             before=before)
    audit.record("ledger.moveout_confirmed", target_type="resident", target_id=resident.id,
                 detail={"reason": IdoReason.MOVE_OUT.value})
    return resident


def restore_record(session: Session, resident: Resident, *, changed_on: dt.date, notified_on: dt.date | None,
                   by: str) -> Resident:
    """転出取消: the 除票 a 転出届 left, not yet confirmed by a 転入通知, is a current record again.

    The removal and the planned-move items are cleared on the record; the history keeps the 除票 as it
    was (``before``) and the cancellation (事由 転出取消), so nothing of the 転出 is lost. Refused for any
    other record, and when the person meanwhile has another current record here (R10).
    """
    if not awaiting_moveout(resident):
        raise RecordError("status", _l("This is not the 除票 of a move-out awaiting its 転入通知: it cannot be "
                                       "cancelled."))
    if current_record_with(session, juminhyo_code=resident.juminhyo_code,
                           my_number_index=resident.my_number_index) is not None:
        raise RecordError("juminhyo_code", _l("A current record of this person already exists."))
    before = snapshot(resident)
    resident.status = RecordStatus.CURRENT
    resident.removed_on, resident.removal_reason = None, None
    resident.planned_moveout_address, resident.planned_moveout_on = None, None
    reason = IdoReason.MOVE_OUT_CANCELLED
    resident.last_reason, resident.last_changed_on, resident.last_notified_on = reason, changed_on, notified_on
    resident.updated_at, resident.updated_by = clock.utcnow(), by
    session.flush()
    _history(session, resident, reason=reason, changed_on=changed_on, notified_on=notified_on, by=by, before=before)
    audit.record("ledger.restore", target_type="resident", target_id=resident.id, detail={"reason": reason.value})
    return resident
