"""Sign-in token verification (research/card-auth.md §3.4) and the negative cases of §5 that the library owns.

Each negative test changes exactly one thing of a valid ("golden") Web eID token and asserts the
internal refusal code. Cases covered here: T1-T7, N1, N2, N6, N8, O1, S1-S6, C1-C13, R1, R2, R4.
Elsewhere: N3, N4, N7 (tests/core/test_jpki_nonces.py, real Redis), O3 (test_jpki_origin.py),
R3 and G1-G4 (test_jpki_signed_application.py), K1-K5 (tests/bridge/test_jlis_virtualcard.py).
Left to the web layer, because they concern HTTP sessions, headers and cookies rather than the
token: N5 (login CSRF across sessions), N9 (CSRF header missing, nonce not consumed), O2 (spoofed
Host / X-Forwarded-Host), L1 (session id rotated at sign-in), L2 (cookie flags).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bridge.peers.jlis import RevocationReason
from bridge.peers.jlis.cardclient import sign_auth_challenge
from bridge.peers.jlis.simulator import CaId, IssuedCard
from bridge.peers.jlis.testkit import MutableClock, SimulatedPki, build_certificate, key_usage, make_root
from core.config import ConfigError
from core.jpki import (
    AuthTokenError,
    CertificatePurpose,
    ConsumedNonce,
    RefusalCode,
    TrustConfig,
    VerifiedAuth,
    verify_auth_token,
)
from core.jpki.profile import AUTH_POLICY, AUTH_POLICY_ARC, SIGN_POLICY

Key = Any


@pytest.fixture(scope="module")
def other_roots() -> Iterator[tuple[tuple[x509.Certificate, Key], tuple[x509.Certificate, Key]]]:
    """Two CAs outside the simulator, standing in for foreign or real J-LIS roots."""
    now = dt.datetime.now(dt.UTC)
    names = [
        x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, o)])
        for o in ("JPKI", "Foreign CA")
    ]
    yield tuple(  # type: ignore[misc]
        make_root(name, not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=3650))
        for name in names
    )


def jp_name(common_name: str) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    return x509.Name(attributes)


def new_nonce() -> str:
    """A fresh 44-character challenge nonce, as the server issues them."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def consumed(nonce: str, clock: MutableClock) -> ConsumedNonce:
    """The nonce as the store hands it back after GETDEL: issued a moment ago, valid for 300 s."""
    return ConsumedNonce(nonce, clock.now - dt.timedelta(seconds=1), clock.now + dt.timedelta(seconds=299))


def der_b64(certificate: x509.Certificate) -> str:
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()


def signed_data(origin: str, nonce: str) -> bytes:
    return hashlib.sha256(origin.encode()).digest() + hashlib.sha256(nonce.encode()).digest()


def token_over(certificate: x509.Certificate, key: Key, data: bytes, **fields: Any) -> dict[str, Any]:
    """A token whose signature is RS256 by ``key`` over ``data`` (whatever that is), with ``fields`` replaced."""
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = key.sign(data, ec.ECDSA(hashes.SHA256()))
    token = {
        "unverifiedCertificate": der_b64(certificate),
        "algorithm": "RS256",
        "signature": base64.b64encode(signature).decode(),
        "format": "web-eid:1.0",
        "appVersion": "https://web-eid.eu/web-eid-app/releases/2.0.0",
    }
    token.update(fields)
    return token


def golden(card: IssuedCard, pki: SimulatedPki, nonce: str) -> dict[str, str]:
    """A valid token from ``card`` for the configured origin and ``nonce``."""
    return sign_auth_challenge(card.auth.private_key, card.auth.certificate, origin=pki.origin, nonce=nonce)


def verify(token: Any, nonce: str, trust: TrustConfig, clock: MutableClock) -> VerifiedAuth:
    return verify_auth_token(token, nonce=consumed(nonce, clock), trust=trust)


def refusal(token: Any, nonce: str, trust: TrustConfig, clock: MutableClock) -> AuthTokenError:
    with pytest.raises(AuthTokenError) as caught:
        verify(token, nonce, trust, clock)
    return caught.value


def leaf_token(pki: SimulatedPki, nonce: str, **leaf: Any) -> dict[str, Any]:
    """A correctly signed token whose certificate differs from a card's by ``leaf`` (see SimulatedPki.leaf)."""
    certificate, key = pki.leaf(**leaf)
    return token_over(certificate, key, signed_data(pki.origin, nonce))


# -- positive ---------------------------------------------------------------------------------------


