"""Completing a move at the counter: the ledger work of a 転居 and of a 転入 (F5, F12, R10).

The counter (``backoffice/services/counter.py``) locks the case, refuses one that is not an approved
転居予約 or 転入予約, and refuses a completion without a verified card check (R9); then it calls
``complete_in_city_move`` or ``complete_move_in`` here. Both change the ledger in the counter's
transaction and tell the others what the move changed through ``backoffice/services/moves.py``
(``identity_update`` for the prefecture, ``full_address``, ``notify_departments``), J-LIS last.

R10: a 転居 changes the address (and the household, when the application states a new one) and
nothing else; an application whose other items disagree with the ledger is refused naming the item.
A 転入 is refused for anyone already a current resident, when the 転出証明書情報 of anyone has not
arrived, or past the 特例転入 limit without a paper 転出証明書.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from backoffice.models import (
    Case,
    CaseStatus,
    CounterVisit,
    Household,
    IdoReason,
    RecordStatus,
    Resident,
    Sex,
    Staff,
    VisitResult,
)
from backoffice.services import audit, cards, filing, households, moves, provision, records
from backoffice.services.cases import add_event, complete, signed_application
from bridge import messages
from core import clock
from core.addressmaster import Machiaza, machiaza_by_code
from core.fieldcrypto import blind_index
from core.refusal import Refused
from core.textfold import fold

# What a 転居 may change (R10): the address, when and why it was set, the previous address, the household.
IN_CITY_MOVE_ITEMS = frozenset({
    "machiaza_code", "banchi", "katagaki", "address_set_on", "address_set_reason", "previous_address",
    "household_id", "relationship_to_head", "is_householder",
})
ITEM_NAMES = {"name": "氏名 (name)", "name_kana": "カナ氏名 (name in kana)", "birth_date": "生年月日 (birth date)",
              "sex": "性別 (sex)"}


class CounterError(Refused, ValueError):
    """A counter action the rules refuse; ``field`` names the item or input, ``message`` says why.

    Raised by the completion here and by the card check in ``counter.py``, which imports it.
    """


def mover_ids(case: Case) -> list[int | None]:
    """The ledger ids of the case's movers, as intake matched them (None: not found)."""
    return list(json.loads(case.mover_resident_ids or "[]"))


# -- 転居 (R10) ----------------------------------------------------------------------------------------


