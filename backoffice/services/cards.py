"""My Number Card issuance at the counter: card records, certificates from J-LIS, revocation, the virtual card file.

What must answer at once (issuing a card at the counter, a clerk's revocation or hold, the status and
the 証明書紐付け) goes to J-LIS through a ``core.jpki.cardauthority.CardAuthority``, the one ``CARD_AUTHORITY``
names; the simulated one (JPKI-SIM, development and test) is the only implementation today, and a real
J-LIS connection would be another. A revocation a ledger change causes (the four basic items changed, a
転入, a card lapsed past the 特例転入 limit) instead goes to J-LIS over the bridge (``send_revocation``):
it is written to the outbox in the same transaction as the ledger change. Every function here
flushes and never commits, writes one operation-log row, and refuses bad input with a ``CardError``
naming the field before any key is generated or any certificate is touched.

The certificate authority keeps its own state outside the database. When the caller rolls back after
a successful synchronous call, the certificates stay issued or revoked at the authority: the same is
true of the real J-LIS, whose records the city cannot roll back either. A revocation sent over the
bridge is rolled back with the ledger change, and once committed the relay delivers it until J-LIS
acknowledges it.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from flask import current_app, has_request_context
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from backoffice.models import CardRecord, CardStatus, RecordStatus, Resident
from backoffice.services import audit, provision
from bridge.messages import CARD_REVOCATION
from core import clock
from core.addressmaster import machiaza_by_code, municipality_by_code
from core.checkdigits import is_valid_my_number
from core.clock import JST, age_on
from core.config import ConfigError
from core.jpki import cardauthority
from core.jpki.cardauthority import (
    DEFAULT_CARD_FILE_ITERATIONS as DEFAULT_ITERATIONS,
)
from core.jpki.cardauthority import (
    SIGNATURE_MINIMUM_AGE,
    CardAuthority,
    Holder,
    IssuanceRefused,
    RevocationReason,
    validity_end_date,
)
from core.refusal import Refused

# マイナンバーカードの有効期限: the 10th birthday after issue from 18, the 5th below 18.
ADULT_AGE = 18
ADULT_CARD_BIRTHDAYS = 10
MINOR_CARD_BIRTHDAYS = 5
CARD_NUMBER_DIGITS = 12
# The four basic items (基本4情報) as ledger columns; the address is the three columns together.
BASIC_ITEM_COLUMNS = ("name", "birth_date", "sex", "machiaza_code", "banchi", "katagaki")
REASONS = tuple(reason.value for reason in RevocationReason)
# Statuses of a card that still has live certificates (a suspended card is only on hold).
LIVE_STATUSES = (CardStatus.ACTIVE, CardStatus.SUSPENDED)
# 継続利用: a card taken over at a 転入 is presented at the counter within this many days of the move.
CONTINUATION_DAYS = 90
# data/recipients.json: J-LIS, which takes the card.revocation messages.
JLIS_RECIPIENT = "jlis"

# fullmatch with explicit ASCII classes: str.isdigit() and \d would accept full-width and other digits.
_PIN = re.compile(r"[0-9]{4}")
_PASSWORD = re.compile(r"[A-Z0-9]{6,16}")
_SERIAL = re.compile(r"[0-9]{1,64}")


class CardError(Refused, ValueError):
    """A card command or form was given something it cannot accept; ``field`` names the input, ``code`` the rule."""


def card_authority(config: Mapping[str, Any] | None = None) -> CardAuthority:
    """The CardAuthority the configuration names (``CARD_AUTHORITY``; core/jpki/cardauthority.py)."""
    return cardauthority.card_authority(current_app.config if config is None else config)


# -- the holder and the card's dates ------------------------------------------------------------------


def holder_for(resident: Resident) -> Holder:
    """The resident's four basic items as the signature certificate carries them (the address in full)."""
    code = current_app.config["MUNICIPALITY_CODE"]
    municipality = municipality_by_code(code)
    if municipality is None:
        raise ConfigError(f"municipality {code} is not in data/municipalities.csv")
    machiaza = machiaza_by_code(code, resident.machiaza_code)
    if machiaza is None:
        raise CardError("resident_code", "the record's town area is not in the address master",
                        code="address_unknown")
    address = municipality.prefecture + municipality.name + machiaza.name + resident.banchi
    if resident.katagaki:
        # The full-width space is how the ledger prints 方書 after 番地 (ledger.address_text).
        address += "　" + resident.katagaki
    return Holder(
        name=resident.name,
        birth_date=resident.birth_date,
        sex=resident.sex.value,
        address=address,
        prefecture=municipality.prefecture,
        municipality=municipality.name,
    )


