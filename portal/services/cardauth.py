"""Card sign-in on the portal: challenges, token verification, accounts, identity binding, sessions.

The browser page, the JSON API and (later) the counter terminal all go through ``verify_auth_token``
of ``core.jpki``; this module adds what the portal keeps: nonces in Redis, the account keyed by the
auth certificate, the link to the four basic items, and server-side sessions.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import unicodedata
from dataclasses import dataclass
from typing import Any, cast

from cryptography import x509
from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core import clock
from core.jpki import (
    AuthTokenError,
    RedisNonceStore,
    SignedApplicationError,
    TrustConfig,
    verify_auth_token,
    verify_signed_application,
)
from core.jpki.appconfig import trust_for_app
from core.jpki.trust import RevocationCheckFailed, key_identifier
from core.redisconn import get_redis, key, within_limit
from core.sessions import SessionStore
from portal.models import PortalAccount, ResidentSession
from portal.services import audit

SESSIONS = SessionStore(ResidentSession, "account_id")
LINK_PURPOSE = "identity-link"


class IdentityMismatch(ValueError):
    """The signature names another person than the one this account is already linked to."""


def trust() -> TrustConfig:
    """The portal's card trust configuration."""
    return trust_for_app()


def nonces(purpose: str) -> RedisNonceStore:
    """The one-time challenge store for ``purpose`` (sign-in or a signature)."""
    return RedisNonceStore(get_redis(), key_prefix=key("nonce", purpose) + ":", clock=clock.utcnow)


def _serial(value: int | None) -> str | None:
    # Certificate serials are up to 160 bits: kept as decimal text, as JSON numbers cannot hold them.
    return None if value is None else str(value)


class SignInThrottled(Exception):
    """The card signed, but it has used up its sign-ins for now (``CARD_LOGIN_LIMIT`` a minute); no session opened."""


