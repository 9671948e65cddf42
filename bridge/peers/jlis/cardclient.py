"""A Python stand-in for the card host: builds Web eID v2 sign-in tokens and signed-application JWS from a card file.

It produces exactly what a real card would: RSASSA-PKCS1-v1_5 with SHA-256 over the same bytes.
Tests use it, and so does the reference client in docs/api.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bridge.peers.jlis.virtualcard import CardDocument, load_card, open_slot, open_slot_file, slot_certificate
from core import clock
from core.jpki.encoding import b64url_encode

APP_VERSION = "https://jpki-sim.invalid/cardclient/1.0.0"
WEB_EID_FORMAT = "web-eid:1.0"
_LOOPBACK = ("http://127.0.0.1", "http://localhost", "http://[::1]")


def _check_challenge(origin: str, nonce: str) -> None:
    # What the Web eID app checks before it lets the card sign: a plausible nonce and an https origin.
    if not 44 <= len(nonce) <= 128:
        raise ValueError("the nonce must be 44-128 characters")
    loopback = any(origin == base or origin.startswith(base + ":") for base in _LOOPBACK)
    if not (origin.startswith("https://") or loopback) or origin.endswith("/") or len(origin) > 255:
        raise ValueError("the origin must be https://host[:port] without a trailing slash")


def _der_b64(certificate: x509.Certificate) -> str:
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode("ascii")


def sign_auth_challenge(
    private_key: rsa.RSAPrivateKey,
    certificate: x509.Certificate,
    *,
    origin: str,
    nonce: str,
    app_version: str = APP_VERSION,
) -> dict[str, str]:
    """Return a Web eID v2 token: RS256 over SHA-256(origin) ‖ SHA-256(nonce as base64 text)."""
    _check_challenge(origin, nonce)
    # Spelled out here rather than imported from core.jpki, so a mistake on one side cannot cancel the other.
    data = hashlib.sha256(origin.encode("utf-8")).digest() + hashlib.sha256(nonce.encode("utf-8")).digest()
    signature = private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return {
        "unverifiedCertificate": _der_b64(certificate),
        "algorithm": "RS256",
        "signature": base64.b64encode(signature).decode("ascii"),
        "format": WEB_EID_FORMAT,
        "appVersion": app_version,
    }


def _unlock(card: Path | str | CardDocument, slot: str, secret: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    if isinstance(card, (str, Path)):
        return open_slot_file(card, slot, secret)
    document = load_card(card)
    return open_slot(document, slot, secret), slot_certificate(document, slot)


def build_auth_token(
    card: Path | str | CardDocument, pin: str, *, origin: str, nonce: str, app_version: str = APP_VERSION
) -> dict[str, str]:
    """Unlock the card's auth slot with ``pin`` and sign the challenge (a card on disk keeps its try counter)."""
    key, certificate = _unlock(card, "auth", pin)
    return sign_auth_challenge(key, certificate, origin=origin, nonce=nonce, app_version=app_version)


def jws_signing_input(header: Mapping[str, Any], payload: Mapping[str, Any]) -> str:
    """Return ``b64url(header).b64url(payload)`` with compact UTF-8 JSON."""

    def encode(value: Mapping[str, Any]) -> str:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        return b64url_encode(text.encode("utf-8"))

    return f"{encode(header)}.{encode(payload)}"


def sign_application(
    private_key: rsa.RSAPrivateKey,
    certificate: x509.Certificate,
    *,
    aud: str,
    nonce: str,
    application: Mapping[str, Any],
    iat: int | None = None,
    claims: Mapping[str, Any] | None = None,
) -> str:
    """Return the signed-application JWS: RS256, x5c = [signature certificate], payload {aud, nonce, iat, application}.

    ``iat`` is the signing time (now unless given, as a card application stamps it); ``claims`` are the
    further claims the service asked to be signed (for an application: its ``moveId`` and ``parts``).
    """
    header = {"alg": "RS256", "x5c": [_der_b64(certificate)]}
    signed_at = int(clock.utcnow().timestamp()) if iat is None else iat
    payload = {"aud": aud, "nonce": nonce, "iat": signed_at, **dict(claims or {}), "application": dict(application)}
    signing_input = jws_signing_input(header, payload)
    signature = private_key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url_encode(signature)}"


def build_signed_application(
    card: Path | str | CardDocument, password: str, *, aud: str, nonce: str, application: Mapping[str, Any],
    iat: int | None = None, claims: Mapping[str, Any] | None = None,
) -> str:
    """Unlock the card's sign slot with ``password`` and sign the application (and ``claims``)."""
    key, certificate = _unlock(card, "sign", password)
    return sign_application(key, certificate, aud=aud, nonce=nonce, application=application, iat=iat, claims=claims)


def sign_challenge(
    card: Path | str | CardDocument, password: str, challenge: Mapping[str, Any],
    application: Mapping[str, Any] | None = None,
) -> str:
    """Sign what a service's challenge asks for, as the browser's card.js does.

    The challenge gives ``aud``, ``nonce`` and the signing time ``iat``; for an application also the
    ``moveId`` and ``parts`` to sign with it, and the ``application`` itself unless given here.
    """
    claims = {k: challenge[k] for k in ("moveId", "parts") if k in challenge}
    return build_signed_application(card, password, aud=challenge["aud"], nonce=challenge["nonce"],
                                    application=challenge["application"] if application is None else application,
                                    iat=challenge.get("iat"), claims=claims)