def test_a_golden_token_from_a_second_generation_card_signs_in(pki: SimulatedPki, card: IssuedCard, trust: TrustConfig):
    nonce = new_nonce()
    result = verify(golden(card, pki, nonce), nonce, trust, pki.clock)
    assert result.serial == card.auth.serial
    assert result.certificate == card.auth.certificate
    assert result.issuer == card.auth.certificate.issuer.rfc4514_string()
    generation_2 = pki.sim.ca_certificate(CaId(CertificatePurpose.AUTH, 2))
    assert result.issuer_key_id == generation_2.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier
    ).value.digest.hex()
    assert result.account_key == f"{result.issuer_key_id}:{card.auth.serial:x}"


def test_a_golden_token_from_a_first_generation_card_signs_in(pki: SimulatedPki, trust: TrustConfig):
    old_card = pki.issue_card(generation=1)
    nonce = new_nonce()
    result = verify(golden(old_card, pki, nonce), nonce, trust, pki.clock)
    assert result.serial == old_card.auth.serial
    # Both generations share one DN; the account key still tells them apart by the issuer's key.
    new_card_issuer = pki.sim.ca_certificate(CaId(CertificatePurpose.AUTH, 2))
    assert old_card.auth.certificate.issuer == new_card_issuer.subject
    assert result.issuer_key_id != new_card_issuer.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier
    ).value.digest.hex()


def test_a_token_given_as_json_text_or_bytes_verifies_like_the_object(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig
):
    for encode in (json.dumps, lambda t: json.dumps(t).encode()):
        nonce = new_nonce()
        assert verify(encode(golden(card, pki, nonce)), nonce, trust, pki.clock).serial == card.auth.serial


def test_the_nonce_is_consumed_before_the_token_is_even_parsed(trust: TrustConfig):
    taken: list[str] = []

    def lookup() -> ConsumedNonce | None:
        taken.append("taken")
        return None

    with pytest.raises(AuthTokenError) as caught:
        verify_auth_token("not even JSON", nonce=lookup, trust=trust)
    assert caught.value.code is RefusalCode.NONCE_NOT_FOUND
    assert taken == ["taken"]


def test_the_algorithm_is_refused_before_the_certificate_is_decoded(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig
):
    nonce = new_nonce()
    token = golden(card, pki, nonce) | {"algorithm": "none", "unverifiedCertificate": "bm90IGEgY2VydA=="}
    assert refusal(token, nonce, trust, pki.clock).code is RefusalCode.ALGORITHM_UNSUPPORTED


def test_a_refusal_carries_the_certificate_serial_for_the_log(pki: SimulatedPki, card: IssuedCard, trust: TrustConfig):
    nonce = new_nonce()
    error = refusal(golden(card, pki, new_nonce()), nonce, trust, pki.clock)
    assert error.code is RefusalCode.SIGNATURE_INVALID
    assert error.certificate_serial == card.auth.serial
    assert error.user_hint == "authentication_failed"


# -- T: token structure -----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["null", "list", "json array", "not json", "duplicate member"])
def test_a_token_that_is_not_a_single_json_object_is_refused(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig, variant: str
):
    """T1: body not JSON, authToken null, the token an array, or ambiguous JSON."""
    nonce = new_nonce()
    token = golden(card, pki, nonce)
    text = json.dumps(token)
    mutated = {
        "null": None,
        "list": [token],
        "json array": f"[{text}]",
        "not json": "x" * 200,
        "duplicate member": text[:-1] + ', "algorithm": "RS256"}',
    }[variant]
    assert refusal(mutated, nonce, trust, pki.clock).code is RefusalCode.TOKEN_MALFORMED


@pytest.mark.parametrize("variant", ["99 characters", "10001 characters"])
def test_a_token_shorter_than_100_or_longer_than_10000_characters_is_refused(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig, variant: str
):
    """T2."""
    nonce = new_nonce()
    token = golden(card, pki, nonce)
    if variant == "99 characters":
        mutated: Any = json.dumps(token)[:99]
    else:
        padding_field = "p" * (10_001 - len(json.dumps(token | {"x": ""}, separators=(",", ":"))))
        mutated = token | {"x": padding_field}
        assert len(json.dumps(mutated, separators=(",", ":"))) == 10_001
    assert refusal(mutated, nonce, trust, pki.clock).code is RefusalCode.TOKEN_SIZE


@pytest.mark.parametrize("value", ["<missing>", "web-eid:2", "web-eid:10", "jpki:1", "web-eid:1.", 1, "WEB-EID:1.0"])
def test_a_token_of_an_unknown_format_is_refused(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig, value: Any
):
    """T3."""
    nonce = new_nonce()
    token: dict[str, Any] = golden(card, pki, nonce)
    if value == "<missing>":
        del token["format"]
    else:
        token["format"] = value
    assert refusal(token, nonce, trust, pki.clock).code is RefusalCode.FORMAT_UNSUPPORTED


