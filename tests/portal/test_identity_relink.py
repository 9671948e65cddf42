"""A linked portal account stays linked to its holder: another person's signature cannot take it over."""

from __future__ import annotations

import json

from bs4 import BeautifulSoup
from sqlalchemy import select

from bridge.peers.jlis.cardclient import build_auth_token, build_signed_application
from portal.models import AuditLog, PortalAccount
from tests.portal_fixtures import PASSWORD, PIN

ORIGIN = "http://127.0.0.1:5000"


def _bearer(client, card) -> dict[str, str]:
    nonce = client.post("/api/v1/auth/challenge").json["nonce"]
    auth = build_auth_token(card, PIN, origin=ORIGIN, nonce=nonce)
    return {"Authorization": "Bearer " + client.post("/api/v1/auth/token",
                                                     json={"authToken": auth, "nonce": nonce}).json["access_token"]}


def _api_link(client, bearer, signing_card):
    challenge = client.post("/api/v1/identity/challenge", headers=bearer).json
    jws = build_signed_application(signing_card, PASSWORD, aud=challenge["aud"], nonce=challenge["nonce"],
                                   application=challenge["application"])
    return client.post("/api/v1/identity", headers=bearer, json={"signedApplication": jws,
                                                                 "nonce": challenge["nonce"]})


def _account(app) -> PortalAccount:
    from portal.extensions import db

    with app.app_context():
        return db.session.execute(select(PortalAccount)).scalar_one()


def test_the_api_refuses_to_relink_an_account_to_another_persons_signature(portal_app, cards):
    client = portal_app.test_client()
    mine, theirs = cards.issue(name="石川　啄木"), cards.issue(name="宮沢　賢", birth_date=__import__("datetime").date(
        1896, 8, 27), address="岩手県花巻市豊沢町4番地")
    bearer = _bearer(client, mine)
    assert _api_link(client, bearer, mine).status_code == 200
    before = _account(portal_app)
    response = _api_link(client, bearer, theirs)
    assert response.status_code == 409, f"relinked to another person: {response.status_code} {response.json}"
    assert response.json["error"] == "identity_mismatch"
    after = _account(portal_app)
    assert (after.name, after.address, after.birth_date, after.sign_cert_serial) == (
        before.name, before.address, before.birth_date, before.sign_cert_serial)
    assert client.get("/api/v1/me", headers=bearer).json["name"] == "石川　啄木"
    from portal.extensions import db

    with portal_app.app_context():
        refused = db.session.execute(select(AuditLog.detail).where(AuditLog.action == "resident.link",
                                                                   AuditLog.outcome == "failure")).scalars().all()
    assert any("IDENTITY_MISMATCH" in str(d) for d in refused)
    assert "宮沢" not in json.dumps([str(d) for d in refused], ensure_ascii=False)


def test_the_same_person_may_relink_with_a_renewed_signature_certificate_after_a_move(portal_app, cards):
    client = portal_app.test_client()
    card = cards.issue(name="石川　啄木")
    # After a move the signature certificate is renewed with the new address; name, birth date and sex stay.
    renewed = cards.issue(name="石川　啄木", address="岩手県北上市大通り一丁目3番1号")
    bearer = _bearer(client, card)
    assert _api_link(client, bearer, card).status_code == 200
    response = _api_link(client, bearer, renewed)
    assert response.status_code == 200, response.json
    assert _account(portal_app).address == "岩手県北上市大通り一丁目3番1号"


def _csrf(client, path: str) -> str:
    page = client.get(path, follow_redirects=True)
    return BeautifulSoup(page.text, "html.parser").select_one("input[name=csrf_token]")["value"]


def test_the_link_page_refuses_to_relink_to_another_persons_signature(portal_app, cards):
    client = portal_app.test_client()
    mine, theirs = cards.issue(name="石川　啄木"), cards.issue(name="金田一　京助")
    csrf = _csrf(client, "/auth/sign-in")
    nonce = client.post("/auth/challenge", headers={"X-CSRFToken": csrf}).json["nonce"]
    token = build_auth_token(mine, PIN, origin=ORIGIN, nonce=nonce)
    assert client.post("/auth/login", json={"authToken": token}, headers={"X-CSRFToken": csrf}).status_code == 200

    def link(card):
        csrf = _csrf(client, "/auth/link")
        challenge = client.post("/auth/link/challenge", headers={"X-CSRFToken": csrf}).json
        jws = build_signed_application(card, PASSWORD, aud=challenge["aud"], nonce=challenge["nonce"],
                                       application=challenge["application"])
        return client.post("/auth/link", json={"signedApplication": jws}, headers={"X-CSRFToken": csrf})

    assert link(mine).status_code == 200
    response = link(theirs)
    assert response.status_code == 409, f"relinked to another person: {response.status_code}"
    assert response.json["error"] == "identity_mismatch" and "市役所" in response.json["message"]
    assert _account(portal_app).name == "石川　啄木"
