"""Verification of a signed application: a JWS made with the card's digital-signature key (research §4, DESIGN.md)."""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from core.jpki.certificates import check_key, check_sign_purpose, decode_certificate, validate_path
from core.jpki.encoding import strict_b64url_decode, strict_json_loads
from core.jpki.errors import RefusalCode, SignedApplicationError
from core.jpki.nonces import NonceSource, resolve_nonce
from core.jpki.profile import KEY_SIZE, BasicItems, CertificatePurpose, parse_basic_items
from core.jpki.trust import TrustConfig, key_identifier

ALGORITHM = "RS256"
DEFAULT_MAX_JWS_LENGTH = 1_000_000
# How far a signing time (iat) may be ahead of this server's clock: the two clocks are never exactly equal.
FUTURE_SKEW = dt.timedelta(minutes=5)
# Header parameters that would make the signature depend on something other than the x5c certificate
# or change how the payload is read (RFC 7515 §4.1.11 crit, RFC 7797 b64); none of them is ever needed.
_REFUSED_HEADERS = frozenset({"crit", "jku", "jwk", "x5u", "b64"})


def jws_claims(jws: str) -> dict[str, Any]:
    """The claims of a compact JWS as they stand, NOT verified: for a JWS that was verified when it was stored,
    or to read the nonce the verification then checks. ValueError unless it holds a JSON object."""
    try:
        segment = jws.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (IndexError, ValueError) as exc:
        raise ValueError("not a compact JWS") from exc
    if not isinstance(claims, dict):
        raise ValueError("the JWS payload is not a JSON object")
    return claims


@dataclass(frozen=True)
class VerifiedApplication:
    """A verified signed application: the signature certificate, the signer's basic items and the application."""

    certificate: x509.Certificate
    issuer: str
    issuer_key_id: str
    serial: int
    fingerprint_sha256: str
    items: BasicItems
    application: dict[str, Any]
    claims: dict[str, Any]
    revocation_evidence: bytes
    verified_at: dt.datetime


def _segment(text: str, what: str) -> bytes:
    try:
        return strict_b64url_decode(text)
    except ValueError as exc:
        raise SignedApplicationError(RefusalCode.JWS_MALFORMED, f"{what} is not base64url") from exc


def _json_object(data: bytes, code: RefusalCode, what: str, serial: int | None = None) -> dict[str, Any]:
    try:
        value = strict_json_loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SignedApplicationError(code, f"{what} is not JSON", certificate_serial=serial) from exc
    if not isinstance(value, dict):
        raise SignedApplicationError(code, f"{what} is not a JSON object", certificate_serial=serial)
    return value


