"""Verification of a Web eID v2 sign-in token made with the card's user-authentication key (research §3.4)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from core.jpki.certificates import check_auth_purpose, check_key, decode_certificate, validate_path
from core.jpki.encoding import strict_b64decode, strict_json_loads
from core.jpki.errors import AuthTokenError, RefusalCode
from core.jpki.nonces import NonceSource, resolve_nonce
from core.jpki.profile import KEY_SIZE, CertificatePurpose
from core.jpki.trust import TrustConfig, key_identifier

MIN_TOKEN_LENGTH = 100
MAX_TOKEN_LENGTH = 10_000
ALGORITHM = "RS256"
# Stricter than the Java validator's startsWith("web-eid:1"), which would accept "web-eid:10".
_FORMAT = re.compile(r"^web-eid:1(\.[0-9]+)?$")


def auth_signed_data(origin: str, nonce: str) -> bytes:
    """Return the 64 bytes a card signs to sign in: SHA-256(origin) ‖ SHA-256(nonce as its base64 text)."""
    return hashlib.sha256(origin.encode("utf-8")).digest() + hashlib.sha256(nonce.encode("utf-8")).digest()


@dataclass(frozen=True)
class VerifiedAuth:
    """A verified sign-in: the authentication certificate, which names no person, identifies the card."""

    certificate: x509.Certificate
    issuer: str
    issuer_key_id: str
    serial: int
    fingerprint_sha256: str
    not_after: dt.datetime

    @property
    def account_key(self) -> str:
        """Return the stable portal account key: issuer key id and serial (DNs repeat across CA generations)."""
        return f"{self.issuer_key_id}:{self.serial:x}"


def _parse(token: object) -> Mapping[str, Any]:
    if isinstance(token, Mapping):
        try:
            text = json.dumps(token, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise AuthTokenError(RefusalCode.TOKEN_MALFORMED, "token is not JSON-serialisable") from exc
        parsed: object = token
    elif isinstance(token, (str, bytes)):
        if isinstance(token, bytes):
            try:
                text = token.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise AuthTokenError(RefusalCode.TOKEN_MALFORMED, "token is not UTF-8") from exc
        else:
            text = token
        parsed = None
    else:
        raise AuthTokenError(RefusalCode.TOKEN_MALFORMED, f"token is a {type(token).__name__}, not a JSON object")
    # Measured before parsing so an oversized body costs nothing more than its length check.
    if not MIN_TOKEN_LENGTH <= len(text) <= MAX_TOKEN_LENGTH:
        raise AuthTokenError(RefusalCode.TOKEN_SIZE, f"token is {len(text)} characters")
    if parsed is None:
        try:
            parsed = strict_json_loads(text)
        except ValueError as exc:
            raise AuthTokenError(RefusalCode.TOKEN_MALFORMED, "token is not valid JSON") from exc
    if not isinstance(parsed, Mapping):
        raise AuthTokenError(RefusalCode.TOKEN_MALFORMED, "token is not a JSON object")
    return parsed


def verify_auth_token(token: object, *, nonce: NonceSource, trust: TrustConfig) -> VerifiedAuth:
    """Verify a Web eID v2 token in the order of research §3.4; raise AuthTokenError with the reason otherwise.

    The origin comes only from ``trust.origin`` and the nonce only from the server-side store; fields
    such as ``origin`` or ``nonce`` inside the token are ignored. The caller must treat every refusal
    the same way towards the client (``AuthTokenError.user_hint``) and log ``code`` and the serial.
    """
    now = trust.clock()
    # 1. The nonce goes first, so it is spent even when the token turns out to be bad.
    expected_nonce = resolve_nonce(nonce, now=now, error=AuthTokenError)
    # 2. Shape, size and format.
    fields = _parse(token)
    token_format = fields.get("format")
    if not isinstance(token_format, str) or not _FORMAT.match(token_format):
        raise AuthTokenError(RefusalCode.FORMAT_UNSUPPORTED, f"format {token_format!r}")
    # 3. The algorithm is fixed before any cryptography: a JPKI card signs only RSASSA-PKCS1-v1_5.
    if fields.get("algorithm") != ALGORITHM:
        raise AuthTokenError(RefusalCode.ALGORITHM_UNSUPPORTED, f"algorithm {fields.get('algorithm')!r}")
    # 4. Certificate and signature fields, strictly decoded.
    certificate = decode_certificate(
        fields.get("unverifiedCertificate"), error=AuthTokenError, field_code=RefusalCode.CERT_FIELD_INVALID
    )
    serial = certificate.serial_number
    signature_text = fields.get("signature")
    if not isinstance(signature_text, str) or not signature_text:
        raise AuthTokenError(RefusalCode.SIGNATURE_FIELD_INVALID, "signature missing", certificate_serial=serial)
    try:
        signature = strict_b64decode(signature_text)
    except ValueError as exc:
        raise AuthTokenError(
            RefusalCode.SIGNATURE_FIELD_INVALID, "signature is not strict base64", certificate_serial=serial
        ) from exc
    # 5-6. Key and purpose of the authentication profile.
    public_key = check_key(certificate, error=AuthTokenError)
    check_auth_purpose(certificate, trust=trust, error=AuthTokenError)
    # 7-8. Path to the authentication anchors only, validity, revocation.
    validated = validate_path(certificate, purpose=CertificatePurpose.AUTH, trust=trust, now=now, error=AuthTokenError)
    # 9. The signature over data rebuilt from trusted local state.
    if len(signature) != KEY_SIZE // 8:
        raise AuthTokenError(
            RefusalCode.SIGNATURE_LENGTH, f"signature is {len(signature)} bytes", certificate_serial=serial
        )
    try:
        data = auth_signed_data(trust.origin, expected_nonce)
        public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as exc:
        raise AuthTokenError(
            RefusalCode.SIGNATURE_INVALID, "signature does not verify", certificate_serial=serial
        ) from exc
    return VerifiedAuth(
        certificate=certificate,
        issuer=certificate.issuer.rfc4514_string(),
        issuer_key_id=key_identifier(validated.issuer_certificate).hex(),
        serial=serial,
        fingerprint_sha256=certificate.fingerprint(hashes.SHA256()).hex(),
        not_after=certificate.not_valid_after_utc,
    )
