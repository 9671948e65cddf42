"""The counter (窓口): the resident's card check for an approved 転入予約/転居予約, and the 転入/転居 it completes.

R9: the law requires the in-person check, so a 転入 or 転居 is completed only after the card of the
case's applicant or a mover signed in on the counter terminal (the portal's protocol: a one-time
challenge from this back office, chain, revocation, authentication certificate, nonce used once),
on the same terminal and within ``COUNTER_VISIT_MINUTES``. Every check is stored (``CounterVisit``)
and in the operation log, passed or refused.

R10: a 転居 changes the address (and the household, when the application states a new one) and
nothing else; an application whose other items disagree with the ledger is refused naming the item.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
from collections.abc import Mapping
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from backoffice.models import (
    CardRecord,
    CardStatus,
    Case,
    CaseStatus,
    CounterVisit,
    Household,
    IdoReason,
    RecordStatus,
    Resident,
    Staff,
    VisitResult,
)
from backoffice.services import audit, cards, cases, filing, households, provision, records
from backoffice.services.cases import signed_application
from core import clock
from core.addressmaster import machiaza_by_code
from core.config import ConfigError
from core.jpki import AuthTokenError, RedisNonceStore, TrustConfig, verify_auth_token
from core.jpki.appconfig import MINIMUM_SIGNER_AGE, trust_for_app
from core.redisconn import get_redis, key
from core.refusal import Refused
from core.textfold import fold

COUNTER_KINDS = {"move_in_reservation": "転入", "in_city_reservation": "転居"}
DEFAULT_VISIT_MINUTES = 30
# What a 転居 may change (R10): the address, when and why it was set, the previous address, the household.
IN_CITY_MOVE_ITEMS = frozenset({
    "machiaza_code", "banchi", "katagaki", "address_set_on", "address_set_reason", "previous_address",
    "household_id", "relationship_to_head", "is_householder",
})
ITEM_NAMES = {"name": "氏名 (name)", "name_kana": "カナ氏名 (name in kana)", "birth_date": "生年月日 (birth date)",
              "sex": "性別 (sex)"}


class CounterError(Refused, ValueError):
    """A counter action the rules refuse; ``field`` names the item or input, ``message`` says why."""


class VisitRefused(CounterError):
    """The card check failed; ``code`` is what the operation log keeps, ``visit`` the stored attempt."""

    def __init__(self, code: str, message: str, visit: CounterVisit, *, hint: str = "") -> None:
        super().__init__("card", message)
        self.code = code
        self.visit = visit
        self.hint = hint or code  # what the clerk may be told: certificate_revoked, certificate_expired, retry, …


# -- the case at the counter ---------------------------------------------------------------------------


def counter_case(session: Session, case_id: int) -> Case | None:
    """An approved 転入予約 or 転居予約 ready for the counter, or None."""
    case = session.get(Case, case_id)
    if case is None or case.kind not in COUNTER_KINDS:
        return None
    return case


def ready_cases(session: Session) -> list[Case]:
    """Approved reservations waiting for the resident at the counter, oldest first."""
    return list(session.execute(select(Case).where(Case.kind.in_(tuple(COUNTER_KINDS)),
                                                   Case.status == CaseStatus.APPROVED)
                                .order_by(Case.received_at, Case.id).limit(500)).scalars())


def mover_ids(case: Case) -> list[int | None]:
    """The ledger ids of the case's movers, as intake matched them (None: not found)."""
    return list(json.loads(case.mover_resident_ids or "[]"))


def destination_text(application: Mapping[str, Any]) -> str:
    """The new address as the clerk reads it: the 町字 by name for a move within the city."""
    destination = application.get("destination") or {}
    if destination.get("kind") == "in_city":
        machiaza = machiaza_by_code(current_app.config["MUNICIPALITY_CODE"], str(destination.get("machiazaCode")))
        text = (machiaza.name if machiaza else str(destination.get("machiazaCode"))) + str(destination.get("banchi"))
    else:
        text = "".join(str(destination.get(k) or "") for k in ("prefecture", "municipality", "address"))
    return f"{text}　{destination['katagaki']}" if destination.get("katagaki") else text


def _check_open(case: Case) -> None:
    if case.kind not in COUNTER_KINDS:
        raise CounterError("case", "only a 転入予約 or 転居予約 is completed at the counter")
    if case.status is not CaseStatus.APPROVED:
        raise CounterError("case", f"the case is {case.status.value}; only an approved reservation can be completed")


# -- the card check (R9) -------------------------------------------------------------------------------


def visit_window() -> dt.timedelta:
    """How long a verified card check stays good for completing the case."""
    return dt.timedelta(minutes=int(current_app.config.get("COUNTER_VISIT_MINUTES", DEFAULT_VISIT_MINUTES)))


def nonces() -> RedisNonceStore:
    """The one-time challenges of the counter terminals (apart from the portal's)."""
    return RedisNonceStore(get_redis(), key_prefix=key("nonce", "counter") + ":", clock=clock.utcnow)