def _date(value: Any, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise CounterError(field, "is not a date") from None


def _same_text(a: str | None, b: str | None) -> bool:
    # Width and spacing differences are how a name is typed, not a different name.
    return fold(a or "") == fold(b or "")


def _stated_update(resident: Resident, mover: Mapping[str, Any], destination: Mapping[str, Any]) -> dict[str, Any]:
    """The items the application states for this mover, as ledger values (the address and who the person is)."""
    stated: dict[str, Any] = {
        "machiaza_code": destination["machiazaCode"],
        "banchi": destination["banchi"],
        "katagaki": destination.get("katagaki") or None,
    }
    if not _same_text(mover.get("name"), resident.name):
        stated["name"] = mover.get("name")
    if not _same_text(mover.get("kana"), resident.name_kana):
        stated["name_kana"] = mover.get("kana")
    if mover.get("birthDate") != resident.birth_date.isoformat():
        stated["birth_date"] = mover.get("birthDate")
    if "sex" in mover and mover["sex"] != resident.sex.value:
        stated["sex"] = mover["sex"]
    return stated


def check_in_city_update(index: int, changes: Mapping[str, Any]) -> None:
    """R10 in the service: a 転居 that would change anything but the address and household is refused."""
    for item in changes:
        if item not in IN_CITY_MOVE_ITEMS:
            label = ITEM_NAMES.get(item, item)
            raise CounterError(f"movers[{index}].{item}",
                               f"a 転居 changes only the address and household; it would change {label}, which "
                               "needs its own procedure")


def _households(session: Session, movers: list[Resident], new_head_name: str,
                destination: Mapping[str, Any]) -> tuple[Household | None, Resident | None]:
    """Where the movers live after the move: (None, None) when their household just moves with them.

    A new household when the application names a mover as householder of a household that is not
    theirs alone; an existing household at the new address when it names its householder.
    """
    first = movers[0].household
    whole = all(m.household_id == first.id for m in movers) and {m.id for m in movers} >= {
        m.id for m in first.members if m.status is RecordStatus.CURRENT}
    head = next((m for m in movers if _same_text(m.name, new_head_name)), None)
    if head is not None:
        if whole and head.is_householder:
            return None, None
        household = Household(household_number=records.new_household_number(session), householder_name=head.name,
                              created_at=clock.utcnow())
        session.add(household)
        session.flush()
        return household, head
    existing = session.execute(select(Resident).where(
        Resident.status == RecordStatus.CURRENT, Resident.is_householder.is_(True),
        Resident.machiaza_code == destination["machiazaCode"], Resident.banchi == destination["banchi"],
    )).scalars()
    for candidate in existing:
        if _same_text(candidate.name, new_head_name) and candidate.id not in {m.id for m in movers}:
            return candidate.household, None
    raise CounterError("newHouseholder", "no householder of that name lives at the new address")


def left_households(session: Session, movers: list[Resident], *, on: dt.date) -> list[households.Succession]:
    """The households whose householder moves away without all its members (each needs a householder)."""
    leaving = {m.id for m in movers}
    found = []
    for household in {m.household_id: m.household for m in movers}.values():
        succession = households.succession(session, household, leaving=leaving, on=on)
        if succession is not None:
            found.append(succession)
    return found


def in_city_successions(session: Session, case: Case) -> list[households.Succession]:
    """For the counter page: the households this 転居 would leave without a householder (ages on the move date)."""
    movers = [session.get(Resident, i) for i in mover_ids(case) if i is not None]
    movers = [m for m in movers if m is not None and m.status is RecordStatus.CURRENT]
    try:
        moved_on = _date(signed_application(case).get("moveDate"), "moveDate")
    except CounterError:
        moved_on = clock.today_jst()  # completion refuses it, naming the date
    return left_households(session, movers, on=moved_on) if movers else []


def complete_in_city_move(session: Session, case: Case, *, by: Staff, visit: CounterVisit | None,
                          remaining_householder: int | None = None,
                          relationships: Mapping[int, str] | None = None,
                          moved_on: dt.date | None = None) -> list[Resident]:
    """Complete a 転居届 after the card check: each mover's address (and household if stated) changes, nothing else.

    The counter has locked the case and refused it without a verified card check (R9,
    ``counter.complete_in_city_move``). Refused, before anything is written, for a mover who is not a
    current resident, or for an application whose other items differ from the ledger (R10). Then: one
    history row per mover, the prefecture update, the signature certificate revoked at J-LIS (the address
    on it changed), and the case completed. A householder who moves away from members who stay leaves
    them a householder: the only one who can be, or ``remaining_householder`` from their 世帯主変更届,
    with each member's 続柄 to the new householder as ``relationships`` states it.
    """
    application = signed_application(case)
    destination = application.get("destination") or {}
    if destination.get("kind") != "in_city":
        raise CounterError("destination", "a 転居 needs a new address in this city")
    code = current_app.config["MUNICIPALITY_CODE"]
    if machiaza_by_code(code, str(destination.get("machiazaCode", ""))) is None:
        raise CounterError("destination.machiazaCode", "the town area is not in the address master")
    if not str(destination.get("banchi") or "").strip():
        raise CounterError("destination.banchi", "the new address needs its 番地")
    # The actual day of the move, as the resident states it at the counter (else the day signed online).
    moved_on = moved_on or _date(application.get("moveDate"), "moveDate")
    today = clock.today_jst()
    if moved_on > today:
        raise CounterError("moved_on", "the 転居届 is made on or after the day of the move")
    stated_movers = application.get("movers") or []
    ids = mover_ids(case)
    if not ids or len(ids) != len(stated_movers):
        raise CounterError("movers", "the movers of the application were not all matched to the ledger")
    movers: list[Resident] = []
    for index, resident_id in enumerate(ids):
        resident = None if resident_id is None else session.execute(
            select(Resident).where(Resident.id == resident_id).with_for_update()).scalar_one_or_none()
        if resident is None or resident.status is not RecordStatus.CURRENT:
            raise CounterError(f"movers[{index}]", "is not a current resident of this city")
        check_in_city_update(index, _stated_update(resident, stated_movers[index], destination))
        movers.append(resident)
    new_household, new_head = _households(session, movers, str(application.get("newHouseholder", "")), destination)
    for succession in left_households(session, movers, on=moved_on):
        households.change_householder(session, succession, chosen=remaining_householder, on=moved_on,
                                      notified_on=today, by=by.login_id, relationships=relationships)

    snapshots: list[tuple[Resident, dict[str, Any], dict[str, Any]]] = []
    for index, resident in enumerate(movers):
        before = records.snapshot(resident)
        changes: dict[str, Any] = {
            "machiaza_code": destination["machiazaCode"], "banchi": destination["banchi"].strip(),
            "katagaki": (destination.get("katagaki") or "").strip() or None,
            "previous_address": moves.full_address(resident), "address_set_on": moved_on,
            "address_set_reason": IdoReason.MOVE_WITHIN,
        }
        if new_household is not None:
            changes["household_id"] = new_household.id
            changes["is_householder"] = resident is new_head
            relationship = str(stated_movers[index].get("relationship") or "").strip()
            if resident is new_head:
                changes["relationship_to_head"] = "世帯主"
            elif relationship and new_head is not None:
                changes["relationship_to_head"] = relationship
        check_in_city_update(index, changes)
        resident.address_set_notified_on = today
        records.amend_record(session, resident, reason=IdoReason.MOVE_WITHIN, changed_on=moved_on,
                             notified_on=today, by=by.login_id, **changes)
        after = records.snapshot(resident)
        moves.identity_update(session, resident, reason=IdoReason.MOVE_WITHIN, on=moved_on,
                              why=f"case {case.id} completed at the counter: 転居", actor=by.login_id)
        snapshots.append((resident, before, after))
    filing.record_if_late(session, case, moved_on=moved_on, notified_on=today, by=by)
    complete(session, case, by=by, detail={"kind": "転居", "movers": len(movers), "visit": visit.id if visit else None,
                                           "new_household": new_household is not None})
    # Sent to J-LIS over the bridge in this transaction: a rollback sends nothing.
    for resident, before, after in snapshots:
        cards.revoke_for_changed_basic_items(session, resident=resident, before=before, after=after,
                                             by=by.login_id)
    return movers


# -- 転入 ------------------------------------------------------------------------------------------------


def _already_resident(session: Session, items: Mapping[str, Any]) -> str | None:
    """Why this person cannot get a new record here (R10), or None; a 除票 alone is no reason (a return)."""
    if records.current_record_with(session, juminhyo_code=items["juminhyo_code"]) is not None:
        return "already_resident"
    person_match = select(Resident.id).where(Resident.name_search == fold(items["name"]),
                                             Resident.birth_date == dt.date.fromisoformat(items["birth_date"]),
                                             Resident.status == RecordStatus.CURRENT)
    if session.execute(person_match).first() is not None:
        return "already_resident"
    number = items.get("my_number")
    if number:
        index = blind_index(current_app.config["BLIND_INDEX_KEY"], str(number), purpose="my_number")
        if records.current_record_with(session, my_number_index=index) is not None:
            return "number_in_use"
    return None


def _extra_items(items: Mapping[str, Any]) -> dict[str, Any]:
    """The 個別記載事項 and foreign-resident items the 転出証明書情報 carried, as the new record holds them.

    The 在留カード等の番号 is among them as ``residence_card_number``, which ``records.create_record`` encrypts.
    """
    dates = {"nhi_since", "late_elderly_since", "ltc_since", "pension_since", "child_allowance_since",
             "residence_expiry", "became_foreign_resident_on", "became_foreign_resident_notified_on",
             "special_permanent_certificate_issued_on"}
    extra: dict[str, Any] = {}
    for item in messages.CERTIFICATE_EXTRA:
        value = items.get(item)
        if value is None or value == "":
            continue
        extra[item] = dt.date.fromisoformat(value) if item in dates else value
    return extra


def _presented_serials(session: Session, case: Case) -> set[str]:
    """The authentication certificates that signed in, with their PIN, at the counter for this case."""
    return {serial for serial in session.execute(select(CounterVisit.cert_serial).where(
        CounterVisit.case_id == case.id, CounterVisit.result == VisitResult.VERIFIED)).scalars() if serial}


def _household(session: Session, application: Mapping[str, Any], machiaza: Machiaza, banchi: str,
               katagaki: str | None) -> tuple[Household, str | None]:
    """The household the movers join: a new one headed by a mover, or the one already at the address."""
    head = str(application.get("newHouseholder", "")).replace(" ", "").replace("　", "")
    if head != "existing":
        household = Household(household_number=records.new_household_number(session),
                              householder_name=str(application["newHouseholder"]), created_at=clock.utcnow())
        session.add(household)
        session.flush()
        return household, head
    same_katagaki = Resident.katagaki.is_(None) if katagaki is None else Resident.katagaki == katagaki
    existing = session.execute(select(Resident).where(
        Resident.machiaza_code == machiaza.code, Resident.banchi == banchi, same_katagaki,
        Resident.is_householder.is_(True), Resident.status == RecordStatus.CURRENT)).scalars().first()
    if existing is None:
        raise moves.refusal("newHouseholder", "no_household")
    return existing.household, None


def complete_move_in(session: Session, case: Case, *, by: Staff, visit: Any = None,
                     moved_on: dt.date | None = None,
                     paper_certificate: tuple[str, str] | None = None) -> list[Resident]:
    """Complete the 転入 at the counter (R9, R10): the records, the 転入通知, the prefecture, J-LIS, departments.

    Refused with a CaseError, before anything changes, for a case that is not an approved 転入予約, when
    the 転出証明書情報 of anyone is missing, when anyone is already a current resident here (R10), or
    when the new address is not in the address master. ``visit`` is the counter visit (the verified
    card sign-in); its id, when it has one, goes into the history.
    """
    if case.kind != "move_in_reservation":
        raise moves.refusal("case", "not_move_in")
    if case.status is not CaseStatus.APPROVED:
        raise moves.refusal("case", "not_approved")
    ready = moves.match_certificates(session, case)
    if not ready.ready:
        raise moves.refusal("moveout_certificate", "certificate_missing", names="、".join(ready.missing))
    application = signed_application(case)
    by_index = {c.person_index: c for c in moves.matched_certificates(session, case)}
    movers = application["movers"]
    certificates = [by_index[index] for index in moves.reservation_indexes(case)]
    people = [moves.certificate_items(c) for c in certificates]
    for items in people:
        # A 除票 of a person who lived here before stays beside the new record (the numbers are for life).
        refusal = _already_resident(session, items)
        if refusal is not None:
            raise moves.refusal("movers", refusal, name=items["name"])
    destination = application["destination"]
    parsed = moves.parse_address(str(current_app.config["MUNICIPALITY_CODE"]), str(destination.get("address", "")))
    if parsed is None:
        raise moves.refusal("destination.address", "address_unknown")
    machiaza, banchi = parsed
    katagaki = destination.get("katagaki") or None
    # 住民となった年月日 / 住所を定めた年月日: the day the resident states at the counter (住み始めた日), not the
    # planned date signed online (that one only when no day is given, as for a caller outside the counter).
    move_date = moved_on or dt.date.fromisoformat(application["moveDate"])
    today = clock.today_jst()
    if move_date > today:
        raise moves.refusal("moved_on", "move_date_ahead")
    planned = min(dt.date.fromisoformat(str(p.get("move_date") or application["moveDate"])) for p in people)
    limit = filing.tokurei_limit(moved_on=move_date, planned_moveout_on=planned)
    if today > limit and paper_certificate is None:
        # Past the 特例転入 limit the 転出証明書情報 no longer serves: a paper 転出証明書 (its number and issuer).
        raise moves.refusal("paper_certificate", "tokurei_expired", limit=limit.isoformat())
    if paper_certificate is not None and not all(str(v).strip() for v in paper_certificate):
        raise moves.refusal("paper_certificate", "paper_incomplete")
    household, head = _household(session, application, machiaza, banchi, katagaki)
    actor = by.login_id
    why = f"転入届 {case.receipt_number}"
    created: list[Resident] = []
    for mover, items, certificate in zip(movers, people, certificates, strict=True):
        is_head = head is not None and fold(str(mover.get("name", ""))) == fold(head)
        resident = records.create_record(
            session, household=household, reason=IdoReason.MOVE_IN, changed_on=move_date, notified_on=today,
            by=actor, my_number=items.get("my_number"),
            atena_number=records.new_atena_number(session), juminhyo_code=items["juminhyo_code"],
            name=items["name"], name_kana=items.get("name_kana") or str(mover.get("kana", "")),
            birth_date=dt.date.fromisoformat(items["birth_date"]), sex=Sex(items["sex"]),
            relationship_to_head="世帯主" if is_head else str(mover.get("relationship", ""))[:20],
            is_householder=is_head, machiaza_code=machiaza.code, banchi=banchi, katagaki=katagaki,
            honseki=items.get("honseki"), hittosha=items.get("hittosha"), previous_address=items["address"],
            **_extra_items(items))
        certificate.resident_id = resident.id
        created.append(resident)
    case.mover_resident_ids = json.dumps([r.id for r in created])
    session.flush()
    revocations = []
    presented = _presented_serials(session, case)
    lapsed = paper_certificate is not None and today > limit  # the card is 廃止 past the limit: no 継続利用
    for mover, resident, items, certificate in zip(movers, created, people, certificates, strict=True):
        new_address = moves.full_address(resident)
        # 継続利用: the card the resident signed to keep (keepsCard) moves to this ledger.
        kept = None
        if mover.get("keepsCard") is True and certificate.origin.startswith("muni:") and not lapsed:
            kept = cards.take_over_card(session, resident=resident, items=items, moved_on=move_date,
                                        origin=certificate.origin.removeprefix("muni:"), presented_serials=presented,
                                        by=actor)
        if certificate.origin.startswith("muni:"):
            provision.send(session, recipient_id=moves.MUNICIPALITY, party=certificate.origin,
                           message_type=moves.MOVEIN_NOTICE,
                           data={"juminhyo_code": resident.juminhyo_code, "name": resident.name,
                                 "birth_date": resident.birth_date.isoformat(), "move_date": move_date.isoformat(),
                                 "previous_address": items["address"], "new_address": new_address,
                                 "move_id": items.get("move_id"),
                                 "card_number": kept.card_number if kept is not None else None},
                           reason=why, resident_id=resident.id, actor=actor)
        moves.identity_update(session, resident, reason=IdoReason.MOVE_IN, on=move_date, why=why, actor=actor)
        moves.notify_departments(session, resident, message_type=moves.DEPT_NOTICE["move_in"], on=move_date,
                                 reason=why, actor=actor, data={
            "name": resident.name, "name_kana": resident.name_kana, "birth_date": resident.birth_date.isoformat(),
            "sex": resident.sex.value, "address": new_address, "my_number": items.get("my_number"),
            "household_number": household.household_number, "householder_name": household.householder_name,
            "relationship": resident.relationship_to_head, "change_reason": IdoReason.MOVE_IN.value,
            "change_date": move_date.isoformat(), "previous_address": items["address"],
        })
        if items.get("card_serial"):
            revocations.append((resident, str(items["card_serial"])))
    visit_id = getattr(visit, "id", None)
    filing.record_if_late(session, case, moved_on=move_date, notified_on=today, by=by)
    if paper_certificate is not None:
        number, issuer = (str(v).strip() for v in paper_certificate)
        add_event(session, case, "paper_moveout_certificate", by=by, detail={"number": number, "issuer": issuer})
        if lapsed:
            origins = [c.origin.removeprefix("muni:") for c in certificates]
            _card_use_lapsed(session, case, list(zip(created, people, origins, strict=True)), limit=limit, by=by)
    complete(session, case, by=by, detail={"residents": [r.id for r in created],
                                           **({"visit": visit_id} if visit_id is not None else {})})
    # Sent to J-LIS over the bridge, in this transaction: a rollback here sends nothing.
    for resident, serial in revocations:
        cards.revoke_signature_after_move(session, serial=serial, resident=resident, by=actor)
    return created


def _card_use_lapsed(session: Session, case: Case, movers: list[tuple[Resident, dict[str, Any], str]], *,
                     limit: dt.date, by: Staff) -> None:
    """Past the 特例転入 limit the card's special use lapses (the card is 廃止: no 特例転入, no 継続利用 at this
    転入): recorded on the case and, for each card the 転出証明書情報 named, in the operation log. J-LIS
    revokes its authentication certificate (``cards.revoke_lapsed_card``) and, as at every 転入, its
    signature certificate; the holder applies for a new card."""
    carried = [(resident, items, origin) for resident, items, origin in movers
               if items.get("card_auth_serial") or items.get("card_serial")]
    add_event(session, case, "card_use_lapsed", by=by, detail={"limit": limit.isoformat(), "cards": len(carried)})
    for resident, items, origin in carried:
        cards.revoke_lapsed_card(session, items=items, origin=origin, resident=resident, limit=limit, by=by.login_id)
        audit.record("card.lapsed", actor=by.login_id, actor_id=by.id, target_type="resident", target_id=resident.id,
                     detail={"serial": items.get("card_serial"), "auth_serial": items.get("card_auth_serial"),
                             "limit": limit.isoformat(), "event": "move_in_past_tokurei_limit"})
    audit.record("move.tokurei_lapsed", actor=by.login_id, actor_id=by.id, target_type="case", target_id=case.id,
                 detail={"residents": [r.id for r, _, _ in movers], "limit": limit.isoformat()})