def test_format_web_eid_1_without_a_minor_version_is_accepted(pki: SimulatedPki, card: IssuedCard, trust: TrustConfig):
    nonce = new_nonce()
    assert verify(golden(card, pki, nonce) | {"format": "web-eid:1"}, nonce, trust, pki.clock)


@pytest.mark.parametrize(
    ("variant", "code"),
    [
        ("missing", RefusalCode.CERT_FIELD_INVALID),
        ("empty", RefusalCode.CERT_FIELD_INVALID),
        ("number", RefusalCode.CERT_FIELD_INVALID),
        ("array", RefusalCode.CERT_FIELD_INVALID),
        ("not base64", RefusalCode.CERT_FIELD_INVALID),
        ("base64url alphabet", RefusalCode.CERT_FIELD_INVALID),
        ("padding removed", RefusalCode.CERT_FIELD_INVALID),
        ("line break", RefusalCode.CERT_FIELD_INVALID),
        ("base64 but not DER", RefusalCode.CERT_NOT_DER),
        ("DER with trailing bytes", RefusalCode.CERT_NOT_DER),
    ],
)
def test_a_certificate_field_that_is_not_strict_base64_der_is_refused(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig, variant: str, code: RefusalCode
):
    """T4."""
    nonce = new_nonce()
    token: dict[str, Any] = golden(card, pki, nonce)
    if variant == "padding removed":
        # A certificate whose DER length is not a multiple of 3, so its base64 has padding to remove.
        for length in range(3):
            token = leaf_token(pki, nonce, subject=jp_name("LEAF" + "x" * length))
            if token["unverifiedCertificate"].endswith("="):
                break
    cert = token["unverifiedCertificate"]
    der = base64.b64decode(cert)
    mutations: dict[str, Any] = {
        "empty": "",
        "number": 12345,
        "array": [cert],
        "not base64": "%%%" + cert[3:],
        "base64url alphabet": cert.replace("+", "-").replace("/", "_"),
        "padding removed": cert.rstrip("="),
        "line break": cert[:64] + "\n" + cert[64:],
        "base64 but not DER": base64.b64encode(b"certainly not a certificate").decode(),
        "DER with trailing bytes": base64.b64encode(der + b"\0\0\0").decode(),
    }
    if variant == "missing":
        del token["unverifiedCertificate"]
    else:
        token["unverifiedCertificate"] = mutations[variant]
        assert token["unverifiedCertificate"] != cert
    assert refusal(token, nonce, trust, pki.clock).code is code


@pytest.mark.parametrize("value", ["<missing>", "", "none", "HS256", "rs256", "PS256", "ES256", "RS512", None])
def test_any_algorithm_but_rs256_is_refused(pki: SimulatedPki, card: IssuedCard, trust: TrustConfig, value: Any):
    """T5."""
    nonce = new_nonce()
    token: dict[str, Any] = golden(card, pki, nonce)
    if value == "<missing>":
        del token["algorithm"]
    else:
        token["algorithm"] = value
    assert refusal(token, nonce, trust, pki.clock).code is RefusalCode.ALGORITHM_UNSUPPORTED


@pytest.mark.parametrize(
    ("variant", "code"),
    [
        ("missing", RefusalCode.SIGNATURE_FIELD_INVALID),
        ("empty", RefusalCode.SIGNATURE_FIELD_INVALID),
        ("not base64", RefusalCode.SIGNATURE_FIELD_INVALID),
        ("255 bytes", RefusalCode.SIGNATURE_LENGTH),
        ("257 bytes", RefusalCode.SIGNATURE_LENGTH),
    ],
)
def test_a_signature_field_that_is_missing_or_the_wrong_size_is_refused(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig, variant: str, code: RefusalCode
):
    """T6."""
    nonce = new_nonce()
    token: dict[str, Any] = golden(card, pki, nonce)
    signature = base64.b64decode(token["signature"])
    mutations = {
        "empty": "",
        "not base64": "*" + token["signature"][1:],
        "255 bytes": base64.b64encode(signature[:255]).decode(),
        "257 bytes": base64.b64encode(signature + b"\0").decode(),
    }
    if variant == "missing":
        del token["signature"]
    else:
        token["signature"] = mutations[variant]
    assert refusal(token, nonce, trust, pki.clock).code is code


