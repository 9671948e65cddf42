"""The envelope: a sealed message opens only for its recipient, and each kind of forgery is refused with its reason."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import stat
from pathlib import Path

import pytest
from jose import jws

from core.config import ConfigError
from core.envelope import (
    EnvelopeRefused,
    KeyRegistry,
    encrypt_compact,
    open_envelope,
    peek_header,
    private_key_path,
    seal,
)

PORTAL, BO, OTHER = "portal", "muni:032051", "muni:032069"
NOW = dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def parties() -> dict[str, KeyRegistry]:
    """The portal, a back office and a second back office, each knowing the others' public keys."""
    generated = {party: KeyRegistry.generate(party) for party in (PORTAL, BO, OTHER)}
    result = {}
    for party, registry in generated.items():
        for other, other_registry in generated.items():
            if other != party:
                registry = registry.with_public(other, other_registry.public_pem())
        result[party] = registry
    return result


def _seal(parties: dict[str, KeyRegistry], **overrides: object) -> str:
    args: dict = {"message_type": "application.submitted", "sender": PORTAL, "recipient": BO,
                  "keys": parties[PORTAL], "created_at": NOW}
    args.update(overrides)
    return seal({"receiptNumber": "R-1", "name": "宮沢　賢"}, **args).token


def _open(parties: dict[str, KeyRegistry], token: str, *, me: str = BO, types: set[str] | None = None,
          now: dt.datetime = NOW, max_age: dt.timedelta = DAY):
    return open_envelope(token, me=me, keys=parties[me], accepted_types=types or {"application.submitted"},
                         max_age=max_age, now=now)


def _refusal(parties: dict[str, KeyRegistry], token: str, **kwargs: object) -> str:
    with pytest.raises(EnvelopeRefused) as caught:
        _open(parties, token, **kwargs)
    return caught.value.reason


def test_a_sealed_message_opens_for_its_recipient_with_its_verified_header_and_payload(parties):
    sealed = seal({"receiptNumber": "R-1", "name": "宮沢　賢"}, message_type="application.submitted",
                  sender=PORTAL, recipient=BO, keys=parties[PORTAL], created_at=NOW)
    opened = _open(parties, sealed.token)
    assert opened.message_id == sealed.message_id
    assert (opened.message_type, opened.sender, opened.recipient) == ("application.submitted", PORTAL, BO)
    assert opened.created_at == NOW and opened.payload == {"receiptNumber": "R-1", "name": "宮沢　賢"}
    header = peek_header(sealed.token)
    assert {k: header[k] for k in ("alg", "enc", "mid", "typ", "iss", "aud", "iat")} == {
        "alg": "RSA-OAEP-256", "enc": "A256GCM", "mid": sealed.message_id, "typ": "application.submitted",
        "iss": PORTAL, "aud": BO, "iat": int(NOW.timestamp())}
    # Nothing of the payload is readable in the token.
    assert "宮沢" not in sealed.token
    assert "R-1" not in base64.urlsafe_b64decode(sealed.token.split(".")[0] + "==").decode()


def test_tampered_ciphertext_is_refused_as_bad_ciphertext(parties):
    header, key, iv, ciphertext, tag = _seal(parties).split(".")
    flipped = ciphertext[:10] + ("A" if ciphertext[10] != "A" else "B") + ciphertext[11:]
    assert _refusal(parties, ".".join([header, key, iv, flipped, tag])) == "bad_ciphertext"
    assert _refusal(parties, "not a token") == "bad_ciphertext"


def test_a_header_edited_in_transit_breaks_the_authentication_and_is_refused(parties):
    header, *rest = _seal(parties).split(".")
    edited = json.loads(base64.urlsafe_b64decode(header + "=="))
    edited["typ"] = "application.withdrawn"
    encoded = base64.urlsafe_b64encode(json.dumps(edited).encode()).rstrip(b"=").decode()
    assert _refusal(parties, ".".join([encoded, *rest]), types={"application.withdrawn"}) == "bad_ciphertext"


