"""The portal API: card sign-in by token, bearer tokens, identity link, and the documented reference client."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from jose import jwt

from bridge.peers.jlis.cardclient import build_auth_token, build_signed_application
from tests.portal_fixtures import PASSWORD, PIN

ROOT = Path(__file__).resolve().parent.parent.parent
ORIGIN = "http://127.0.0.1:5000"


def _token(client, card):
    nonce = client.post("/api/v1/auth/challenge").json["nonce"]
    auth = build_auth_token(card, PIN, origin=ORIGIN, nonce=nonce)
    return client.post("/api/v1/auth/token", json={"authToken": auth, "nonce": nonce})


def test_a_card_gets_a_short_lived_bearer_token_through_the_api(portal_app, cards):
    client = portal_app.test_client()
    response = _token(client, cards.issue())
    assert response.status_code == 200
    body = response.json
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    me = client.get("/api/v1/me", headers={"Authorization": "Bearer " + body["access_token"]})
    assert me.status_code == 200 and me.json["linked"] is False


def test_a_nonce_is_good_for_one_token_only(portal_app, cards):
    client = portal_app.test_client()
    card = cards.issue()
    nonce = client.post("/api/v1/auth/challenge").json["nonce"]
    auth = build_auth_token(card, PIN, origin=ORIGIN, nonce=nonce)
    assert client.post("/api/v1/auth/token", json={"authToken": auth, "nonce": nonce}).status_code == 200
    assert client.post("/api/v1/auth/token", json={"authToken": auth, "nonce": nonce}).status_code == 401


def test_the_api_refuses_a_missing_forged_or_expired_bearer_token(portal_app, cards, clock):
    client = portal_app.test_client()
    assert client.get("/api/v1/me").status_code == 401
    good = _token(client, cards.issue()).json["access_token"]
    claims = jwt.get_unverified_claims(good)
    forged = jwt.encode(claims, "not-the-server-key", algorithm="HS256")
    assert client.get("/api/v1/me", headers={"Authorization": "Bearer " + forged}).status_code == 401
    header = json.dumps({"alg": "none", "typ": "JWT"}).encode()
    import base64

    unsigned = (base64.urlsafe_b64encode(header).rstrip(b"=").decode() + "." + good.split(".")[1] + ".")
    assert client.get("/api/v1/me", headers={"Authorization": "Bearer " + unsigned}).status_code == 401
    clock.advance(minutes=16)
    assert client.get("/api/v1/me", headers={"Authorization": "Bearer " + good}).status_code == 401


def test_the_api_links_the_account_with_a_signed_payload(portal_app, cards):
    client = portal_app.test_client()
    card = cards.issue(name="石川　啄木")
    bearer = {"Authorization": "Bearer " + _token(client, card).json["access_token"]}
    challenge = client.post("/api/v1/identity/challenge", headers=bearer).json
    jws = build_signed_application(card, PASSWORD, aud=challenge["aud"], nonce=challenge["nonce"],
                                   application=challenge["application"])
    response = client.post("/api/v1/identity", headers=bearer, json={"signedApplication": jws,
                                                                     "nonce": challenge["nonce"]})
    assert response.status_code == 200 and response.json == {"linked": True, "name": "石川　啄木"}
    # An authentication certificate cannot stand in for the signature certificate.
    challenge = client.post("/api/v1/identity/challenge", headers=bearer).json
    auth_cert = json.loads(card.read_text())["auth"]["cert"]
    forged = jws.split(".")
    header = json.loads(base64_url_decode(forged[0]))
    header["x5c"] = [auth_cert]
    forged[0] = base64_url_encode(json.dumps(header).encode())
    refused = client.post("/api/v1/identity", headers=bearer, json={"signedApplication": ".".join(forged),
                                                                    "nonce": challenge["nonce"]})
    assert refused.status_code == 401


def base64_url_decode(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def base64_url_encode(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_the_api_needs_no_csrf_token_but_the_pages_do(portal_app):
    client = portal_app.test_client()
    assert client.post("/api/v1/auth/challenge").status_code == 200
    assert client.post("/auth/challenge").status_code == 400


def test_the_documented_reference_client_signs_in_and_submits_a_signed_payload(live_portal, cards):
    source = (ROOT / "docs/examples/reference_client.py").read_text()
    doc = (ROOT / "docs/api.md").read_text()
    quoted = re.search(r"<!-- reference-client:begin -->\s*```python\n(.*?)```\s*<!-- reference-client:end -->", doc,
                       re.S)
    assert quoted and quoted.group(1) == source, "docs/api.md must show the reference client as it is"
    card = cards.issue(name="宮沢　賢治")
    result = subprocess.run([sys.executable, str(ROOT / "docs/examples/reference_client.py"),
                             live_portal.config["SITE_ORIGIN"], str(card), PIN, PASSWORD.lower()],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["signed_in_as"]["linked"] is True and out["signed_in_as"]["name"] == "宮沢　賢治"
    assert out["after_sign_out"] == 401


NESTED = "[" * 3000 + "]" * 3000  # under 10 kB, deeper than Python's parser can recurse


def test_deeply_nested_json_for_a_token_is_refused_like_any_malformed_body(portal_app):
    client = portal_app.test_client()
    response = client.post("/api/v1/auth/token", data=NESTED, content_type="application/json")
    assert response.status_code == 401 and response.json["error"] == "authentication_failed"
    # The token as a string of JSON is parsed by core.jpki after the (real) nonce is spent: refused alike.
    nonce = client.post("/api/v1/auth/challenge").json["nonce"]
    nested = json.dumps({"authToken": NESTED, "nonce": nonce})
    response = client.post("/api/v1/auth/token", data=nested, content_type="application/json")
    assert response.status_code == 401 and response.json["error"] == "authentication_failed"


def _forged(card_file) -> dict[str, str]:
    """What anyone can send who has read the victim's authentication certificate off the card (no PIN needed)."""
    return {"unverifiedCertificate": json.loads(Path(card_file).read_text())["auth"]["cert"], "algorithm": "RS256",
            "signature": base64.b64encode(os.urandom(256)).decode(), "format": "web-eid:1.0", "appVersion": "1.0.0"}


def test_forged_tokens_with_a_residents_certificate_do_not_lock_the_resident_out(portal_app, cards):
    limit = portal_app.config["CARD_LOGIN_LIMIT"]
    card = cards.issue()
    for n in range(limit + 5):
        attacker = portal_app.test_client()
        peer = {"REMOTE_ADDR": f"203.0.113.{n + 1}"}
        nonce = attacker.post("/api/v1/auth/challenge", environ_base=peer).json["nonce"]
        refused = attacker.post("/api/v1/auth/token", json={"authToken": _forged(card), "nonce": nonce},
                                environ_base=peer)
        assert refused.status_code == 401, refused.json
    victim = portal_app.test_client()
    assert _token(victim, card).status_code == 200