def trust() -> TrustConfig:
    """The card trust of this back office; the token is bound to the counter pages' own origin, from configuration.

    Never the portal's origin (SITE_ORIGIN), so a card's sign-in on the portal is no visit to the counter.
    """
    base = trust_for_app()
    origin = current_app.config.get("COUNTER_ORIGIN")
    if not origin or origin == base.origin:
        raise ConfigError("COUNTER_ORIGIN must be set and differ from SITE_ORIGIN")
    return dataclasses.replace(base, origin=origin)


def _holder(session: Session, case: Case, serial: int) -> tuple[str | None, int | None]:
    """Whose card signed in: (refusal code or None, ledger id of the holder when this city keeps the card)."""
    card = session.execute(select(CardRecord).where(CardRecord.auth_cert_serial == str(serial))).scalar_one_or_none()
    if card is not None:
        if card.status is not CardStatus.ACTIVE:
            return "card_not_active", card.resident_id
        return _presence_refusal(session, case, card.resident_id), card.resident_id
    # A card another city issued (the 転入 case): J-LIS's 証明書紐付け links its auth certificate to the
    # signature certificate that signed the application.
    try:
        signs = cards.card_authority().sign_serials_of_card(serial)
    except LookupError:
        return "card_unknown", None
    if case.sign_cert_serial.isdigit() and int(case.sign_cert_serial) in signs:
        return None, case.applicant_resident_id
    return "not_applicant", None


def _presence_refusal(session: Session, case: Case, holder_id: int) -> str | None:
    """Whether this card may stand for the movers' presence (the card itself already verified).

    A mover aged 15 or over proves their own presence. A member of the movers' household aged 15 or
    over (the applicant among them) may complete the move for the others when they bring the movers'
    cards: their check is accepted here and ``require_visit`` then wants each mover's card checked too.
    A card of someone under 15 proves no presence (no signature certificate; they file through the
    household): it is kept as ``under_fifteen``, which counts only as a card brought by a member.
    """
    movers = [session.get(Resident, i) for i in mover_ids(case) if i is not None]
    households = {m.household_id for m in movers if m is not None and m.status is RecordStatus.CURRENT}
    holder = session.get(Resident, holder_id)
    if holder is None or holder.status is not RecordStatus.CURRENT:
        return "not_applicant"
    if holder.id not in {case.applicant_resident_id, *mover_ids(case)} and holder.household_id not in households:
        return "not_applicant"
    if clock.age_on(holder.birth_date, clock.today_jst()) < MINIMUM_SIGNER_AGE:
        return "under_fifteen"
    return None


def _movers_cards_missing(session: Session, case: Case, visit: CounterVisit) -> list[int]:
    """Movers whose own card was not checked for this case within the window (when a non-mover checked theirs)."""
    since = clock.utcnow() - visit_window()
    presented = set(session.execute(select(CounterVisit.resident_id).where(
        CounterVisit.case_id == case.id, CounterVisit.terminal_id == visit.terminal_id,
        CounterVisit.checked_at >= since,
        (CounterVisit.result == VisitResult.VERIFIED) | (CounterVisit.reason == "under_fifteen"))).scalars())
    return [i for i in mover_ids(case) if i is not None and i not in presented]


REFUSALS = {
    "not_applicant": "This card belongs to someone who is neither the applicant nor a mover of this case "
                     "nor a member of the movers' household.",
    "under_fifteen": "The card of a person under 15 does not prove a presence at the counter: a mover aged 15 or "
                     "over, or a member of the household who brings the movers' cards, must show their card.",
    "card_not_active": "This card is not active in the ledger (suspended or revoked).",
    "card_unknown": "The card authority does not know this card.",
}


def check_visit(session: Session, case: Case, *, token: Any, nonce: str | None, staff_id: int,
                terminal_id: int) -> CounterVisit:
    """Verify the card that signed in at the counter and whose presence it proves (``_presence_refusal``); store it.

    Raises VisitRefused (the refused attempt is stored and logged too) or CounterError for a case that
    is not ready for the counter.
    """
    _check_open(case)
    store = nonces()
    source = functools.partial(store.take, nonce) if nonce else None
    now = clock.utcnow()
    serial: int | None = None
    hint = ""
    try:
        verified = verify_auth_token(token, nonce=source, trust=trust())
    except AuthTokenError as exc:
        code, message = str(exc.code), "The card could not be verified."
        serial, hint = exc.certificate_serial, exc.user_hint
        resident_id = None
    else:
        serial = verified.serial
        refusal, resident_id = _holder(session, case, serial)
        code, message = (refusal, REFUSALS[refusal]) if refusal else ("", "")
    visit = CounterVisit(case_id=case.id, staff_id=staff_id, terminal_id=terminal_id, checked_at=now,
                         result=VisitResult.REFUSED if code else VisitResult.VERIFIED, reason=code or None,
                         cert_serial=None if serial is None else str(serial), resident_id=resident_id)
    session.add(visit)
    session.flush()
    audit.record("counter.visit", outcome="denied" if code else "success", target_type="case", target_id=case.id,
                 detail={"visit": visit.id, "result": visit.result.value, "reason": code or None,
                         "certificate_serial": visit.cert_serial})
    if code:
        raise VisitRefused(code, message, visit, hint=hint)
    return visit


