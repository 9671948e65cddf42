"""Signed-application verification (research §4, DESIGN.md "Signed application"): JWS RS256 with x5c.

Negative cases of §5 covered here: G1-G4 and R3, plus the JWS-specific refusals (algorithm from the
header, malformed compact serialisation, x5c, aud, nonce). Each changes one thing of a golden JWS.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import json
import os
import secrets
import unicodedata
import uuid
from typing import Any

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bridge.peers.jlis import RevocationReason
from bridge.peers.jlis.cardclient import jws_signing_input, sign_application
from bridge.peers.jlis.simulator import CaId, IssuedCard
from bridge.peers.jlis.testkit import MutableClock, SimulatedPki, build_certificate, key_usage, sample_holder
from core.jpki import (
    CertificatePurpose,
    ConsumedNonce,
    RedisNonceStore,
    RefusalCode,
    SignedApplicationError,
    TrustConfig,
    VerifiedApplication,
    verify_signed_application,
)
from core.jpki.encoding import b64url_encode
from core.jpki.profile import SIGN_POLICY

APPLICATION = {"type": "tenshutsu", "move_date": "2026-04-20", "new_address": "岩手県北上市芳町1番1号", "members": [1]}


def new_nonce() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def golden(card: IssuedCard, pki: SimulatedPki, nonce: str, application: dict[str, Any] = APPLICATION) -> str:
    """A valid JWS from the card's signature key."""
    assert card.sign is not None
    return sign_application(
        card.sign.private_key, card.sign.certificate, aud=pki.origin, nonce=nonce, application=application
    )


def der_b64(certificate: x509.Certificate) -> str:
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()


def make_jws(key: rsa.RSAPrivateKey, header: dict[str, Any], payload: dict[str, Any]) -> str:
    """A JWS with exactly this header and payload, RS256-signed by ``key``."""
    signing_input = jws_signing_input(header, payload)
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url_encode(signature)}"