def test_a_message_for_another_party_is_refused_as_wrong_recipient(parties):
    token = _seal(parties, recipient=OTHER)
    assert _refusal(parties, token) == "wrong_recipient"
    assert _open(parties, token, me=OTHER).recipient == OTHER


def test_a_sender_without_a_registered_key_is_refused_as_unknown_sender(parties):
    stranger = KeyRegistry.generate("peer:muni-standin").with_public(BO, parties[BO].public_pem())
    token = seal({"x": 1}, message_type="application.submitted", sender="peer:muni-standin", recipient=BO,
                 keys=stranger, created_at=NOW).token
    assert _refusal(parties, token) == "unknown_sender"


def test_a_message_signed_with_another_key_in_the_portals_name_is_refused_as_bad_signature(parties):
    # Anyone can encrypt to the back office's public key; only the portal can sign as the portal.
    forger = KeyRegistry.generate(PORTAL).with_public(BO, parties[BO].public_pem())
    token = seal({"x": 1}, message_type="application.submitted", sender=PORTAL, recipient=BO, keys=forger,
                 created_at=NOW).token
    assert _refusal(parties, token) == "bad_signature"


def test_a_type_the_receiver_does_not_take_is_refused(parties):
    assert _refusal(parties, _seal(parties), types={"status.changed"}) == "type_not_accepted"


def test_a_message_older_than_the_limit_or_from_the_future_is_refused_as_too_old(parties):
    token = _seal(parties)
    assert _refusal(parties, token, now=NOW + dt.timedelta(days=2)) == "too_old"
    assert _refusal(parties, token, now=NOW - dt.timedelta(hours=1)) == "too_old"
    assert _open(parties, token, now=NOW + dt.timedelta(hours=23)).created_at == NOW


def test_a_genuine_signed_message_rewrapped_under_another_header_is_refused_as_header_mismatch(parties):
    # The first recipient can read the inner JWS; re-encrypting it to another party under a new
    # header (another recipient, another type) must not make it valid there.
    token = _seal(parties)
    signed = _inner_jws(parties[BO], token)
    to_other = parties[PORTAL].public(OTHER)
    header = {**peek_header(token), "aud": OTHER, "kid": to_other.encrypt_kid}
    assert _refusal(parties, encrypt_compact(signed.encode(), header, to_other.encrypt), me=OTHER) == "header_mismatch"
    to_bo = parties[PORTAL].public(BO)
    retyped = {**peek_header(token), "typ": "application.withdrawn"}
    assert _refusal(parties, encrypt_compact(signed.encode(), retyped, to_bo.encrypt),
                    types={"application.withdrawn"}) == "header_mismatch"


def test_algorithms_are_fixed_whatever_the_header_asks(parties):
    token = _seal(parties)
    signed = _inner_jws(parties[BO], token)
    with pytest.raises(ValueError):
        encrypt_compact(signed.encode(), {**peek_header(token), "alg": "RSA1_5"}, parties[PORTAL].public(BO).encrypt)
    _header, *rest = token.split(".")
    for change in ({"alg": "RSA1_5"}, {"enc": "A128CBC-HS256"}, {"alg": "dir"}, {"zip": "DEF"}):
        edited = {**peek_header(token), **change}
        encoded = base64.urlsafe_b64encode(json.dumps(edited).encode()).rstrip(b"=").decode()
        assert _refusal(parties, ".".join([encoded, *rest])) == "bad_ciphertext", change
    # An inner JWS signed with HS256 using the public key as secret (the classic confusion) does not verify.
    claims = json.loads(jws.get_unverified_claims(signed))
    forged = jws.sign(claims, "secret", algorithm="HS256")
    to_bo = parties[PORTAL].public(BO)
    assert _refusal(parties, encrypt_compact(forged.encode(), peek_header(token), to_bo.encrypt)) == "bad_signature"