def test_origin_nonce_and_claims_carried_in_the_token_are_ignored(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig
):
    """T7: attacker values in extra fields change nothing; the same token without them gives the same result."""
    nonce = new_nonce()
    token = golden(card, pki, nonce)
    extra = {"origin": "https://evil.example", "nonce": new_nonce(), "iat": 0, "sub": "someone-else"}
    with_extra = verify(token | extra, nonce, trust, pki.clock)
    nonce_2 = new_nonce()
    without = verify(golden(card, pki, nonce_2), nonce_2, trust, pki.clock)
    assert with_extra == without


# -- N: nonce ---------------------------------------------------------------------------------------


def test_a_token_without_a_prior_challenge_is_refused(pki: SimulatedPki, card: IssuedCard, trust: TrustConfig):
    """N1 (library part: the session holds no nonce); with a real store see test_jpki_nonces.py."""
    with pytest.raises(AuthTokenError) as caught:
        verify_auth_token(golden(card, pki, new_nonce()), nonce=None, trust=trust)
    assert caught.value.code is RefusalCode.NONCE_NOT_FOUND


def test_a_nonce_older_than_its_ttl_is_refused(pki: SimulatedPki, card: IssuedCard, trust: TrustConfig):
    """N2: the clock stands at issue + 301 s."""
    nonce = new_nonce()
    issued = pki.clock.now - dt.timedelta(seconds=301)
    stale = ConsumedNonce(nonce, issued, issued + dt.timedelta(seconds=300))
    with pytest.raises(AuthTokenError) as caught:
        verify_auth_token(golden(card, pki, nonce), nonce=stale, trust=trust)
    assert caught.value.code is RefusalCode.NONCE_EXPIRED
    assert caught.value.user_hint == "retry"


def test_a_token_signed_over_an_earlier_challenge_is_refused(pki: SimulatedPki, card: IssuedCard, trust: TrustConfig):
    """N6: a second challenge replaced the first; the token was signed over the first."""
    first, second = new_nonce(), new_nonce()
    assert refusal(golden(card, pki, first), second, trust, pki.clock).code is RefusalCode.SIGNATURE_INVALID


def test_a_token_signed_over_the_base64_decoded_nonce_is_refused(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig
):
    """N8: the interop trap; the nonce is hashed as its base64 text."""
    nonce = new_nonce()
    data = hashlib.sha256(pki.origin.encode()).digest() + hashlib.sha256(base64.b64decode(nonce)).digest()
    token = token_over(card.auth.certificate, card.auth.private_key, data)
    assert refusal(token, nonce, trust, pki.clock).code is RefusalCode.SIGNATURE_INVALID


# -- O: origin --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "https://other.example-city.lg.jp",
        "http://shinsei.example-city.lg.jp",
        "https://shinsei.example-city.lg.jp:8443",
        "https://shinsei.example-city.lg.jp/",
        "https://shinsei.example-city.lg.jp/auth",
        "https://SHINSEI.example-city.lg.jp",
        "https://shinsei.example-city.lg.jp.evil",
    ],
)
def test_a_token_signed_for_another_origin_is_refused(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig, origin: str
):
    """O1."""
    nonce = new_nonce()
    token = token_over(card.auth.certificate, card.auth.private_key, signed_data(origin, nonce))
    assert refusal(token, nonce, trust, pki.clock).code is RefusalCode.SIGNATURE_INVALID


# -- S: signature and algorithm confusion -----------------------------------------------------------


@pytest.mark.parametrize("variant", ["nonce only", "unhashed concatenation", "sha-384 hashes", "hashed twice"])
def test_a_signature_over_the_wrong_data_is_refused(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig, variant: str
):
    """S1."""
    nonce = new_nonce()
    origin, good = pki.origin.encode(), signed_data(pki.origin, nonce)
    data = {
        "nonce only": hashlib.sha256(nonce.encode()).digest(),
        "unhashed concatenation": origin + nonce.encode(),
        "sha-384 hashes": hashlib.sha384(origin).digest() + hashlib.sha384(nonce.encode()).digest(),
        "hashed twice": hashlib.sha256(good).digest(),
    }[variant]
    token = token_over(card.auth.certificate, card.auth.private_key, data)
    assert refusal(token, nonce, trust, pki.clock).code is RefusalCode.SIGNATURE_INVALID


def test_a_certificate_with_a_signature_by_another_cards_key_is_refused(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig
):
    """S2."""
    other = pki.issue_card()
    nonce = new_nonce()
    token = token_over(card.auth.certificate, other.auth.private_key, signed_data(pki.origin, nonce))
    assert refusal(token, nonce, trust, pki.clock).code is RefusalCode.SIGNATURE_INVALID