def card_expiry(birth_date: dt.date, issued_on: dt.date) -> dt.date:
    """The card's expiry: the 10th birthday after issue for holders of 18 or older, the 5th for younger ones."""
    birthdays = ADULT_CARD_BIRTHDAYS if age_on(birth_date, issued_on) >= ADULT_AGE else MINOR_CARD_BIRTHDAYS
    return validity_end_date(birth_date, issued_on, birthdays=birthdays)


def gets_signature_certificate(birth_date: dt.date, issued_on: dt.date) -> bool:
    """Whether a card issued on ``issued_on`` carries a signature certificate (holders of 15 or older)."""
    return age_on(birth_date, issued_on) >= SIGNATURE_MINIMUM_AGE


# -- checks that run before anything is generated ----------------------------------------------------


def _check_pin(pin: str) -> str:
    if not isinstance(pin, str) or not _PIN.fullmatch(pin):
        raise CardError("pin", "the PIN must be exactly 4 digits (0-9)", code="pin_format")
    return pin


def _check_password(password: str | None) -> str:
    if not password:
        raise CardError("password", "a password is required: holders of 15 or older get a signature certificate",
                        code="password_required")
    # Checked ASCII before upper-casing: "ß".upper() is "SS", which would slip through the pattern.
    value = password.upper() if password.isascii() else ""
    if not _PASSWORD.fullmatch(value):
        raise CardError("password", "the password must be 6-16 characters of A-Z and 0-9", code="password_format")
    if value.isdigit() or value.isalpha():
        raise CardError("password", "the password must mix letters and digits", code="password_mix")
    return value


def _iterations(iterations: int | None) -> int:
    cfg = current_app.config
    value = int(iterations if iterations is not None else cfg.get("CARD_FILE_ITERATIONS", DEFAULT_ITERATIONS))
    # Only the test suite may write cheaper files; docs/virtual-card.md promises 600,000 everywhere else.
    floor = 1 if cfg["APP_ENV"] == "test" else DEFAULT_ITERATIONS
    if value < floor:
        raise ConfigError(f"card files need at least {floor} PBKDF2 iterations, got {value}")
    return value


def _current_resident(session: Session, resident_code: str) -> Resident:
    code = (resident_code or "").strip()
    resident = None
    if code.isascii() and code.isdigit() and len(code) == 11:
        # A person who returned has 除票 beside the current record; the card goes to the current one.
        same_code = session.execute(select(Resident).where(Resident.juminhyo_code == code)
                                    .order_by(Resident.id.desc())).scalars().all()
        resident = next((r for r in same_code if r.status is RecordStatus.CURRENT),
                        same_code[0] if same_code else None)
    if resident is None:
        raise CardError("resident_code", "no resident has this resident record code", code="resident_unknown")
    if resident.status is not RecordStatus.CURRENT:
        raise CardError("resident_code", "the record is removed (除票); no card can be issued to it",
                        code="resident_removed")
    return resident


# -- helpers ------------------------------------------------------------------------------------------


def _actor(by: str) -> dict[str, str]:
    # In a request the signed-in account is the actor (audit.record adds its id); a command names itself.
    if has_request_context() and current_user.is_authenticated and current_user.login_id == by:
        return {}
    return {"actor": by}


@contextmanager
def _known_to_authority(field: str) -> Iterator[None]:
    """Turn the authority's "no such certificate" (the ledger and J-LIS disagree) into a refusal naming ``field``."""
    try:
        yield
    except LookupError as exc:
        raise CardError(field, f"J-LIS has no record of this card's certificate ({exc})",
                        code="authority_unknown") from exc


def _jst_date(moment: dt.datetime) -> dt.date:
    return moment.astimezone(JST).date()


def _new_card_number(session: Session) -> str:
    """A random 12-digit card number that is never a valid My Number.

    A card number that passed the My Number check digit (one in ten random ones would) could be taken
    for a My Number by a person or by a data-loss scan of logs and exports; so such numbers are skipped.
    """
    while True:
        number = f"{secrets.randbelow(10**CARD_NUMBER_DIGITS):0{CARD_NUMBER_DIGITS}d}"
        if is_valid_my_number(number):
            continue
        if session.execute(select(CardRecord.id).where(CardRecord.card_number == number)).first() is None:
            return number


