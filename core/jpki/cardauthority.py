"""The card authority (J-LIS) as the back office sees it: issue, revoke, hold, status, linkage, publish.

``CardAuthority`` is the interface; ``card_authority`` returns the implementation the configuration
names (``CARD_AUTHORITY``, default ``simulator``: the simulated J-LIS of ``bridge/peers/jlis``, refused
outside development and test). A real J-LIS connection would be another entry of ``AUTHORITIES``.
The data types both sides share (the holder, the issued card, the revocation reasons, the card's
証明書紐付け) and the rules of J-LIS every implementation keeps (the certificates' validity) live here,
so callers never import an implementation.
"""

from __future__ import annotations

import datetime as dt
import enum
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from core.config import ConfigError
from core.jpki.profile import SEX_CODES, BasicItems

# 署名用電子証明書: not issued to a holder under 15 (公的個人認証法; J-LIS).
SIGNATURE_MINIMUM_AGE = 15
# PBKDF2 rounds protecting the keys of a card file (the floor outside tests).
DEFAULT_CARD_FILE_ITERATIONS = 600_000
# CARD_AUTHORITY → the implementation, as ``module:Class`` (imported only when chosen).
AUTHORITIES = {"simulator": "bridge.peers.jlis.authority:SimulatedCardAuthority"}


class IssuanceRefused(ValueError):
    """Raised when J-LIS would not issue the requested certificate (e.g. a signature certificate for an under-15)."""


class RevocationReason(enum.StrEnum):
    """Revocation reasons the simulator uses, named as in RFC 5280 and the platform operators' APIs."""

    KEY_COMPROMISE = "keyCompromise"  # 秘密鍵危殆化
    AFFILIATION_CHANGED = "affiliationChanged"  # 記載内容変更: the four items changed
    CERTIFICATE_HOLD = "certificateHold"  # 一時保留: card reported lost
    SUPERSEDED = "superseded"  # 更新: renewed

    @property
    def flag(self) -> x509.ReasonFlags:
        """Return the CRL reason code."""
        return x509.ReasonFlags(self.value)


@dataclass(frozen=True)
class Holder:
    """A card holder as the municipality registers them; the signature certificate carries these items."""

    name: str
    birth_date: dt.date
    sex: str
    address: str
    name_alt: str | None = None
    address_alt: str | None = None
    prefecture: str = ""
    municipality: str = ""

    def __post_init__(self) -> None:
        if not self.name.strip() or not self.address.strip():
            raise ValueError("a holder needs a name and an address")
        if self.sex not in SEX_CODES:
            raise ValueError(f"sex must be one of {sorted(SEX_CODES)} (1 male, 2 female, 3 not stated)")

    def basic_items(self) -> BasicItems:
        """Return the holder's four basic items (and substitute forms) as the certificate will carry them."""
        return BasicItems(
            name=self.name,
            sex=self.sex,
            birth_date=self.birth_date,
            address=self.address,
            name_alt=self.name_alt if self.name_alt is not None else self.name,
            address_alt=self.address_alt if self.address_alt is not None else self.address,
        )


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate fresh from the CA with its private key (which only the card file will keep)."""

    certificate: x509.Certificate
    private_key: rsa.RSAPrivateKey
    issuer_certificate: x509.Certificate

    @property
    def serial(self) -> int:
        """Return the certificate serial number."""
        return self.certificate.serial_number


@dataclass(frozen=True)
class IssuedCard:
    """Both certificates of one card; ``sign`` is None for a card without a signature certificate."""

    card_id: str
    auth: IssuedCertificate
    sign: IssuedCertificate | None


@dataclass(frozen=True)
class CardLinkage:
    """A card's 証明書紐付け情報 (auth and sign serials) and 新旧紐付け (the cards it replaced or was replaced by)."""

    card_id: str
    auth_serial: int
    sign_serial: int | None
    previous_sign_serials: tuple[int, ...]
    replaces: str | None
    replaced_by: str | None


def _birthday_in(birth_date: dt.date, year: int) -> dt.date:
    try:
        return birth_date.replace(year=year)
    except ValueError:
        # 29 February in a common year: take 28 February, so a certificate never outlives the rule.
        return dt.date(year, 2, 28)


def validity_end_date(birth_date: dt.date, issued_on: dt.date, *, birthdays: int = 5) -> dt.date:
    """Return the holder's ``birthdays``-th birthday strictly after ``issued_on`` (発行日後5回目の誕生日)."""
    first = _birthday_in(birth_date, issued_on.year)
    if first <= issued_on:
        first = _birthday_in(birth_date, issued_on.year + 1)
    return _birthday_in(birth_date, first.year + birthdays - 1)


class CardAuthority(Protocol):
    """The certificate authority for card certificates (J-LIS): issue, revoke, hold, status, linkage, publish.

    Serials are the certificates' X.509 serial numbers; a serial the authority never issued raises LookupError.
    """

    def issue(
        self, holder: Holder, *, card_expires_on: dt.date, with_signature: bool, replaces_serial: int | None = None
    ) -> IssuedCard:
        """Generate the card's key pairs and certify them; ``replaces_serial`` names the renewed card's auth serial."""
        ...

    def write_card(self, issued: IssuedCard, pin: str, password: str | None, *, iterations: int) -> bytes:
        """The card as the holder receives it (here: the virtual card file, UTF-8 JSON), keys locked by PIN/password."""
        ...

    def revoke(self, serial: int, reason: RevocationReason) -> bool:
        """Revoke a certificate; return False when it was already revoked (a hold may still become permanent)."""
        ...

    def suspend(self, serial: int) -> bool:
        """Put a certificate on hold (certificateHold, a lost card); return False when it already was revoked."""
        ...

    def release_hold(self, serial: int) -> bool:
        """Lift a certificateHold; return False when the certificate was not on hold."""
        ...

    def status(self, serial: int) -> RevocationReason | None:
        """Return why the certificate is revoked, or None while it is valid."""
        ...

    def publish(self) -> None:
        """Publish fresh CRLs (and the trust anchors) where the portal and the back office read them."""
        ...

    def sign_serials_of_card(self, auth_serial: int) -> tuple[int, ...]:
        """The 証明書紐付け情報: the signature certificate serials of the card with auth certificate ``auth_serial``."""
        ...


def card_authority(config: Mapping[str, Any]) -> CardAuthority:
    """The CardAuthority ``CARD_AUTHORITY`` names (default ``simulator``); refuses a name nobody built."""
    kind = str(config.get("CARD_AUTHORITY") or "simulator")
    target = AUTHORITIES.get(kind)
    if target is None:
        raise ConfigError(f"CARD_AUTHORITY {kind!r} is not available; built: {', '.join(sorted(AUTHORITIES))}")
    module_name, _, class_name = target.partition(":")
    implementation = getattr(importlib.import_module(module_name), class_name)
    return cast(CardAuthority, implementation(config))