@pytest.mark.parametrize(
    ("variant", "code"),
    [
        ("PS256 label on PKCS#1 v1.5", RefusalCode.ALGORITHM_UNSUPPORTED),
        ("PSS labelled RS256", RefusalCode.SIGNATURE_INVALID),
    ],
)
def test_pss_and_pkcs1_are_never_confused(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig, variant: str, code: RefusalCode
):
    """S3."""
    nonce = new_nonce()
    data = signed_data(pki.origin, nonce)
    if variant.startswith("PS256"):
        token = token_over(card.auth.certificate, card.auth.private_key, data, algorithm="PS256")
    else:
        pss = card.auth.private_key.sign(
            data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256()
        )
        token = token_over(card.auth.certificate, card.auth.private_key, data)
        token["signature"] = base64.b64encode(pss).decode()
    assert refusal(token, nonce, trust, pki.clock).code is code


def test_an_hmac_keyed_with_the_certificates_public_key_is_refused(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig
):
    """S4: the CVE-2024-33663 class of algorithm confusion."""
    nonce = new_nonce()
    public_pem = card.auth.certificate.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    mac = hmac.new(public_pem, signed_data(pki.origin, nonce), hashlib.sha256).digest()
    token = golden(card, pki, nonce) | {"algorithm": "HS256", "signature": base64.b64encode(mac).decode()}
    assert refusal(token, nonce, trust, pki.clock).code is RefusalCode.ALGORITHM_UNSUPPORTED


def test_an_ecdsa_algorithm_with_an_rsa_certificate_is_refused(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig
):
    """S5."""
    nonce = new_nonce()
    token = golden(card, pki, nonce) | {"algorithm": "ES256"}
    assert refusal(token, nonce, trust, pki.clock).code is RefusalCode.ALGORITHM_UNSUPPORTED


@pytest.mark.parametrize(
    ("variant", "code"),
    [("one bit flipped", RefusalCode.SIGNATURE_INVALID), ("truncated", RefusalCode.SIGNATURE_LENGTH)],
)
def test_a_damaged_signature_is_refused(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig, variant: str, code: RefusalCode
):
    """S6."""
    nonce = new_nonce()
    token = golden(card, pki, nonce)
    signature = bytearray(base64.b64decode(token["signature"]))
    if variant == "one bit flipped":
        signature[100] ^= 0x01
    else:
        signature = signature[:200]
    token["signature"] = base64.b64encode(bytes(signature)).decode()
    assert refusal(token, nonce, trust, pki.clock).code is code


# -- C: certificate ---------------------------------------------------------------------------------


def test_an_expired_certificate_is_refused(pki: SimulatedPki, trust: TrustConfig):
    """C1: not_after = now - 1 s."""
    nonce = new_nonce()
    token = leaf_token(pki, nonce, not_after=pki.clock.now.replace(microsecond=0) - dt.timedelta(seconds=1))
    error = refusal(token, nonce, trust, pki.clock)
    assert error.code is RefusalCode.CERT_EXPIRED
    assert error.user_hint == "certificate_expired"


def test_a_certificate_not_yet_valid_is_refused(pki: SimulatedPki, trust: TrustConfig):
    """C2."""
    nonce = new_nonce()
    token = leaf_token(pki, nonce, not_before=pki.clock.now + dt.timedelta(hours=1))
    assert refusal(token, nonce, trust, pki.clock).code is RefusalCode.CERT_NOT_YET_VALID


@pytest.mark.parametrize(
    ("variant", "code"),
    [("expired", RefusalCode.CA_CERT_EXPIRED), ("not yet valid", RefusalCode.CA_CERT_NOT_YET_VALID)],
)
def test_a_certificate_under_a_trusted_ca_that_is_not_valid_now_is_refused(
    pki: SimulatedPki, trust: TrustConfig, variant: str, code: RefusalCode
):
    """C3: the anchor itself must be valid at "now"."""
    now = pki.clock.now
    window = (now - dt.timedelta(days=3650), now - dt.timedelta(days=1))
    if variant == "not yet valid":
        window = (now + dt.timedelta(days=1), now + dt.timedelta(days=3650))
    name = jp_name(variant)
    root = make_root(name, not_before=window[0], not_after=window[1])
    nonce = new_nonce()
    token = leaf_token(pki, nonce, issuer=root)
    with_root = pki.trust(auth_anchors=(*trust.auth_anchors, root[0]))
    assert refusal(token, nonce, with_root, pki.clock).code is code


def test_an_unrelated_expired_ca_among_the_anchors_does_not_matter(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig
):
    """C4."""
    now = pki.clock.now
    name = jp_name("old")
    expired, _ = make_root(name, not_before=now - dt.timedelta(days=3650), not_after=now - dt.timedelta(days=1))
    nonce = new_nonce()
    with_expired = pki.trust(auth_anchors=(expired, *trust.auth_anchors))
    assert verify(golden(card, pki, nonce), nonce, with_expired, pki.clock).serial == card.auth.serial