def _card_serials(card: CardRecord) -> list[int]:
    return [int(s) for s in (card.auth_cert_serial, card.sign_cert_serial) if s is not None]


def live_card(session: Session, resident: Resident) -> CardRecord | None:
    """The resident's newest card that still has live certificates (active or suspended), if any."""
    return session.execute(
        select(CardRecord)
        .where(CardRecord.resident_id == resident.id, CardRecord.status.in_(LIVE_STATUSES))
        .order_by(CardRecord.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def get_card(session: Session, *, card_number: str) -> CardRecord:
    """The card record with ``card_number``, or a CardError naming ``card_number``."""
    number = (card_number or "").strip()
    card = session.execute(select(CardRecord).where(CardRecord.card_number == number)).scalar_one_or_none()
    if card is None:
        raise CardError("card_number", "no card has this card number", code="card_unknown")
    return card


def view_card(session: Session, card_id: int) -> CardRecord | None:
    """Load one card record for display and log the view (the page shows whose card it is)."""
    card = session.get(CardRecord, card_id)
    if card is not None:
        audit.record("card.view", target_type="card", target_id=card.id)
    return card


# -- issuance -----------------------------------------------------------------------------------------


def issue_card(
    session: Session,
    *,
    resident_code: str,
    pin: str,
    password: str | None,
    issued_by: str,
    iterations: int | None = None,
) -> tuple[CardRecord, bytes]:
    """Issue a card to a current resident and return its record and the virtual card file (UTF-8 JSON bytes).

    The password is needed only when the card gets a signature certificate (holders of 15 or older);
    a younger holder's card has no sign slot, so a password given for it is not used. A live card
    of the same resident is superseded: its certificates are revoked and its record marked revoked.
    """
    resident = _current_resident(session, resident_code)
    pin = _check_pin(pin)
    issued_on = clock.today_jst()
    with_signature = gets_signature_certificate(resident.birth_date, issued_on)
    sign_password = _check_password(password) if with_signature else None
    rounds = _iterations(iterations)
    holder = holder_for(resident)
    expires_on = card_expiry(resident.birth_date, issued_on)
    previous = list(session.execute(
        select(CardRecord).where(CardRecord.resident_id == resident.id, CardRecord.status.in_(LIVE_STATUSES))
        .order_by(CardRecord.id)
    ).scalars())

    authority = card_authority()
    # Asked before any key is generated: a card J-LIS cannot revoke must not be superseded silently.
    with _known_to_authority("resident_code"):
        for old in previous:
            for serial in _card_serials(old):
                authority.status(serial)
    newest = previous[-1] if previous else None
    try:
        issued = authority.issue(
            holder, card_expires_on=expires_on, with_signature=with_signature,
            replaces_serial=int(newest.auth_cert_serial) if newest and newest.auth_cert_serial else None,
        )
    except IssuanceRefused as exc:
        raise CardError("resident_code", f"J-LIS refused the certificates: {exc}", code="issuance_refused") from exc
    card_file = authority.write_card(issued, pin, sign_password, iterations=rounds)

    # Only once the new card exists are the old ones withdrawn, so a failed issue never leaves the holder without one.
    now = clock.utcnow()
    superseded = []
    for old in previous:
        for serial in _card_serials(old):
            authority.revoke(serial, RevocationReason.SUPERSEDED)
        old.status = CardStatus.REVOKED
        old.updated_at = now
        superseded.append(old.card_number)

    card = CardRecord(
        resident_id=resident.id,
        card_number=_new_card_number(session),
        auth_cert_serial=str(issued.auth.serial),
        sign_cert_serial=str(issued.sign.serial) if issued.sign else None,
        issued_on=issued_on,
        expires_on=expires_on,
        sign_cert_expires_on=_jst_date(issued.sign.certificate.not_valid_after_utc) if issued.sign else None,
        status=CardStatus.ACTIVE,
        updated_at=now,
    )
    session.add(card)
    session.flush()
    authority.publish()
    audit.record("card.issue", target_type="card", target_id=card.id, **_actor(issued_by), detail={
        "resident_id": resident.id,
        "card_number": card.card_number,
        "auth_serial": card.auth_cert_serial,
        "sign_serial": card.sign_cert_serial,
        "expires_on": expires_on.isoformat(),
        "superseded": superseded,
        "pbkdf2_iterations": rounds,
    })
    return card, card_file


# -- revocation, suspension ---------------------------------------------------------------------------


def _reason(reason: str) -> RevocationReason:
    try:
        return RevocationReason((reason or "").strip())
    except ValueError:
        raise CardError("reason", f"the reason must be one of {', '.join(REASONS)}", code="reason_unknown") from None


def _card_of_serial(session: Session, serial: str) -> CardRecord:
    value = (serial or "").strip()
    card = None
    if _SERIAL.fullmatch(value):
        card = session.execute(
            select(CardRecord).where((CardRecord.auth_cert_serial == value) | (CardRecord.sign_cert_serial == value))
        ).scalar_one_or_none()
    if card is None:
        raise CardError("serial", "no card of this municipality has a certificate with this serial",
                        code="serial_unknown")
    return card


def revoke_certificate(session: Session, *, serial: str, reason: str, by: str) -> CardRecord:
    """Revoke one certificate of a card and republish the CRLs; the card's status follows.

    The card becomes revoked when its authentication certificate is revoked for good, and suspended
    for a certificateHold on either certificate (a card already revoked stays revoked).
    """
    why = _reason(reason)
    card = _card_of_serial(session, serial)
    _refuse_moved(card)
    number = int(serial.strip())
    authority = card_authority()
    with _known_to_authority("serial"):
        if not authority.revoke(number, why):
            current = authority.status(number)
            raise CardError("serial", f"the certificate is already revoked ({current.value if current else '-'})",
                            code="already_revoked")
    before = card.status
    if card.status is not CardStatus.REVOKED:
        if why is RevocationReason.CERTIFICATE_HOLD:
            card.status = CardStatus.SUSPENDED
        elif card.auth_cert_serial == str(number):
            card.status = CardStatus.REVOKED
    card.updated_at = clock.utcnow()
    session.flush()
    authority.publish()
    which = "auth" if card.auth_cert_serial == str(number) else "sign"
    audit.record("card.revoke", target_type="card", target_id=card.id, **_actor(by), detail={
        "serial": str(number), "certificate": which, "reason": why.value,
        "status_before": before.value, "status": card.status.value,
    })
    return card


def suspend_card(session: Session, *, card_number: str, by: str) -> CardRecord:
    """A lost card: put both certificates on hold (certificateHold), mark the card suspended, republish."""
    card = get_card(session, card_number=card_number)
    _refuse_moved(card)
    if card.status is not CardStatus.ACTIVE:
        raise CardError("card_number", f"only an active card can be suspended; this one is {card.status.value}",
                        code="not_active")
    authority = card_authority()
    with _known_to_authority("card_number"):
        held = [str(s) for s in _card_serials(card) if authority.suspend(s)]
    card.status = CardStatus.SUSPENDED
    card.updated_at = clock.utcnow()
    session.flush()
    authority.publish()
    audit.record("card.suspend", target_type="card", target_id=card.id, **_actor(by),
                 detail={"card_number": card.card_number, "held": held})
    return card


def resume_card(session: Session, *, card_number: str, by: str) -> CardRecord:
    """A lost card found again: release the holds, mark the card active, republish."""
    card = get_card(session, card_number=card_number)
    _refuse_moved(card)
    if card.status is not CardStatus.SUSPENDED:
        raise CardError("card_number", f"only a suspended card can be resumed; this one is {card.status.value}",
                        code="not_suspended")
    authority = card_authority()
    with _known_to_authority("card_number"):
        if card.auth_cert_serial is None or not authority.release_hold(int(card.auth_cert_serial)):
            raise CardError("card_number", "the authentication certificate is not on hold, so the card cannot resume",
                            code="not_on_hold")
        released = [card.auth_cert_serial]
        # A signature certificate revoked for good meanwhile (e.g. affiliationChanged) stays revoked.
        if card.sign_cert_serial is not None and authority.release_hold(int(card.sign_cert_serial)):
            released.append(card.sign_cert_serial)
    card.status = CardStatus.ACTIVE
    card.updated_at = clock.utcnow()
    session.flush()
    authority.publish()
    audit.record("card.resume", target_type="card", target_id=card.id, **_actor(by),
                 detail={"card_number": card.card_number, "released": released})
    return card


def certificate_states(card: CardRecord) -> dict[str, RevocationReason | None]:
    """The authority's revocation reason (None: valid) of each certificate of ``card`` it knows, by serial."""
    authority = card_authority()
    states: dict[str, RevocationReason | None] = {}
    for serial in _card_serials(card):
        try:
            states[str(serial)] = authority.status(serial)
        except LookupError:
            continue  # shown as unknown: the page must still open when the ledger and J-LIS disagree
    return states


# -- the hook for ledger changes ----------------------------------------------------------------------


def _comparable(value: Any) -> Any:
    # Snapshots hold JSON values (records.snapshot), callers may pass model values: compare them alike.
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "value"):
        return value.value
    return value or None


def changed_basic_items(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The four basic items that differ between two snapshots of a record (the address as one item)."""
    differing = {c for c in BASIC_ITEM_COLUMNS if _comparable(before.get(c)) != _comparable(after.get(c))}
    items = [c for c in ("name", "birth_date", "sex") if c in differing]
    if differing & {"machiaza_code", "banchi", "katagaki"}:
        items.append("address")
    return items


def revoke_for_changed_basic_items(
    session: Session, *, resident: Resident, before: Mapping[str, Any], after: Mapping[str, Any], by: str
) -> bool:
    """After a ledger change: J-LIS revokes the live card's signature certificate if a basic item changed.

    ``before`` and ``after`` are snapshots of the record (``records.snapshot``). The revocation
    (affiliationChanged) is sent over the bridge in the caller's transaction (``send_revocation``). The
    authentication certificate names nobody, so it and the card stay valid. Returns whether one was sent.
    """
    items = changed_basic_items(before, after)
    if not items:
        return False
    card = live_card(session, resident)
    if card is None or card.sign_cert_serial is None:
        return False
    message_id = send_revocation(session, serial=card.sign_cert_serial, reason=RevocationReason.AFFILIATION_CHANGED,
                                 resident=resident, why=f"基本4情報の変更 ({', '.join(items)})", by=by,
                                 field="resident")
    card.updated_at = clock.utcnow()
    session.flush()
    audit.record("card.revoke", target_type="card", target_id=card.id, **_actor(by), detail={
        "serial": card.sign_cert_serial, "certificate": "sign", "reason": RevocationReason.AFFILIATION_CHANGED.value,
        "changed_items": items, "status_before": card.status.value, "status": card.status.value,
        "message_id": message_id,
    })
    return True


def revoke_signature_after_move(session: Session, *, serial: str, resident: Resident, by: str) -> bool:
    """At the 転入: J-LIS revokes (affiliationChanged) the signature certificate the former municipality reported.

    The card was issued elsewhere, so no card record of it need be here: the serial comes from the
    転出証明書情報. The revocation is sent over the bridge in the caller's transaction; returns True.
    """
    message_id = send_revocation(session, serial=serial, reason=RevocationReason.AFFILIATION_CHANGED,
                                 resident=resident, why="転入 (記載事項の変更: 住所)", by=by, field="card_serial")
    audit.record("card.revoke", target_type="resident", target_id=resident.id, **_actor(by), detail={
        "serial": serial, "certificate": "sign", "reason": RevocationReason.AFFILIATION_CHANGED.value,
        "changed_items": ["address"], "event": "move_in", "message_id": message_id,
    })
    return True


def revoke_lapsed_card(session: Session, *, items: Mapping[str, Any], origin: str, resident: Resident,
                       limit: dt.date, by: str) -> bool:
    """Past the 特例転入 limit the card is 廃止: J-LIS revokes its authentication certificate too.

    ``items`` is the 転出証明書情報, ``origin`` the municipality code it came from. The signature certificate
    goes with every 転入 (``revoke_signature_after_move``); this is the other one, which the 継続利用 would
    have kept valid. Sent over the bridge in the caller's transaction, and only for a card the destination
    could have taken over (``_take_over_refusal``: not a card this city keeps for someone else, and one
    whose signature certificate J-LIS links to it); otherwise nothing is sent and the log says why.
    Returns whether a revocation was sent.
    """
    auth = items.get("card_auth_serial")
    if not auth:
        return False
    refusal = _take_over_refusal(session, {**items, "card_number": items.get("card_number") or ""}, origin)
    detail = {"serial": str(auth), "certificate": "auth", "reason": RevocationReason.AFFILIATION_CHANGED.value,
              "event": "move_in_past_tokurei_limit", "limit": limit.isoformat()}
    if refusal is not None:
        audit.record("card.revoke", outcome="denied", target_type="resident", target_id=resident.id, **_actor(by),
                     detail={**detail, "refused": refusal})
        return False
    message_id = send_revocation(session, serial=str(auth), reason=RevocationReason.AFFILIATION_CHANGED,
                                 resident=resident, why=f"特例転入の期限 ({limit.isoformat()}) 経過: カード廃止", by=by,
                                 field="card_auth_serial")
    audit.record("card.revoke", target_type="resident", target_id=resident.id, **_actor(by),
                 detail={**detail, "message_id": message_id})
    return True


def send_revocation(session: Session, *, serial: str, reason: RevocationReason, resident: Resident, why: str,
                    by: str, field: str) -> str:
    """Send J-LIS a ``card.revocation`` of ``serial`` in the caller's transaction; returns its message id.

    For the revocations a ledger change causes: the message is a row of the outbox written with the ledger
    change, so a rollback sends nothing and a commit cannot lose it; the relay delivers it and J-LIS
    (``bridge/peers/jlis/receiver.py``) applies it once and publishes fresh CRLs. ``field`` names the input
    a malformed serial is refused for.
    """
    if not isinstance(serial, str) or not _SERIAL.fullmatch(serial):
        raise CardError(field, "the certificate serial must be decimal digits", code="serial_format")
    record = provision.send(session, recipient_id=JLIS_RECIPIENT, message_type=CARD_REVOCATION,
                            data={"card_serial": serial, "revocation_reason": reason.value}, reason=why,
                            resident_id=resident.id, actor=by)
    return str(record.message_id)


# -- the card kept in use after a move (継続利用) ----------------------------------------------------------


def take_over_card(session: Session, *, resident: Resident, items: Mapping[str, Any], origin: str,
                   moved_on: dt.date, presented_serials: set[str], by: str) -> CardRecord | None:
    """At the 転入: the card the person keeps using (継続利用) moves to this city's ledger.

    ``items`` is the 転出証明書情報 (its card number, authentication certificate serial and dates); ``origin`` the
    municipality code that kept the card until now. The card is continued at once when its authentication
    certificate signed in at the counter for this 転入 (``presented_serials``: checked with its PIN); otherwise
    it must be presented within ``CONTINUATION_DAYS`` of the move, else it is marked for renewal
    (``mark_lapsed_continuations``). The signature certificate is revoked by the 転入 as before; the
    authentication certificate stays valid. Returns None when the 転出証明書情報 names no card.
    """
    number, auth = items.get("card_number"), items.get("card_auth_serial")
    if not number or not auth or not items.get("card_issued_on") or not items.get("card_expires_on"):
        return None
    today, now = clock.today_jst(), clock.utcnow()
    continued = str(auth) in presented_serials
    refusal = _take_over_refusal(session, items, origin)
    if refusal is not None:
        # Not this city's to hand to the mover: the 転入 stands, the card is not continued, and the log says why.
        audit.record("card.take_over", outcome="denied", target_type="resident", target_id=resident.id,
                     **_actor(by), detail={"from": origin, "reason": refusal})
        return None
    card = session.execute(select(CardRecord).where(CardRecord.card_number == number)).scalar_one_or_none()
    if card is None:
        # A card another city issued; a card this city issued before the person left comes back to its record.
        card = CardRecord(card_number=number, auth_cert_serial=str(auth), sign_cert_serial=items.get("card_serial"),
                          issued_on=dt.date.fromisoformat(str(items["card_issued_on"])),
                          expires_on=dt.date.fromisoformat(str(items["card_expires_on"])), status=CardStatus.ACTIVE,
                          resident_id=resident.id, updated_at=now)
        session.add(card)
    card.resident_id, card.transferred_from, card.transferred_to = resident.id, origin, None
    card.continuation_due = moved_on + dt.timedelta(days=CONTINUATION_DAYS)
    card.continued_on = today if continued else None
    card.renewal_required_on, card.updated_at = None, now
    session.flush()
    audit.record("card.take_over", target_type="card", target_id=card.id, **_actor(by), detail={
        "resident_id": resident.id, "card_number": card.card_number, "from": origin, "continued": continued,
        "continuation_due": card.continuation_due.isoformat(),
    })
    return card


def _take_over_refusal(session: Session, items: Mapping[str, Any], origin: str) -> str | None:
    """Why the card the 転出証明書情報 names may not be recorded for the mover, or None.

    A card this city already keeps is handed over only when it left with its holder to ``origin`` (the
    same card coming back); any other card number or serial this city knows belongs to someone here.
    A new card must be one J-LIS links: the signature certificate reported is its own (証明書紐付け).
    """
    number, auth, sign = str(items["card_number"]), str(items["card_auth_serial"]), items.get("card_serial")
    known = list(session.execute(select(CardRecord).where(
        (CardRecord.card_number == number) | (CardRecord.auth_cert_serial == auth)
        | ((CardRecord.sign_cert_serial == str(sign)) if sign else CardRecord.id.is_(None)))).scalars())
    if known:
        back = len(known) == 1 and known[0].card_number == number and known[0].auth_cert_serial == auth \
            and known[0].transferred_to == origin
        return None if back else "card_of_this_city"
    if sign:
        try:
            linked = card_authority().sign_serials_of_card(int(auth))
        except LookupError:
            return "card_unknown"
        if int(str(sign)) not in linked:
            return "card_not_linked"
    return None


def continue_card(session: Session, *, card_number: str, presented_serial: str, by: str) -> CardRecord:
    """継続利用 of a card taken over at a 転入, presented at the counter with its PIN within the 90 days.

    ``presented_serial`` is the authentication certificate that signed in at the counter. Past the 90 days
    the card is marked for renewal and refused with that reason.
    """
    card = get_card(session, card_number=card_number)
    if card.continuation_due is None or card.continued_on is not None:
        raise CardError("card_number", "no continued use is pending for this card", code="no_continuation")
    if str(presented_serial) != card.auth_cert_serial:
        raise CardError("card_number", "the card that signed in is not this card", code="not_this_card")
    today = clock.today_jst()
    if today > card.continuation_due:
        _mark_renewal(card, today, by)
        session.flush()
        raise CardError("card_number", f"the 90 days for continued use ended on {card.continuation_due.isoformat()}: "
                                       "the card must be renewed", code="renewal_required")
    card.continued_on, card.updated_at = today, clock.utcnow()
    session.flush()
    audit.record("card.continue", target_type="card", target_id=card.id, **_actor(by),
                 detail={"card_number": card.card_number})
    return card


def _mark_renewal(card: CardRecord, today: dt.date, by: str) -> None:
    card.renewal_required_on, card.updated_at = today, clock.utcnow()
    audit.record("card.renewal_required", target_type="card", target_id=card.id, **_actor(by), detail={
        "card_number": card.card_number, "continuation_due": (card.continuation_due or today).isoformat()})


def mark_lapsed_continuations(session: Session, *, by: str) -> list[CardRecord]:
    """Mark for renewal every card taken over at a 転入 and not presented within the 90 days."""
    today = clock.today_jst()
    lapsed = list(session.execute(select(CardRecord).where(
        CardRecord.continuation_due < today, CardRecord.continued_on.is_(None),
        CardRecord.renewal_required_on.is_(None), CardRecord.transferred_to.is_(None),
    ).order_by(CardRecord.id)).scalars())
    for card in lapsed:
        _mark_renewal(card, today, by)
    session.flush()
    return lapsed


def hand_over_card(session: Session, *, card_number: str, resident: Resident, to: str, by: str) -> CardRecord | None:
    """At the origin, on the 転入通知: the destination keeps the card now; this city no longer acts on it."""
    card = session.execute(select(CardRecord).where(CardRecord.card_number == card_number)).scalar_one_or_none()
    if card is None or card.resident_id != resident.id or card.transferred_to == to:
        return None
    card.transferred_to, card.updated_at = to, clock.utcnow()
    session.flush()
    audit.record("card.hand_over", target_type="card", target_id=card.id, **_actor(by),
                 detail={"card_number": card.card_number, "to": to})
    return card


def _refuse_moved(card: CardRecord) -> None:
    if card.transferred_to:
        raise CardError("card_number", f"the card moved with its holder to municipality {card.transferred_to}, "
                                       "which now suspends or revokes it", code="card_moved")
