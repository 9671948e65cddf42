"""継続利用 at the counter: a card taken over at a 転入, presented with its PIN on the counter terminal within 90 days.

The card check is the counter's (``counter.trust``, ``counter.nonces``: a one-time challenge from this
back office, bound to the counter's origin, the chain, the CRL, the nonce used once); the card it
proves is then continued by ``cards.continue_card``, which accepts only the same card's
authentication certificate and refuses (marking the card for renewal) past the 90 days. Every
attempt, passed or refused, is in the operation log; the service flushes and never commits.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backoffice.models import CardRecord, Resident
from backoffice.services import audit, cards, counter
from core.addressmaster import municipality_by_code
from core.jpki import AuthTokenError, verify_auth_token
from core.refusal import Refused


class PresentationRefused(Refused):
    """The card that signed in could not be verified (``code`` from the verifier, ``hint`` for the page)."""

    def __init__(self, code: str, message: str, *, hint: str = "") -> None:
        super().__init__("card", message, code=code)
        self.hint = hint


def pending_cards(session: Session) -> list[tuple[CardRecord, Resident]]:
    """Cards taken over at a 転入 and still to be presented (neither continued nor marked for renewal), due first."""
    rows = session.execute(select(CardRecord, Resident).join(Resident, Resident.id == CardRecord.resident_id).where(
        CardRecord.continuation_due.is_not(None), CardRecord.continued_on.is_(None),
        CardRecord.renewal_required_on.is_(None), CardRecord.transferred_to.is_(None),
    ).order_by(CardRecord.continuation_due, CardRecord.id))
    return [(card, resident) for card, resident in rows]


def moved_from(card: CardRecord) -> str:
    """The municipality the card came from (its name from the address master, else its code)."""
    municipality = municipality_by_code(card.transferred_from or "")
    return municipality.prefecture + municipality.name if municipality else (card.transferred_from or "")


def _text(serial: int | None) -> str | None:
    # A serial is a 160-bit number: text, as the counter's visits keep it (JSON numbers lose such digits).
    return None if serial is None else str(serial)


def present_card(session: Session, card: CardRecord, *, token: Any, nonce: str | None, by: str) -> CardRecord:
    """Verify the card that signed the counter's challenge and continue ``card`` with it.

    Raises PresentationRefused when the card does not verify (logged as ``card.present`` denied) and
    ``cards.CardError`` from ``continue_card`` (another card, nothing pending, past the 90 days).
    """
    source = functools.partial(counter.nonces().take, nonce) if nonce else None
    try:
        verified = verify_auth_token(token, nonce=source, trust=counter.trust())
    except AuthTokenError as exc:
        audit.record("card.present", outcome="denied", target_type="card", target_id=card.id,
                     detail={"reason": str(exc.code), "certificate_serial": _text(exc.certificate_serial)})
        raise PresentationRefused(str(exc.code), "the card could not be verified", hint=exc.user_hint) from None
    audit.record("card.present", target_type="card", target_id=card.id,
                 detail={"certificate_serial": str(verified.serial)})
    return cards.continue_card(session, card_number=card.card_number, presented_serial=str(verified.serial), by=by)