@pytest.mark.parametrize(
    "variant", ["self-signed", "foreign CA", "rogue CA with the same DN", "rogue CA forging the AKI"]
)
def test_a_certificate_that_does_not_chain_to_an_authentication_anchor_is_refused(
    pki: SimulatedPki, trust: TrustConfig, other_roots: Any, variant: str
):
    """C5: chains are built by key, so a copied DN (or a copied key identifier) gets nowhere."""
    nonce = new_nonce()
    now = pki.clock.now
    genuine = pki.sim.ca_certificate(CaId(CertificatePurpose.AUTH, 2))
    genuine_ski = genuine.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    if variant == "self-signed":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = jp_name("me")
        certificate = build_certificate(
            subject=name,
            public_key=key.public_key(),
            issuer_name=name,
            issuer_key=key,
            not_before=now - dt.timedelta(days=1),
            not_after=now + dt.timedelta(days=30),
            usage=key_usage(digital_signature=True),
            policies=(AUTH_POLICY,),
        )
        token = token_over(certificate, key, signed_data(pki.origin, nonce))
    elif variant == "foreign CA":
        token = leaf_token(pki, nonce, issuer=other_roots[1])
    else:
        rogue = make_root(genuine.subject, not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=30))
        aki = genuine_ski if variant == "rogue CA forging the AKI" else None
        if aki is None:
            token = leaf_token(pki, nonce, issuer=rogue)
        else:
            token = leaf_token(pki, nonce, issuer=rogue, authority_key_id=aki)
    assert refusal(token, nonce, trust, pki.clock).code is RefusalCode.CERT_UNTRUSTED


@pytest.mark.parametrize(
    ("variant", "code"),
    [
        ("signature card certificate", RefusalCode.POLICY_WRONG),
        ("auth profile from the sign CA", RefusalCode.CERT_UNTRUSTED),
    ],
)
def test_a_signature_certificate_never_signs_in(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig, variant: str, code: RefusalCode
):
    """C6: the 署名用 certificate, and anything chaining to the signature CA, is refused for sign-in."""
    nonce = new_nonce()
    if variant == "signature card certificate":
        assert card.sign is not None
        token = token_over(card.sign.certificate, card.sign.private_key, signed_data(pki.origin, nonce))
    else:
        token = leaf_token(pki, nonce, issuer=pki.sim.signing_material(CaId(CertificatePurpose.SIGN, 2)))
    assert refusal(token, nonce, trust, pki.clock).code is code


def test_a_certificate_without_key_usage_is_refused(pki: SimulatedPki, trust: TrustConfig):
    """C7."""
    nonce = new_nonce()
    assert refusal(leaf_token(pki, nonce, usage=None), nonce, trust, pki.clock).code is RefusalCode.KEY_USAGE_MISSING


@pytest.mark.parametrize(
    ("variant", "code"),
    [
        ("key usage without digitalSignature", RefusalCode.KEY_USAGE_WRONG),
        ("EKU without clientAuth", RefusalCode.EXTENDED_KEY_USAGE_WRONG),
    ],
)
def test_a_certificate_for_another_purpose_is_refused(
    pki: SimulatedPki, trust: TrustConfig, variant: str, code: RefusalCode
):
    """C8."""
    nonce = new_nonce()
    if variant.startswith("key usage"):
        token = leaf_token(pki, nonce, usage=key_usage(key_encipherment=True))
    else:
        token = leaf_token(pki, nonce, extended_key_usage=[ExtendedKeyUsageOID.EMAIL_PROTECTION])
    assert refusal(token, nonce, trust, pki.clock).code is code


def test_an_auth_certificate_with_eku_client_auth_signs_in(pki: SimulatedPki, trust: TrustConfig):
    """C8, the allowed side: EKU may be present if it contains clientAuth (the real profile is unverified)."""
    card = pki.issue_card(auth_client_auth_eku=True)
    nonce = new_nonce()
    assert verify(golden(card, pki, nonce), nonce, trust, pki.clock).serial == card.auth.serial


@pytest.mark.parametrize(
    "variant", ["no policy", "signature policy only", "both policies", "deny-listed policy", "look-alike arc"]
)
def test_a_certificate_without_exactly_the_authentication_policy_is_refused(
    pki: SimulatedPki, trust: TrustConfig, variant: str
):
    """C9."""
    nonce = new_nonce()
    denied = AUTH_POLICY_ARC + ".99"
    policies = {
        "no policy": (),
        "signature policy only": (SIGN_POLICY,),
        "both policies": (AUTH_POLICY, SIGN_POLICY),
        "deny-listed policy": (denied,),
        "look-alike arc": (AUTH_POLICY_ARC + "0",),
    }[variant]
    token = leaf_token(pki, nonce, policies=policies)
    trust_here = pki.trust(denied_policies={denied})
    assert refusal(token, nonce, trust_here, pki.clock).code is RefusalCode.POLICY_WRONG


