"""The virtual card file and the Python card client: format, PIN/password rules, lock-out (K1-K5), token bytes.

PBKDF2 runs with 1,000 iterations here for speed, except in the one test that checks the default.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bridge.peers.jlis import virtualcard
from bridge.peers.jlis.cardclient import build_auth_token, build_signed_application
from bridge.peers.jlis.simulator import IssuedCard
from bridge.peers.jlis.testkit import SimulatedPki, sample_holder
from bridge.peers.jlis.virtualcard import CardLocked, InvalidSecretFormat, WrongPin
from core.jpki import ConsumedNonce, verify_auth_token, verify_signed_application

FAST = 1_000
PIN, PASSWORD = "1234", "ABC123"


@pytest.fixture(scope="module")
def pki_generations() -> int:
    """One CA generation is enough here (tests/pki_fixtures.py gives pki, card and trust)."""
    return 1


@pytest.fixture
def document(card: IssuedCard) -> dict[str, Any]:
    """A fresh card document (full try counters) with fast PBKDF2."""
    return virtualcard.card_document(card, PIN, PASSWORD, iterations=FAST)


def nonce_of(pki: SimulatedPki, text: str) -> ConsumedNonce:
    return ConsumedNonce(text, pki.clock.now, pki.clock.now + dt.timedelta(seconds=300))


# -- format -------------------------------------------------------------------------------------------


def test_the_default_card_file_uses_at_least_600000_pbkdf2_iterations(card: IssuedCard, tmp_path: Path):
    path = tmp_path / "card.jpkisim.json"
    virtualcard.write_card_file(card, PIN, PASSWORD, path)
    document = json.loads(path.read_text())
    assert document["auth"]["kdf"]["iter"] >= 600_000
    assert document["sign"]["kdf"]["iter"] >= 600_000
    assert isinstance(document["auth"]["kdf"]["iter"], int)
    key, _certificate = virtualcard.open_slot_file(path, "auth", PIN)
    assert key.public_key() == card.auth.certificate.public_key()


def test_a_card_file_round_trips_both_keys(card: IssuedCard, tmp_path: Path):
    path = tmp_path / "card.jpkisim.json"
    virtualcard.write_card_file(card, PIN, PASSWORD, path, iterations=FAST)
    auth_key, auth_cert = virtualcard.open_slot_file(path, "auth", PIN)
    sign_key, sign_cert = virtualcard.open_slot_file(path, "sign", PASSWORD)
    assert card.sign is not None
    assert (auth_cert, sign_cert) == (card.auth.certificate, card.sign.certificate)
    assert auth_key.private_numbers() == card.auth.private_key.private_numbers()
    assert sign_key.private_numbers() == card.sign.private_key.private_numbers()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_card_file_can_be_written_to_an_open_file(card: IssuedCard):
    buffer = io.StringIO()
    written = virtualcard.write_card_file(card, PIN, PASSWORD, buffer, iterations=FAST)
    assert json.loads(buffer.getvalue()) == written


def test_each_slot_is_laid_out_as_docs_virtual_card_md_describes(card: IssuedCard, document: dict[str, Any]):
    assert (document["format"], document["v"], document["cardId"]) == ("jpki-sim-card", 1, card.card_id)
    for slot, tries in (("auth", 3), ("sign", 5)):
        entry = document[slot]
        assert entry["slot"] == slot and entry["v"] == 1
        assert entry["kdf"]["alg"] == "PBKDF2-SHA256" and entry["wrap"]["alg"] == "AES-GCM"
        assert len(base64.b64decode(entry["kdf"]["salt"], validate=True)) == 16
        assert len(base64.b64decode(entry["wrap"]["iv"], validate=True)) == 12
        assert (entry["tries_left"], entry["max_tries"]) == (tries, tries)
        issued = card.auth if slot == "auth" else card.sign
        assert issued is not None
        assert base64.b64decode(entry["cert"]) == issued.certificate.public_bytes(serialization.Encoding.DER)
        assert base64.b64decode(entry["ca"]) == issued.issuer_certificate.public_bytes(serialization.Encoding.DER)
        # ciphertext ‖ 16-byte tag over the PKCS#8 DER, as WebCrypto's AES-GCM unwrapKey("pkcs8") expects.
        secret = PIN if slot == "auth" else PASSWORD
        salt = base64.b64decode(entry["kdf"]["salt"])
        aes = AESGCM(hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, FAST, dklen=32))
        pkcs8 = aes.decrypt(base64.b64decode(entry["wrap"]["iv"]), base64.b64decode(entry["wrappedKey"]), None)
        assert pkcs8 == issued.private_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        assert len(base64.b64decode(entry["wrappedKey"])) == len(pkcs8) + 16
    assert document["auth"]["kdf"]["salt"] != document["sign"]["kdf"]["salt"]


def test_a_card_without_a_signature_certificate_has_an_empty_sign_slot(pki: SimulatedPki):
    young = pki.issue_card(sample_holder(birth_date=pki.clock.now.date().replace(year=2014)), with_signature=False)
    document = virtualcard.card_document(young, PIN, None, iterations=FAST)
    assert document["sign"] is None
    with pytest.raises(virtualcard.CardError, match="no sign"):
        virtualcard.open_slot(document, "sign", PASSWORD)
    with pytest.raises(ValueError, match="no password"):
        virtualcard.card_document(young, PIN, PASSWORD, iterations=FAST)


@pytest.mark.parametrize("password", ["ABCDEF", "123456"])
def test_a_new_password_must_mix_letters_and_digits(card: IssuedCard, password: str):
    with pytest.raises(InvalidSecretFormat, match="mix"):
        virtualcard.card_document(card, PIN, password, iterations=FAST)


def test_a_reissued_signature_certificate_replaces_the_sign_slot(pki: SimulatedPki, document: dict[str, Any]):
    card_id = document["cardId"]
    moved = sample_holder(address="岩手県北上市芳町1番1号", municipality="北上市")
    issued = pki.sim.reissue_signature_certificate(card_id, moved)
    virtualcard.replace_sign_slot(document, issued, "NEW2PASS", iterations=FAST)
    assert virtualcard.open_slot(document, "sign", "new2pass").public_key() == issued.certificate.public_key()
    assert virtualcard.slot_certificate(document, "sign") == issued.certificate


# -- K: PIN and password rules, lock-out ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("slot", "secret"),
    [
        ("auth", "123"),
        ("auth", "12345"),
        ("auth", "12a4"),
        ("auth", "１２３４"),
        ("auth", ""),
        ("sign", "ABC12"),
        ("sign", "ABCDEFGH123456789"),
        ("sign", "ABC-123"),
        ("sign", "ＡＢＣ１２３"),
    ],
)
def test_a_pin_or_password_of_the_wrong_shape_is_refused_before_any_key_use(
    document: dict[str, Any], slot: str, secret: str
):
    """K1: no try is spent on a malformed secret."""
    with pytest.raises(InvalidSecretFormat):
        virtualcard.open_slot(document, slot, secret)
    assert document[slot]["tries_left"] == document[slot]["max_tries"]


def test_a_lower_case_password_is_taken_as_upper_case(card: IssuedCard, document: dict[str, Any]):
    """K1: lower case is normalised to upper, as in jpki/myna."""
    assert card.sign is not None
    key = virtualcard.open_slot(document, "sign", PASSWORD.lower())
    assert key.public_key() == card.sign.certificate.public_key()


def test_three_wrong_pins_lock_the_auth_slot_even_for_the_right_pin(document: dict[str, Any]):
    """K2."""
    for tries_left in (2, 1):
        with pytest.raises(WrongPin) as caught:
            virtualcard.open_slot(document, "auth", "0000")
        assert caught.value.tries_left == tries_left
    with pytest.raises(CardLocked):
        virtualcard.open_slot(document, "auth", "0000")
    with pytest.raises(CardLocked):
        virtualcard.open_slot(document, "auth", PIN)
    assert virtualcard.open_slot(document, "sign", PASSWORD)  # the other slot has its own counter


def test_five_wrong_passwords_lock_the_sign_slot(document: dict[str, Any]):
    """K3."""
    for tries_left in (4, 3, 2, 1):
        with pytest.raises(WrongPin) as caught:
            virtualcard.open_slot(document, "sign", "WRONG1")
        assert caught.value.tries_left == tries_left
    with pytest.raises(CardLocked):
        virtualcard.open_slot(document, "sign", "WRONG1")
    with pytest.raises(CardLocked):
        virtualcard.open_slot(document, "sign", PASSWORD)


def test_the_right_pin_after_two_wrong_ones_resets_the_counter(document: dict[str, Any]):
    """K4."""
    for _ in range(2):
        with pytest.raises(WrongPin):
            virtualcard.open_slot(document, "auth", "9999")
    virtualcard.open_slot(document, "auth", PIN)
    assert document["auth"]["tries_left"] == 3


def test_the_try_counter_survives_reloading_the_card_file(card: IssuedCard, tmp_path: Path):
    """K5: two wrong PINs, a reload from disk, one more wrong PIN: locked."""
    path = tmp_path / "card.jpkisim.json"
    virtualcard.write_card_file(card, PIN, PASSWORD, path, iterations=FAST)
    for _ in range(2):
        with pytest.raises(WrongPin):
            virtualcard.open_slot_file(path, "auth", "1111")
    assert json.loads(path.read_text())["auth"]["tries_left"] == 1
    with pytest.raises(CardLocked):
        virtualcard.open_slot_file(path, "auth", "1111")
    with pytest.raises(CardLocked):
        virtualcard.open_slot_file(path, "auth", PIN)


# -- card client --------------------------------------------------------------------------------------


def test_the_card_client_builds_a_web_eid_v2_token_over_the_hashed_origin_and_nonce_text(
    pki: SimulatedPki, card: IssuedCard, document: dict[str, Any]
):
    nonce = base64.b64encode(b"\x07" * 32).decode()
    token = build_auth_token(document, PIN, origin=pki.origin, nonce=nonce)
    assert list(token) == ["unverifiedCertificate", "algorithm", "signature", "format", "appVersion"]
    assert (token["algorithm"], token["format"]) == ("RS256", "web-eid:1.0")
    # What a real card does: sign DigestInfo(SHA-256(SHA-256(origin) ‖ SHA-256(nonce as UTF-8 text))).
    data = hashlib.sha256(pki.origin.encode()).digest() + hashlib.sha256(nonce.encode("utf-8")).digest()
    card.auth.certificate.public_key().verify(  # type: ignore[union-attr]
        base64.b64decode(token["signature"]),
        hashlib.sha256(data).digest(),
        padding.PKCS1v15(),
        utils.Prehashed(hashes.SHA256()),
    )
    assert verify_auth_token(token, nonce=nonce_of(pki, nonce), trust=pki.trust()).serial == card.auth.serial


def test_the_card_client_signs_an_application_the_server_accepts(
    pki: SimulatedPki, card: IssuedCard, document: dict[str, Any]
):
    nonce = base64.b64encode(b"\x09" * 32).decode()
    application = {"type": "juminhyo", "copies": 1}
    jws = build_signed_application(document, PASSWORD, aud=pki.origin, nonce=nonce, application=application)
    result = verify_signed_application(jws, expected_nonce=nonce_of(pki, nonce), expected_aud=pki.origin,
                                       trust=pki.trust())
    assert result.application == application


def test_the_card_client_keeps_the_try_counter_of_a_card_on_disk(card: IssuedCard, pki: SimulatedPki, tmp_path: Path):
    path = tmp_path / "card.jpkisim.json"
    virtualcard.write_card_file(card, PIN, PASSWORD, path, iterations=FAST)
    with pytest.raises(WrongPin):
        build_auth_token(path, "4321", origin=pki.origin, nonce="A" * 44)
    assert json.loads(path.read_text())["auth"]["tries_left"] == 2


@pytest.mark.parametrize(
    ("origin", "nonce"),
    [("https://x.example/", "A" * 44), ("http://x.example", "A" * 44), ("https://x.example", "A" * 43)],
)
def test_the_card_client_refuses_to_sign_for_a_bad_origin_or_nonce(
    document: dict[str, Any], origin: str, nonce: str
):
    with pytest.raises(ValueError):
        build_auth_token(document, PIN, origin=origin, nonce=nonce)