def current_visit(session: Session, case: Case, *, terminal_id: int) -> CounterVisit | None:
    """The latest verified check of this case on this terminal that is still within the window."""
    since = clock.utcnow() - visit_window()
    return session.execute(select(CounterVisit).where(
        CounterVisit.case_id == case.id, CounterVisit.terminal_id == terminal_id,
        CounterVisit.result == VisitResult.VERIFIED, CounterVisit.checked_at >= since,
    ).order_by(CounterVisit.id.desc()).limit(1)).scalar_one_or_none()


def require_visit(session: Session, case: Case, visit: CounterVisit | None) -> CounterVisit:
    """R9: completion needs a verified card check of this case within the window; otherwise refused.

    When the card checked is not a mover's (a member of the household completing the move for the
    others), each mover's own card must have been checked for this case too.
    """
    if visit is None:
        raise CounterError("visit", "the resident's card has not been checked at the counter for this case")
    if visit.case_id != case.id or visit.result is not VisitResult.VERIFIED:
        raise CounterError("visit", "the card check given is not a verified check of this case")
    if clock.utcnow() - visit.checked_at > visit_window():
        raise CounterError("visit", "the card check is too old; check the card again")
    if visit.resident_id is not None and visit.resident_id not in mover_ids(case) \
            and _movers_cards_missing(session, case, visit):
        raise CounterError("visit", "a member of the household completing the move for the movers must bring "
                                    "their cards: check each mover's card too")
    return visit


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


def _full_address(resident: Resident) -> str:
    return cards.holder_for(resident).address


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


def _identity_update(resident: Resident, *, reason: IdoReason, changed_on: dt.date) -> dict[str, Any]:
    """The 本人確認情報 for the prefecture (住基法第30条の6), after the change."""
    my_number = records.my_number(resident)
    return {"juminhyo_code": resident.juminhyo_code, "name": resident.name,
            "birth_date": resident.birth_date.isoformat(), "sex": resident.sex.value,
            "address": _full_address(resident), "my_number": my_number, "change_reason": reason.value,
            "change_date": changed_on.isoformat()}


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
    """Complete a 転居届 at the counter: each mover's address (and household if stated) changes, nothing else.

    Refused, before anything is written, without a verified card check (R9), for a mover who is not a
    current resident, or for an application whose other items differ from the ledger (R10). Then: one
    history row per mover, the prefecture update, the signature certificate revoked at J-LIS (the address
    on it changed), and the case completed. A householder who moves away from members who stay leaves
    them a householder: the only one who can be, or ``remaining_householder`` from their 世帯主変更届,
    with each member's 続柄 to the new householder as ``relationships`` states it.
    """
    # Locked first: two clerks completing the same case one after the other, never both at once.
    session.refresh(case, with_for_update=True)
    _check_open(case)
    if case.kind != "in_city_reservation":
        raise CounterError("case", "this case is not a 転居予約")
    require_visit(session, case, visit)
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
            "previous_address": _full_address(resident), "address_set_on": moved_on,
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
        provision.send(session, recipient_id="prefecture", message_type="identity.update",
                       data=_identity_update(resident, reason=IdoReason.MOVE_WITHIN, changed_on=moved_on),
                       reason=f"case {case.id} completed at the counter: 転居", resident_id=resident.id,
                       actor=by.login_id)
        snapshots.append((resident, before, after))
    filing.record_if_late(session, case, moved_on=moved_on, notified_on=today, by=by)
    cases.complete(session, case, by=by, detail={"kind": "転居", "movers": len(movers),
                                                 "visit": visit.id if visit else None,
                                                 "new_household": new_household is not None})
    # Sent to J-LIS over the bridge in this transaction: a rollback sends nothing.
    for resident, before, after in snapshots:
        cards.revoke_for_changed_basic_items(session, resident=resident, before=before, after=after,
                                             by=by.login_id)
    return movers


# -- 転入 ------------------------------------------------------------------------------------------------


def complete_move_in(session: Session, case: Case, *, by: Staff, visit: CounterVisit | None,
                     moved_on: dt.date | None = None,
                     paper_certificate: tuple[str, str] | None = None) -> list[Resident]:
    """Complete a 転入届 at the counter after the card check (the ledger work is the moves service's)."""
    session.refresh(case, with_for_update=True)
    _check_open(case)
    if case.kind != "move_in_reservation":
        raise CounterError("case", "this case is not a 転入予約")
    require_visit(session, case, visit)
    from backoffice.services import moves  # the 転入 ledger work lives with the moves between cities

    return moves.complete_move_in(session, case, by=by, visit=visit, moved_on=moved_on,
                                  paper_certificate=paper_certificate)