@pytest.mark.parametrize(
    ("variant", "code"),
    [
        ("the CA certificate itself", RefusalCode.CERT_IS_CA),
        ("CA:TRUE leaf", RefusalCode.CERT_IS_CA),
        ("keyCertSign leaf", RefusalCode.KEY_USAGE_WRONG),
    ],
)
def test_a_ca_certificate_presented_as_the_card_certificate_is_refused(
    pki: SimulatedPki, trust: TrustConfig, variant: str, code: RefusalCode
):
    """C10."""
    nonce = new_nonce()
    if variant == "the CA certificate itself":
        certificate, key = pki.sim.signing_material(CaId(CertificatePurpose.AUTH, 2))
        token = token_over(certificate, key, signed_data(pki.origin, nonce))
    elif variant == "CA:TRUE leaf":
        token = leaf_token(pki, nonce, basic_constraints=x509.BasicConstraints(ca=True, path_length=None))
    else:
        token = leaf_token(pki, nonce, usage=key_usage(digital_signature=True, key_cert_sign=True))
    assert refusal(token, nonce, trust, pki.clock).code is code


@pytest.mark.parametrize("variant", ["RSA-1024", "RSA-4096", "EC P-256", "e=3"])
def test_a_key_other_than_rsa_2048_with_exponent_65537_is_refused(pki: SimulatedPki, trust: TrustConfig, variant: str):
    """C11."""
    key = {
        "RSA-1024": lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024),
        "RSA-4096": lambda: rsa.generate_private_key(public_exponent=65537, key_size=4096),
        "EC P-256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "e=3": lambda: rsa.generate_private_key(public_exponent=3, key_size=2048),
    }[variant]()
    nonce = new_nonce()
    token = leaf_token(pki, nonce, key=key)
    assert refusal(token, nonce, trust, pki.clock).code is RefusalCode.KEY_WEAK_OR_WRONG


def test_a_simulated_card_is_refused_by_the_production_configuration(
    pki: SimulatedPki, card: IssuedCard, other_roots: Any
):
    """C12: production trusts only the real J-LIS roots (stood in for here), so a JPKI-SIM card is untrusted."""
    production = TrustConfig(
        origin=pki.origin,
        app_env="production",
        auth_anchors=(other_roots[0][0],),
        sign_anchors=(other_roots[1][0],),
        crl_source=pki.crl_dir,
        clock=pki.clock,
    )
    nonce = new_nonce()
    assert refusal(golden(card, pki, nonce), nonce, production, pki.clock).code is RefusalCode.CERT_UNTRUSTED


def test_the_production_configuration_refuses_to_load_simulated_anchors(pki: SimulatedPki):
    """C12, start-up side: simulated CAs cannot even be configured in production."""
    with pytest.raises(ConfigError, match="JPKI-SIM"):
        pki.trust(app_env="production")


def test_a_certificate_signed_with_sha1_by_a_trusted_ca_key_is_refused(pki: SimulatedPki, trust: TrustConfig):
    """C13: the technical standard allows only sha256WithRSAEncryption."""
    nonce = new_nonce()
    token = leaf_token(pki, nonce, hash_name="sha1")
    certificate = x509.load_der_x509_certificate(base64.b64decode(token["unverifiedCertificate"]))
    assert certificate.signature_algorithm_oid.dotted_string == "1.2.840.113549.1.1.5"
    assert refusal(token, nonce, trust, pki.clock).code is RefusalCode.CERT_UNTRUSTED


# -- R: revocation ----------------------------------------------------------------------------------


def test_a_revoked_certificate_is_refused_once_the_crl_is_republished(pki: SimulatedPki, trust: TrustConfig):
    """R1: keyCompromise; before the CRL is republished the card still signs in (CRL-based, one refresh)."""
    card = pki.issue_card()
    pki.sim.revoke(card.auth.serial, RevocationReason.KEY_COMPROMISE)
    nonce = new_nonce()
    assert verify(golden(card, pki, nonce), nonce, trust, pki.clock)
    pki.publish()
    nonce = new_nonce()
    error = refusal(golden(card, pki, nonce), nonce, trust, pki.clock)
    assert error.code is RefusalCode.CERT_REVOKED
    assert error.revocation_reason == "keyCompromise"
    assert error.user_hint == "certificate_revoked"