def _certificate_key(issuer_key_id: str, serial: str) -> str:
    """A stable, non-identifying key of a verified certificate, for its rate limit (no personal data in Redis)."""
    return hashlib.sha256(f"{issuer_key_id}:{serial}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class SignInOutcome:
    """A successful sign-in: the account and the new session token."""

    account: PortalAccount
    session_token: str | None
    new_account: bool


def sign_in(session: Session, *, token: Any, nonce: str | None, client: str | None,
            open_session: bool = True) -> SignInOutcome:
    """Verify a Web eID token against the nonce this client was given; open a session. Raises AuthTokenError."""
    store = nonces("auth")
    source = functools.partial(store.take, nonce) if nonce else None
    try:
        verified = verify_auth_token(token, nonce=source, trust=trust())
    except AuthTokenError as exc:
        audit.record(session, "resident.sign_in", outcome="failure", actor="anonymous", client_addr=client,
                     detail={"code": str(exc.code), "certificate_serial": _serial(exc.certificate_serial)})
        raise
    issuer, serial = verified.issuer_key_id, str(verified.serial)
    # Counted only now, once the card has signed this client's nonce: the certificate is public (the card
    # sends it at every sign-in, and it can be read without the PIN), so counting unverified tokens would
    # let anyone who has it lock its holder out. What this limit stops is a genuine card driven by a script.
    if not within_limit("login-cert", _certificate_key(issuer, serial), limit=current_app.config["CARD_LOGIN_LIMIT"]):
        audit.record(session, "resident.sign_in", outcome="denied", actor="anonymous", client_addr=client,
                     detail={"code": "RATE_LIMITED", "certificate_serial": serial})
        raise SignInThrottled("too many sign-ins with this certificate")
    account = session.execute(
        select(PortalAccount).where(PortalAccount.cert_issuer == issuer, PortalAccount.cert_serial == serial)
    ).scalar_one_or_none()
    now = clock.utcnow()
    created = account is None
    if account is None:
        account = PortalAccount(cert_issuer=issuer, cert_serial=serial, cert_not_after=verified.not_after,
                                created_at=now, last_sign_in_at=now)
        session.add(account)
        session.flush()
    account.last_sign_in_at = now
    token_value = SESSIONS.start(session, account.id) if open_session else None
    audit.record(session, "resident.sign_in", actor=f"account:{account.id}", actor_id=account.id, client_addr=client,
                 detail={"certificate_serial": serial, "new_account": created})
    return SignInOutcome(account, token_value, created)


def resume(session: Session, token: str) -> tuple[PortalAccount | None, str]:
    """The account of a live session, or why there is none (idle, expired, ended, certificate).

    The card's authentication certificate is checked against the CRL on each request, as for API
    tokens, so a revoked card signs its holder out at the next page rather than hours later.
    """
    row = SESSIONS.live(session, token)
    if row is None:
        return None, "ended"
    cfg = current_app.config
    reason = SESSIONS.expiry_reason(row, idle=dt.timedelta(minutes=cfg["PORTAL_IDLE_MINUTES"]),
                                    absolute=dt.timedelta(hours=cfg["PORTAL_ABSOLUTE_HOURS"]))
    if reason is not None:
        SESSIONS.close(session, row, reason)
        return None, reason
    account = session.get(PortalAccount, row.account_id)
    card = auth_certificate_in_force(account) if account is not None else "no_account"
    if card is not None:
        # The card's certificate was revoked (or expired) since sign-in: the session ends with it.
        SESSIONS.close(session, row, "certificate")
        audit.record(session, "resident.session_end", outcome="failure", actor=f"account:{row.account_id}",
                     actor_id=row.account_id, detail={"reason": card})
        return None, "certificate"
    SESSIONS.touch(session, row)
    return account, "ok"


def sign_out(session: Session, token: str, account: PortalAccount | None) -> None:
    """End the session on the server."""
    SESSIONS.end(session, token, reason="sign_out")
    if account is not None:
        audit.record(session, "resident.sign_out", actor=f"account:{account.id}", actor_id=account.id)


def api_sign_out(session: Session, account: PortalAccount) -> None:
    """Revoke every API bearer token of ``account`` by raising its token version (one atomic UPDATE)."""
    session.execute(update(PortalAccount).where(PortalAccount.id == account.id)
                    .values(token_version=PortalAccount.token_version + 1))
    session.refresh(account)
    audit.record(session, "resident.api_sign_out", actor=f"account:{account.id}", actor_id=account.id)


@dataclass(frozen=True)
class _KnownSerial:
    # The CRL check looks only at the serial; the account keeps the serial and the issuer, not the certificate.
    serial_number: int


def auth_certificate_in_force(account: PortalAccount) -> str | None:
    """Why the account's authentication certificate no longer stands (expired, revoked, no CRL), or None.

    Read on every API request, as sign-in reads it: the CRL file is read fresh each time, so a
    revocation takes effect as soon as J-LIS republishes it. Any doubt refuses (fail closed).
    """
    now = clock.utcnow()
    if account.cert_not_after <= now:
        return "expired"
    config = trust()
    issuer = next((ca for ca in (*config.auth_anchors, *config.intermediates)
                   if key_identifier(ca).hex() == account.cert_issuer), None)
    if issuer is None:
        return "issuer_not_trusted"
    try:
        status = config.revocation_checker().status(
            cast(x509.Certificate, _KnownSerial(int(account.cert_serial))), issuer, now=now)
    except RevocationCheckFailed as exc:
        return str(exc.code.value).lower()
    return "revoked" if status.revoked else None


def _same_person(account: PortalAccount, name: str, birth_date: dt.date, sex: str) -> bool:
    """Whether a signature names the holder this account is linked to: name, birth date and sex.

    The address is left out on purpose: a move renews the signature certificate with the new
    address, and the resident links again with it. A change of name goes through the counter.
    """
    def canonical(text: str | None) -> str:
        return "".join(unicodedata.normalize("NFKC", text or "").split())

    return (canonical(account.name) == canonical(name) and account.birth_date == birth_date
            and account.sex == sex)


def link_identity(session: Session, *, account: PortalAccount, jws: str, nonce: str | None) -> PortalAccount:
    """Keep the four basic items of the signature certificate the resident just signed with (§3.6).

    Once linked, an account may be linked again only with a signature of the same person (a renewed
    signature certificate after a move); another person's signature raises IdentityMismatch.
    """
    store = nonces("sign")
    source = functools.partial(store.take, nonce) if nonce else None
    try:
        verified = verify_signed_application(jws, expected_nonce=source, expected_aud=current_app.config["SITE_ORIGIN"],
                                             trust=trust())
    except SignedApplicationError as exc:
        audit.record(session, "resident.link", outcome="failure", actor=f"account:{account.id}", actor_id=account.id,
                     detail={"code": str(exc.code), "certificate_serial": _serial(exc.certificate_serial)})
        raise
    if verified.application.get("purpose") != LINK_PURPOSE:
        audit.record(session, "resident.link", outcome="failure", actor=f"account:{account.id}", actor_id=account.id,
                     detail={"code": "WRONG_PURPOSE"})
        raise ValueError("the signed document is not an identity link")
    items = verified.items
    # The row is locked, so two links sent at once cannot both pass the check against the old state.
    session.refresh(account, with_for_update=True)
    if account.is_linked and not _same_person(account, items.name, items.birth_date, items.sex):
        audit.record(session, "resident.link", outcome="failure", actor=f"account:{account.id}", actor_id=account.id,
                     detail={"code": "IDENTITY_MISMATCH", "sign_certificate_serial": str(verified.serial)})
        raise IdentityMismatch("the signature names another person than the linked holder")
    account.linked_at = clock.utcnow()
    account.sign_cert_issuer, account.sign_cert_serial = verified.issuer_key_id, str(verified.serial)
    account.name, account.address = items.name, items.address
    account.birth_date, account.sex = items.birth_date, items.sex
    session.flush()
    audit.record(session, "resident.link", actor=f"account:{account.id}", actor_id=account.id,
                 detail={"sign_certificate_serial": str(verified.serial)})
    return account
