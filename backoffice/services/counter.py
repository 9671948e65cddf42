"""The counter (窓口): the resident's card check for an approved 転入予約/転居予約, and the 転入/転居 it allows.

R9: the law requires the in-person check, so a 転入 or 転居 is completed only after the card of the
case's applicant or a mover signed in on the counter terminal (the portal's protocol: a one-time
challenge from this back office, chain, revocation, authentication certificate, nonce used once),
on the same terminal and within ``COUNTER_VISIT_MINUTES``. Every check is stored (``CounterVisit``)
and in the operation log, passed or refused.

Completing the move is the ledger's work, for a 転居 and a 転入 alike: ``backoffice/services/completion.py``
(R10), called here once the case is locked, open and its card checked.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
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
    RecordStatus,
    Resident,
    Staff,
    VisitResult,
)
from backoffice.services import audit, cards, completion
from backoffice.services.completion import CounterError, mover_ids
from core import clock
from core.addressmaster import machiaza_by_code
from core.config import ConfigError
from core.jpki import AuthTokenError, RedisNonceStore, TrustConfig, verify_auth_token
from core.jpki.appconfig import MINIMUM_SIGNER_AGE, trust_for_app
from core.redisconn import get_redis, key

COUNTER_KINDS = {"move_in_reservation": "転入", "in_city_reservation": "転居"}
DEFAULT_VISIT_MINUTES = 30


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

# -- completion: the counter's refusals, then the ledger work (backoffice/services/completion.py) ---------


def _ready_to_complete(session: Session, case: Case, kind: str, visit: CounterVisit | None) -> None:
    # Locked first: two clerks completing the same case one after the other, never both at once.
    session.refresh(case, with_for_update=True)
    _check_open(case)
    if case.kind != kind:
        raise CounterError("case", f"this case is not a {COUNTER_KINDS[kind]}予約")
    require_visit(session, case, visit)


def complete_in_city_move(session: Session, case: Case, *, by: Staff, visit: CounterVisit | None,
                          remaining_householder: int | None = None,
                          relationships: Mapping[int, str] | None = None,
                          moved_on: dt.date | None = None) -> list[Resident]:
    """Complete a 転居届 at the counter: refused, before anything is written, without a verified card check (R9).

    The ledger work (R10: the address and household change, nothing else) is ``completion.complete_in_city_move``.
    """
    _ready_to_complete(session, case, "in_city_reservation", visit)
    return completion.complete_in_city_move(session, case, by=by, visit=visit,
                                            remaining_householder=remaining_householder,
                                            relationships=relationships, moved_on=moved_on)


def complete_move_in(session: Session, case: Case, *, by: Staff, visit: CounterVisit | None,
                     moved_on: dt.date | None = None,
                     paper_certificate: tuple[str, str] | None = None) -> list[Resident]:
    """Complete a 転入届 at the counter after the card check (the ledger work is ``completion.complete_move_in``)."""
    _ready_to_complete(session, case, "move_in_reservation", visit)
    return completion.complete_move_in(session, case, by=by, visit=visit, moved_on=moved_on,
                                       paper_certificate=paper_certificate)
