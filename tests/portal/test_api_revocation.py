"""Bearer tokens of the portal API end when the resident signs out or the card's certificate is revoked."""

from __future__ import annotations

from sqlalchemy import select

from bridge.peers.jlis.cardclient import build_auth_token
from portal.models import AuditLog
from tests.portal_fixtures import PIN

ORIGIN = "http://127.0.0.1:5000"


def _bearer(client, card) -> dict[str, str]:
    nonce = client.post("/api/v1/auth/challenge").json["nonce"]
    auth = build_auth_token(card, PIN, origin=ORIGIN, nonce=nonce)
    response = client.post("/api/v1/auth/token", json={"authToken": auth, "nonce": nonce})
    assert response.status_code == 200, response.json
    return {"Authorization": "Bearer " + response.json["access_token"]}


def test_a_token_used_after_api_sign_out_is_refused(portal_app, cards):
    client = portal_app.test_client()
    card = cards.issue()
    first, second = _bearer(client, card), _bearer(client, card)
    assert client.get("/api/v1/me", headers=first).status_code == 200
    response = client.post("/api/v1/auth/sign-out", headers=first)
    assert response.status_code == 204, response.status_code
    # The token that signed out and every other token of the account are refused from now on.
    assert client.get("/api/v1/me", headers=first).status_code == 401, "a signed-out token still works"
    assert client.get("/api/v1/me", headers=second).status_code == 401, "another token of the account still works"
    assert client.post("/api/v1/auth/sign-out", headers=first).status_code == 401
    # Signing in again with the card gives a token that works.
    fresh = _bearer(client, card)
    assert client.get("/api/v1/me", headers=fresh).status_code == 200
    from portal.extensions import db

    with portal_app.app_context():
        actions = db.session.execute(select(AuditLog.action).where(AuditLog.action == "resident.api_sign_out"))
        assert len(actions.all()) == 1


def test_a_token_is_refused_once_the_cards_certificate_is_revoked_and_the_crl_republished(portal_app, cards):
    client = portal_app.test_client()
    card = cards.issue()
    bearer = _bearer(client, card)
    assert client.get("/api/v1/me", headers=bearer).status_code == 200
    cards.revoke(card)  # J-LIS revokes the authentication certificate and publishes the CRL
    response = client.get("/api/v1/me", headers=bearer)
    assert response.status_code == 401, "a token of a revoked card still works"
    assert response.json["error"] == "unauthorized"
    assert client.post("/api/v1/applications/challenge", headers=bearer).status_code == 401


def test_revoking_another_card_leaves_a_token_alone(portal_app, cards):
    client = portal_app.test_client()
    mine, other = cards.issue(), cards.issue(name="石川　啄木")
    bearer = _bearer(client, mine)
    cards.revoke(other)
    assert client.get("/api/v1/me", headers=bearer).status_code == 200


def test_sign_out_is_in_the_openapi_document(portal_app):
    document = portal_app.test_client().get("/api/v1/openapi.json").json
    operation = document["paths"]["/api/v1/auth/sign-out"]["post"]
    assert operation["operationId"] == "authSignOut" and "204" in operation["responses"]