def test_a_certificate_on_hold_for_a_lost_card_is_refused_until_the_hold_is_released(
    pki: SimulatedPki, trust: TrustConfig
):
    """R2: certificateHold."""
    card = pki.issue_card()
    pki.sim.revoke(card.auth.serial, RevocationReason.CERTIFICATE_HOLD)
    pki.publish()
    nonce = new_nonce()
    error = refusal(golden(card, pki, nonce), nonce, trust, pki.clock)
    assert (error.code, error.revocation_reason) == (RefusalCode.CERT_REVOKED, "certificateHold")
    pki.sim.release_hold(card.auth.serial)
    pki.publish()
    nonce = new_nonce()
    assert verify(golden(card, pki, nonce), nonce, trust, pki.clock).serial == card.auth.serial


@pytest.mark.parametrize(
    ("variant", "code"),
    [
        ("no CRL for the issuer", RefusalCode.CRL_UNAVAILABLE),
        ("CRL source unreachable", RefusalCode.CRL_UNAVAILABLE),
        ("CRL past its next update", RefusalCode.CRL_STALE),
        ("CRL older than the maximum age", RefusalCode.CRL_STALE),
        ("CRL signed by another key", RefusalCode.CRL_SIGNATURE_INVALID),
        ("CRL not DER", RefusalCode.CRL_INVALID),
    ],
)
def test_revocation_that_cannot_be_checked_fails_closed(
    pki: SimulatedPki, card: IssuedCard, tmp_path: Path, variant: str, code: RefusalCode
):
    """R4 (CRL half; OCSP R5 applies only if a responder is built)."""
    nonce = new_nonce()
    clock = pki.clock
    if variant == "no CRL for the issuer":
        trust = pki.trust(crl_source=tmp_path)
    elif variant == "CRL source unreachable":

        def unreachable(issuer: x509.Certificate) -> bytes:
            raise TimeoutError("CRL distribution point did not answer")

        trust = pki.trust(crl_source=unreachable)
    elif variant == "CRL past its next update":
        clock = MutableClock(pki.clock.now + dt.timedelta(hours=24, seconds=1))
        trust = pki.trust(clock=clock)
    elif variant == "CRL older than the maximum age":
        clock = MutableClock(pki.clock.now + dt.timedelta(hours=2))
        trust = pki.trust(clock=clock, crl_max_age=dt.timedelta(hours=1))
    elif variant == "CRL signed by another key":
        issuer = card.auth.issuer_certificate
        rogue_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.subject)
            .last_update(pki.clock.now)
            .next_update(pki.clock.now + dt.timedelta(hours=24))
            .sign(rogue_key, hashes.SHA256())
            .public_bytes(serialization.Encoding.DER)
        )
        trust = pki.trust(crl_source=lambda _issuer: forged)
    else:
        trust = pki.trust(crl_source=lambda _issuer: b"\x30\x03\x02\x01\x00")
    assert refusal(golden(card, pki, nonce), nonce, trust, clock).code is code


def test_a_crl_once_checked_is_checked_again_when_it_changes_and_its_dates_at_every_use(
    pki: SimulatedPki, card: IssuedCard
):
    """An unchanged CRL is not parsed and verified again, but nothing else of the check may be skipped: a forged
    CRL put in the published one's place is refused, and the published one is stale once its next update passes."""
    from core.jpki.trust import crl_file_name

    published = (pki.crl_dir / crl_file_name(card.auth.issuer_certificate)).read_bytes()
    rogue_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = (x509.CertificateRevocationListBuilder().issuer_name(card.auth.issuer_certificate.subject)
              .last_update(pki.clock.now).next_update(pki.clock.now + dt.timedelta(hours=24))
              .sign(rogue_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    source = {"der": published}
    trust = pki.trust(crl_source=lambda _issuer: source["der"])
    nonce = new_nonce()
    assert verify(golden(card, pki, nonce), nonce, trust, pki.clock)
    source["der"] = forged
    nonce = new_nonce()
    assert refusal(golden(card, pki, nonce), nonce, trust, pki.clock).code is RefusalCode.CRL_SIGNATURE_INVALID
    source["der"] = published
    nonce = new_nonce()
    assert verify(golden(card, pki, nonce), nonce, trust, pki.clock)
    later = MutableClock(pki.clock.now + dt.timedelta(hours=24, seconds=1))
    trust = pki.trust(crl_source=lambda _issuer: source["der"], clock=later)
    nonce = new_nonce()
    assert refusal(golden(card, pki, nonce), nonce, trust, later).code is RefusalCode.CRL_STALE