def test_keys_are_generated_on_first_use_outside_production_and_refused_missing_in_production(tmp_path: Path):
    config = {"APP_ENV": "test", "INSTANCE_PATH": str(tmp_path), "BRIDGE_PARTY": PORTAL}
    first = KeyRegistry.from_config(config)
    path = private_key_path(tmp_path / "keys", PORTAL)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert KeyRegistry.from_config(config).public_pem() == first.public_pem()  # kept, not regenerated
    with pytest.raises(ConfigError, match="missing"):
        KeyRegistry.from_config({**config, "APP_ENV": "production", "BRIDGE_KEY_DIRECTORY": str(tmp_path / "prod")})
    assert not (tmp_path / "prod" / "portal.pem").exists()


def test_the_keys_commands_generate_print_and_import_public_keys(tmp_path: Path):
    from portal import create_app

    portal_dir, bo_dir = tmp_path / "portal-keys", tmp_path / "bo-keys"
    app = create_app({"APP_ENV": "test", "PORTAL_DATABASE_URL": "sqlite://", "BRIDGE_KEY_DIRECTORY": str(portal_dir)})
    result = app.test_cli_runner().invoke(args=["keys", "generate"])
    assert result.exit_code == 0, result.output
    public_pem = result.stdout
    assert public_pem.count("BEGIN PUBLIC KEY") == 2 and "PRIVATE" not in public_pem
    assert (portal_dir / "portal.pem").exists()
    again = app.test_cli_runner().invoke(args=["keys", "generate"])
    assert again.stdout == public_pem  # a second run keeps the keys

    other = KeyRegistry.generate(BO)
    pem_file = tmp_path / "bo.pub.pem"
    pem_file.write_text(other.public_pem())
    imported = app.test_cli_runner().invoke(args=["keys", "import", BO, str(pem_file)])
    assert imported.exit_code == 0, imported.output
    assert KeyRegistry.from_config(app.config).public(BO).pem() == other.public_pem()
    bad = tmp_path / "bad.pem"
    bad.write_text(other.private_pem())
    refused = app.test_cli_runner().invoke(args=["keys", "import", BO, str(bad)])
    assert refused.exit_code == 2 and "Error:" in refused.output
    assert app.test_cli_runner().invoke(args=["keys", "import", "muni:12", str(pem_file)]).exit_code == 2
    assert not bo_dir.exists()


def _inner_jws(registry: KeyRegistry, token: str) -> str:
    from core.envelope import _decrypt

    return _decrypt(token, peek_header(token), registry)


def test_a_message_carries_the_ack_of_a_message_it_answers_as_a_signed_claim_and_a_malformed_one_is_refused(parties):
    import uuid

    answered = str(uuid.uuid4())
    opened = _open(parties, _seal(parties, acknowledges=answered))
    assert opened.acknowledges == answered
    assert _open(parties, _seal(parties)).acknowledges is None
    # Signed by the genuine sender, but the carried ack is not a message id: refused, nothing of it acted on.
    genuine = _seal(parties)
    claims = json.loads(jws.get_unverified_claims(_inner_jws(parties[BO], genuine)))
    sign = {"key": parties[PORTAL].signing_key, "headers": {"kid": parties[PORTAL].signing_kid}, "algorithm": "ES256"}
    resigned = jws.sign(claims, **sign)  # the same claims signed again open: only the ack below is wrong
    assert _open(parties, encrypt_compact(resigned.encode(), peek_header(genuine), parties[PORTAL].public(BO).encrypt))
    for bad in ("../outbox", 17, ["a", "b"], answered.upper()):
        forged = jws.sign({**claims, "ack": bad}, **sign)
        token = encrypt_compact(forged.encode(), peek_header(genuine), parties[PORTAL].public(BO).encrypt)
        assert _refusal(parties, token) == "header_mismatch", bad