def signing_time(iat: Any) -> dt.datetime | None:
    """The signing time of the ``iat`` claim (a JSON integer of seconds since the epoch), or None if it is not one."""
    if isinstance(iat, bool) or not isinstance(iat, int):
        return None
    try:
        return dt.datetime.fromtimestamp(iat, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _check_signing_time(iat: Any, *, now: dt.datetime, max_age: dt.timedelta, serial: int) -> None:
    signed_at = signing_time(iat)
    if signed_at is None:
        raise SignedApplicationError(RefusalCode.PAYLOAD_INVALID, "iat is not a NumericDate", certificate_serial=serial)
    if signed_at < now - max_age:
        raise SignedApplicationError(
            RefusalCode.SIGNED_TOO_LONG_AGO, f"signed {now - signed_at} ago", certificate_serial=serial
        )
    if signed_at > now + FUTURE_SKEW:
        raise SignedApplicationError(
            RefusalCode.SIGNED_IN_FUTURE, f"signed {signed_at - now} ahead", certificate_serial=serial
        )


def verify_signed_application(
    jws: str,
    *,
    expected_nonce: NonceSource,
    expected_aud: str,
    trust: TrustConfig,
    expected_items: BasicItems | None = None,
    max_length: int = DEFAULT_MAX_JWS_LENGTH,
    max_age: dt.timedelta | None = None,
) -> VerifiedApplication:
    """Verify a signed-application JWS; raise SignedApplicationError with the reason otherwise.

    The JWS is compact, ``alg`` RS256 only, ``x5c`` holds exactly the signature certificate, which must
    chain to the signature anchors only, carry nonRepudiation and the signature policy, be valid and
    unrevoked now. The payload must name ``expected_aud`` and the sign challenge. ``expected_items``,
    when given, are the basic items of the signed-in resident; the signer's must match them.
    ``max_age``, when given, requires a signing time ``iat`` (seconds since the epoch) no older than that
    and at most ``FUTURE_SKEW`` ahead: a signature kept back (or replayed) later than that is refused.
    """
    now = trust.clock()
    nonce = resolve_nonce(expected_nonce, now=now, error=SignedApplicationError)
    if not isinstance(jws, str) or not jws.isascii() or len(jws) > max_length:
        raise SignedApplicationError(RefusalCode.JWS_MALFORMED, "not an ASCII string of acceptable length")
    parts = jws.split(".")
    if len(parts) != 3 or not all(parts):
        raise SignedApplicationError(RefusalCode.JWS_MALFORMED, "not three non-empty compact JWS segments")
    header_b64, payload_b64, signature_b64 = parts
    header = _json_object(_segment(header_b64, "header"), RefusalCode.JWS_MALFORMED, "header")
    payload_bytes = _segment(payload_b64, "payload")
    signature = _segment(signature_b64, "signature")
    # The algorithm is fixed before any cryptography; the header never chooses it.
    if header.get("alg") != ALGORITHM:
        raise SignedApplicationError(RefusalCode.ALGORITHM_UNSUPPORTED, f"alg {header.get('alg')!r}")
    refused = sorted(_REFUSED_HEADERS & header.keys())
    if refused:
        raise SignedApplicationError(RefusalCode.JWS_HEADER_UNSUPPORTED, f"header parameters {refused}")
    x5c = header.get("x5c")
    if not isinstance(x5c, list) or len(x5c) != 1:
        raise SignedApplicationError(RefusalCode.X5C_INVALID, "x5c must hold exactly the signature certificate")
    certificate = decode_certificate(x5c[0], error=SignedApplicationError, field_code=RefusalCode.X5C_INVALID)
    serial = certificate.serial_number
    public_key = check_key(certificate, error=SignedApplicationError)
    check_sign_purpose(certificate, trust=trust, error=SignedApplicationError)
    try:
        items = parse_basic_items(certificate)
    except ValueError as exc:
        raise SignedApplicationError(RefusalCode.BASIC_ITEMS_INVALID, str(exc), certificate_serial=serial) from exc
    validated = validate_path(
        certificate, purpose=CertificatePurpose.SIGN, trust=trust, now=now, error=SignedApplicationError
    )
    if len(signature) != KEY_SIZE // 8:
        raise SignedApplicationError(
            RefusalCode.SIGNATURE_LENGTH, f"signature is {len(signature)} bytes", certificate_serial=serial
        )
    signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
    try:
        public_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as exc:
        raise SignedApplicationError(
            RefusalCode.SIGNATURE_INVALID, "signature does not verify", certificate_serial=serial
        ) from exc
    # Only now, with the signature verified, is the payload read.
    claims = _json_object(payload_bytes, RefusalCode.PAYLOAD_INVALID, "payload", serial)
    aud = claims.get("aud")
    if not isinstance(aud, str) or not hmac.compare_digest(aud.encode("utf-8"), expected_aud.encode("utf-8")):
        raise SignedApplicationError(RefusalCode.AUDIENCE_MISMATCH, f"aud {aud!r}", certificate_serial=serial)
    if max_age is not None:
        _check_signing_time(claims.get("iat"), now=now, max_age=max_age, serial=serial)
    signed_nonce = claims.get("nonce")
    if not isinstance(signed_nonce, str) or not hmac.compare_digest(
        signed_nonce.encode("utf-8"), nonce.encode("utf-8")
    ):
        raise SignedApplicationError(
            RefusalCode.NONCE_MISMATCH, "nonce differs from the sign challenge", certificate_serial=serial
        )
    application = claims.get("application")
    if not isinstance(application, dict):
        raise SignedApplicationError(
            RefusalCode.PAYLOAD_INVALID, "application is not a JSON object", certificate_serial=serial
        )
    if expected_items is not None and not items.matches(expected_items):
        raise SignedApplicationError(
            RefusalCode.IDENTITY_MISMATCH, "signer's basic items differ from the resident's", certificate_serial=serial
        )
    return VerifiedApplication(
        certificate=certificate,
        issuer=certificate.issuer.rfc4514_string(),
        issuer_key_id=key_identifier(validated.issuer_certificate).hex(),
        serial=serial,
        fingerprint_sha256=certificate.fingerprint(hashes.SHA256()).hex(),
        items=items,
        application=application,
        claims=claims,
        revocation_evidence=validated.revocation.evidence,
        verified_at=now,
    )