def parts(card: IssuedCard, pki: SimulatedPki, nonce: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The golden header and payload, to change one thing in."""
    assert card.sign is not None
    header = {"alg": "RS256", "x5c": [der_b64(card.sign.certificate)]}
    return header, {"aud": pki.origin, "nonce": nonce, "application": APPLICATION}


def verify(jws: str, nonce: str, trust: TrustConfig, **options: Any) -> VerifiedApplication:
    now = trust.clock()
    consumed = ConsumedNonce(nonce, now - dt.timedelta(seconds=1), now + dt.timedelta(seconds=299))
    return verify_signed_application(jws, expected_nonce=consumed, expected_aud=trust.origin, trust=trust, **options)


def refusal(jws: str, nonce: str, trust: TrustConfig, **options: Any) -> SignedApplicationError:
    with pytest.raises(SignedApplicationError) as caught:
        verify(jws, nonce, trust, **options)
    return caught.value


# -- positive ---------------------------------------------------------------------------------------


def test_a_golden_application_from_a_second_generation_card_verifies(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig
):
    nonce = new_nonce()
    result = verify(golden(card, pki, nonce), nonce, trust)
    assert card.sign is not None
    assert result.serial == card.sign.serial
    assert result.certificate == card.sign.certificate
    assert result.application == APPLICATION
    assert result.claims["aud"] == pki.origin
    holder = sample_holder()
    assert (result.items.name, result.items.address, result.items.birth_date, result.items.sex) == (
        holder.name,
        holder.address,
        holder.birth_date,
        holder.sex,
    )
    crl = x509.load_der_x509_crl(result.revocation_evidence)
    assert crl.issuer == card.sign.issuer_certificate.subject


def test_a_golden_application_from_a_first_generation_card_verifies(pki: SimulatedPki, trust: TrustConfig):
    old_card = pki.issue_card(generation=1)
    nonce = new_nonce()
    assert old_card.sign is not None
    assert verify(golden(old_card, pki, nonce), nonce, trust).serial == old_card.sign.serial


def test_the_signers_items_match_the_residents_after_unicode_normalisation(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig
):
    nonce = new_nonce()
    items = sample_holder().basic_items()
    decomposed = type(items)(**{**items.__dict__, "address": unicodedata.normalize("NFD", items.address)})
    assert verify(golden(card, pki, nonce), nonce, trust, expected_items=decomposed)


# -- G: signing flow --------------------------------------------------------------------------------


def test_an_application_signed_with_the_authentication_key_is_refused(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig
):
    """G1: the user-authentication certificate and key cannot sign an application."""
    nonce = new_nonce()
    jws = sign_application(
        card.auth.private_key, card.auth.certificate, aud=pki.origin, nonce=nonce, application=APPLICATION
    )
    error = refusal(jws, nonce, trust)
    assert error.code is RefusalCode.KEY_USAGE_WRONG
    assert error.code.category == "WRONG_PURPOSE"


def test_an_application_changed_after_signing_is_refused(pki: SimulatedPki, card: IssuedCard, trust: TrustConfig):
    """G2: the signed bytes no longer match the document."""
    nonce = new_nonce()
    header_b64, _payload, signature = golden(card, pki, nonce).split(".")
    _header, payload = parts(card, pki, nonce)
    payload["application"] = APPLICATION | {"new_address": "東京都千代田区"}
    changed = b64url_encode(json.dumps(payload, ensure_ascii=False).encode())
    assert refusal(f"{header_b64}.{changed}.{signature}", nonce, trust).code is RefusalCode.SIGNATURE_INVALID


def test_a_signer_whose_items_differ_from_the_resident_is_refused(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig
):
    """G3."""
    nonce = new_nonce()
    someone_else = sample_holder(name="宮沢 清六").basic_items()
    error = refusal(golden(card, pki, nonce), nonce, trust, expected_items=someone_else)
    assert error.code is RefusalCode.IDENTITY_MISMATCH


@pytest.mark.parametrize("variant", ["reused", "after its TTL"])
def test_a_sign_challenge_reused_or_out_of_time_is_refused(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig, variant: str
):
    """G4, with the real Redis store."""
    client = redis.Redis.from_url(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
    prefix = f"test:jpki-sign:{uuid.uuid4().hex}:"
    try:
        clock = MutableClock(pki.clock.now)
        store = RedisNonceStore(client, key_prefix=prefix, clock=clock)
        nonce, _ = store.issue(ttl=300)
        jws = golden(card, pki, nonce)
        trust_here = pki.trust(clock=clock)
        if variant == "reused":
            verify_signed_application(
                jws, expected_nonce=functools.partial(store.take, nonce), expected_aud=pki.origin, trust=trust_here
            )
            expected = RefusalCode.NONCE_NOT_FOUND
        else:
            clock.advance(seconds=301)
            expected = RefusalCode.NONCE_EXPIRED
        with pytest.raises(SignedApplicationError) as caught:
            verify_signed_application(
                jws, expected_nonce=functools.partial(store.take, nonce), expected_aud=pki.origin, trust=trust_here
            )
        assert caught.value.code is expected
    finally:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()


def test_a_signature_certificate_revoked_for_changed_items_is_refused_with_a_renew_hint(
    pki: SimulatedPki, trust: TrustConfig
):
    """R3: affiliationChanged (the resident moved); the reason lets the page say "renew your certificate"."""
    card = pki.issue_card()
    assert card.sign is not None
    pki.sim.revoke(card.sign.serial, RevocationReason.AFFILIATION_CHANGED)
    pki.publish()
    nonce = new_nonce()
    error = refusal(golden(card, pki, nonce), nonce, trust)
    assert (error.code, error.revocation_reason) == (RefusalCode.CERT_REVOKED, "affiliationChanged")
    assert error.user_hint == "certificate_revoked"


# -- JWS shape and header ---------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["<missing>", "none", "HS256", "RS512", "PS256", "ES256", "rs256"])
def test_a_jws_whose_header_names_another_algorithm_is_refused_before_any_crypto(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig, alg: str
):
    nonce = new_nonce()
    header, payload = parts(card, pki, nonce)
    if alg == "<missing>":
        del header["alg"]
    else:
        header["alg"] = alg
    assert card.sign is not None
    jws = make_jws(card.sign.private_key, header, payload)
    assert refusal(jws, nonce, trust).code is RefusalCode.ALGORITHM_UNSUPPORTED


def test_an_hs256_jws_keyed_with_the_certificates_public_key_is_refused(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig
):
    nonce = new_nonce()
    header, payload = parts(card, pki, nonce)
    header["alg"] = "HS256"
    assert card.sign is not None
    public_pem = card.sign.certificate.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = jws_signing_input(header, payload)
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    jws = f"{signing_input}.{b64url_encode(mac)}"
    assert refusal(jws, nonce, trust).code is RefusalCode.ALGORITHM_UNSUPPORTED


@pytest.mark.parametrize("variant", ["two segments", "four segments", "padded payload", "standard base64", "not ascii"])
def test_a_jws_that_is_not_strict_compact_serialisation_is_refused(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig, variant: str
):
    nonce = new_nonce()
    jws = golden(card, pki, nonce)
    header, payload, signature = jws.split(".")
    mutated = {
        "two segments": f"{header}.{payload}",
        "four segments": f"{jws}.{signature}",
        "padded payload": f"{header}.{payload}{'=' * (-len(payload) % 4) or '===='}.{signature}",
        "standard base64": f"{header}.{payload}.{signature.replace('-', '+').replace('_', '/')}+",
        "not ascii": f"{header}.{payload}.{signature}é",
    }[variant]
    assert refusal(mutated, nonce, trust).code is RefusalCode.JWS_MALFORMED


@pytest.mark.parametrize("parameter", ["crit", "jwk", "jku", "x5u", "b64"])
def test_a_jws_header_that_could_redirect_verification_is_refused(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig, parameter: str
):
    nonce = new_nonce()
    header, payload = parts(card, pki, nonce)
    header[parameter] = {"crit": ["b64"], "jwk": {"kty": "RSA"}, "b64": False}.get(parameter, "https://evil.example/")
    assert card.sign is not None
    jws = make_jws(card.sign.private_key, header, payload)
    assert refusal(jws, nonce, trust).code is RefusalCode.JWS_HEADER_UNSUPPORTED


@pytest.mark.parametrize(
    ("variant", "code"),
    [
        ("missing", RefusalCode.X5C_INVALID),
        ("empty list", RefusalCode.X5C_INVALID),
        ("a string, not a list", RefusalCode.X5C_INVALID),
        ("two certificates", RefusalCode.X5C_INVALID),
        ("base64url", RefusalCode.X5C_INVALID),
        ("not DER", RefusalCode.CERT_NOT_DER),
    ],
)
def test_an_x5c_other_than_the_one_signature_certificate_is_refused(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig, variant: str, code: RefusalCode
):
    nonce = new_nonce()
    header, payload = parts(card, pki, nonce)
    cert = header["x5c"][0]
    assert card.sign is not None
    issuer = der_b64(card.sign.issuer_certificate)
    values: dict[str, Any] = {
        "empty list": [],
        "a string, not a list": cert,
        "two certificates": [cert, issuer],
        "base64url": [cert.replace("+", "-").replace("/", "_") + ("-" if "+" not in cert and "/" not in cert else "")],
        "not DER": [base64.b64encode(b"not a certificate").decode()],
    }
    if variant == "missing":
        del header["x5c"]
    else:
        header["x5c"] = values[variant]
    jws = make_jws(card.sign.private_key, header, payload)
    assert refusal(jws, nonce, trust).code is code


def test_a_signature_profile_certificate_from_the_authentication_ca_is_refused(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig
):
    """Signatures chain to the signature anchors only."""
    nonce = new_nonce()
    certificate, key = pki.leaf(
        CertificatePurpose.SIGN, issuer=pki.sim.signing_material(CaId(CertificatePurpose.AUTH, 2))
    )
    header, payload = parts(card, pki, nonce)
    header["x5c"] = [der_b64(certificate)]
    assert refusal(make_jws(key, header, payload), nonce, trust).code is RefusalCode.CERT_UNTRUSTED


def test_a_signature_certificate_without_the_basic_items_is_refused(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig
):
    nonce = new_nonce()
    sign_ca = pki.sim.signing_material(CaId(CertificatePurpose.SIGN, 2))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = pki.clock.now.replace(microsecond=0)
    certificate = build_certificate(
        subject=x509.Name([x509.NameAttribute(x509.NameOID.COUNTRY_NAME, "JP")]),
        public_key=key.public_key(),
        issuer_name=sign_ca[0].subject,
        issuer_key=sign_ca[1],
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=30),
        usage=key_usage(digital_signature=True, content_commitment=True),
        policies=(SIGN_POLICY,),
        authority_key_id=sign_ca[0].extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest,
    )
    header, payload = parts(card, pki, nonce)
    header["x5c"] = [der_b64(certificate)]
    assert refusal(make_jws(key, header, payload), nonce, trust).code is RefusalCode.BASIC_ITEMS_INVALID


def test_an_expired_signature_certificate_is_refused(pki: SimulatedPki, card: IssuedCard, trust: TrustConfig):
    nonce = new_nonce()
    certificate, key = pki.leaf(
        CertificatePurpose.SIGN, not_after=pki.clock.now.replace(microsecond=0) - dt.timedelta(seconds=1)
    )
    header, payload = parts(card, pki, nonce)
    header["x5c"] = [der_b64(certificate)]
    assert refusal(make_jws(key, header, payload), nonce, trust).code is RefusalCode.CERT_EXPIRED


def test_a_stale_crl_fails_closed_for_signatures_too(pki: SimulatedPki, card: IssuedCard):
    nonce = new_nonce()
    later = pki.trust(clock=MutableClock(pki.clock.now + dt.timedelta(hours=25)))
    assert refusal(golden(card, pki, nonce), nonce, later).code is RefusalCode.CRL_STALE


# -- payload ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("aud", "https://evil.example", RefusalCode.AUDIENCE_MISMATCH),
        ("aud", ["https://shinsei.example-city.lg.jp"], RefusalCode.AUDIENCE_MISMATCH),
        ("nonce", "<another nonce>", RefusalCode.NONCE_MISMATCH),
        ("application", "not an object", RefusalCode.PAYLOAD_INVALID),
        ("application", None, RefusalCode.PAYLOAD_INVALID),
    ],
)
def test_a_payload_for_another_audience_challenge_or_without_an_application_is_refused(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig, field: str, value: Any, code: RefusalCode
):
    nonce = new_nonce()
    header, payload = parts(card, pki, nonce)
    payload[field] = new_nonce() if value == "<another nonce>" else value
    assert card.sign is not None
    assert refusal(make_jws(card.sign.private_key, header, payload), nonce, trust).code is code


def test_a_payload_that_is_not_a_json_object_is_refused_after_the_signature_checks(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig
):
    nonce = new_nonce()
    header, _payload = parts(card, pki, nonce)
    assert card.sign is not None
    header_b64 = b64url_encode(json.dumps(header).encode())
    payload_b64 = b64url_encode(b"[1, 2, 3]")
    signature = card.sign.private_key.sign(f"{header_b64}.{payload_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())
    jws = f"{header_b64}.{payload_b64}.{b64url_encode(signature)}"
    assert refusal(jws, nonce, trust).code is RefusalCode.PAYLOAD_INVALID


# -- signing time (iat) -------------------------------------------------------------------------------

MAX_AGE = dt.timedelta(hours=24)


@pytest.mark.parametrize(("iat", "code"), [
    (None, RefusalCode.PAYLOAD_INVALID),  # no signing time at all
    ("2026-01-01", RefusalCode.PAYLOAD_INVALID),  # not a NumericDate
    (True, RefusalCode.PAYLOAD_INVALID),
    (-(MAX_AGE + dt.timedelta(seconds=1)), RefusalCode.SIGNED_TOO_LONG_AGO),
    (dt.timedelta(minutes=6), RefusalCode.SIGNED_IN_FUTURE),  # beyond the clock skew
])
def test_a_signing_time_missing_too_old_or_in_the_future_is_refused_when_an_age_is_set(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig, iat: Any, code: RefusalCode
):
    assert card.sign is not None
    nonce = new_nonce()
    header, payload = parts(card, pki, nonce)
    if isinstance(iat, dt.timedelta):
        iat = int((trust.clock() + iat).timestamp())
    if iat is not None:
        payload["iat"] = iat
    assert refusal(make_jws(card.sign.private_key, header, payload), nonce, trust, max_age=MAX_AGE).code is code


@pytest.mark.parametrize("offset", [-MAX_AGE + dt.timedelta(seconds=5), dt.timedelta(0), dt.timedelta(minutes=4)])
def test_a_signing_time_within_the_age_and_the_skew_verifies(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig, offset: dt.timedelta
):
    assert card.sign is not None
    nonce = new_nonce()
    header, payload = parts(card, pki, nonce)
    payload["iat"] = int((trust.clock() + offset).timestamp())
    assert verify(make_jws(card.sign.private_key, header, payload), nonce, trust, max_age=MAX_AGE).claims["iat"]


# -- what is kept between verifications -------------------------------------------------------------


def test_a_certificate_verified_once_is_not_parsed_or_path_validated_again_but_its_dates_and_revocation_count(
    pki: SimulatedPki, monkeypatch: pytest.MonkeyPatch
):
    from core.jpki import certificates

    card = pki.issue_card()
    assert card.sign is not None
    clock = MutableClock(pki.clock.now)
    trust = pki.trust(clock=clock)
    nonce = new_nonce()
    verify(golden(card, pki, nonce), nonce, trust)

    def no_second_validation(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the certificate was parsed or its path validated again")

    monkeypatch.setattr(certificates, "PolicyBuilder", no_second_validation)
    monkeypatch.setattr(certificates.x509, "load_der_x509_certificate", no_second_validation)
    nonce = new_nonce()
    assert verify(golden(card, pki, nonce), nonce, trust).serial == card.sign.serial
    # Expiry is checked at every use, whatever was kept.
    clock.now = card.sign.certificate.not_valid_after_utc + dt.timedelta(seconds=1)
    nonce = new_nonce()
    assert refusal(golden(card, pki, nonce), nonce, trust).code is RefusalCode.CERT_EXPIRED
    # So is revocation: the CRL is read again.
    clock.now = pki.clock.now
    pki.sim.revoke(card.sign.serial, RevocationReason.AFFILIATION_CHANGED)
    pki.publish()
    nonce = new_nonce()
    assert refusal(golden(card, pki, nonce), nonce, trust).code is RefusalCode.CERT_REVOKED


def test_a_certificate_forged_in_the_name_of_a_ca_is_refused_after_a_genuine_one_was_verified(
    pki: SimulatedPki, card: IssuedCard, trust: TrustConfig
):
    """What is kept is keyed by the certificates' whole DER: a look-alike signed by another key gains nothing."""
    assert card.sign is not None
    nonce = new_nonce()
    verify(golden(card, pki, nonce), nonce, trust)
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged, key = pki.leaf(CertificatePurpose.SIGN, issuer=(card.sign.issuer_certificate, attacker))
    nonce = new_nonce()
    header, payload = parts(card, pki, nonce)
    header["x5c"] = [der_b64(forged)]
    assert refusal(make_jws(key, header, payload), nonce, trust).code is RefusalCode.CERT_UNTRUSTED
