"""Card sign-in on the portal (R9, R15, R19 for residents): the web layer around core.jpki.

The token checks themselves are tested case by case in tests/core/test_jpki_auth_token.py; here
are the cases that belong to HTTP: sessions, cookies, CSRF, headers, accounts, rate limits.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import func, select

from bridge.peers.jlis.cardclient import build_auth_token, build_signed_application
from portal.models import AuditLog, PortalAccount, ResidentSession
from tests.portal_fixtures import PASSWORD, PIN

ORIGIN = "http://127.0.0.1:5000"


def _csrf(client) -> str:
    page = client.get("/auth/sign-in", follow_redirects=True)  # signed in, it leads on to a page with a form too
    return BeautifulSoup(page.text, "html.parser").select_one("input[name=csrf_token]")["value"]


def _challenge(client, csrf: str) -> str:
    response = client.post("/auth/challenge", headers={"X-CSRFToken": csrf})
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    return response.json["nonce"]


def _sign_in(client, card, *, pin: str = PIN, origin: str = ORIGIN):
    csrf = _csrf(client)
    nonce = _challenge(client, csrf)
    token = build_auth_token(card, pin, origin=origin, nonce=nonce)
    return client.post("/auth/login", json={"authToken": token}, headers={"X-CSRFToken": csrf})


def _link(client, card):
    csrf = _csrf(client)
    challenge = client.post("/auth/link/challenge", headers={"X-CSRFToken": csrf}).json
    jws = build_signed_application(card, PASSWORD, aud=challenge["aud"], nonce=challenge["nonce"],
                                   application=challenge["application"])
    return client.post("/auth/link", json={"signedApplication": jws}, headers={"X-CSRFToken": csrf})


def _count(app, model) -> int:
    from portal.extensions import db

    with app.app_context():
        return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def _log(app, action):
    from portal.extensions import db

    with app.app_context():
        return [(r.outcome, r.detail_dict()) for r in db.session.execute(
            select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.seq)).scalars()]


def test_a_card_signs_in_links_its_four_items_once_and_lands_on_my_page(portal_app, cards):
    card = cards.issue()
    client = portal_app.test_client()
    response = _sign_in(client, card)
    assert response.status_code == 200 and response.json["redirect"] == "/auth/link"
    assert client.get("/mypage/").location.endswith("/auth/link")
    linked = _link(client, card)
    assert linked.json["redirect"] == "/mypage/"
    page = BeautifulSoup(client.get("/mypage/").text, "html.parser")
    assert "宮沢　賢" in page.select_one("#identity").text
    # Next time the same card goes straight to My page.
    other = portal_app.test_client()
    assert _sign_in(other, card).json["redirect"] == "/mypage/"
    assert _count(portal_app, PortalAccount) == 1
    assert [o for o, _ in _log(portal_app, "resident.sign_in")] == ["success", "success"]
    assert _log(portal_app, "resident.link")[0][0] == "success"


def test_a_wrong_pin_cannot_even_build_a_token(cards):
    from bridge.peers.jlis.virtualcard import WrongPin

    with pytest.raises(WrongPin):
        build_auth_token(cards.issue(), "9999", origin=ORIGIN, nonce="x" * 44)


def test_a_token_signed_for_another_origin_is_refused_whatever_the_host_header_says(portal_app, cards):
    card = cards.issue()
    client = portal_app.test_client()
    csrf = _csrf(client)
    nonce = _challenge(client, csrf)
    token = build_auth_token(card, PIN, origin="https://evil.example", nonce=nonce)
    # (A different Host header would not even carry the session cookie; the forwarded headers are the real risk.)
    response = client.post("/auth/login", json={"authToken": token}, headers={
        "X-CSRFToken": csrf, "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
        "Origin": "https://evil.example"})
    assert response.status_code == 401
    assert response.json["error"] == response.json["hint"] == "authentication_failed"  # nothing more specific
    assert _count(portal_app, ResidentSession) == 0
    assert _log(portal_app, "resident.sign_in")[0][1]["code"] == "SIGNATURE_INVALID"


def test_a_token_made_for_one_browser_session_fails_in_another(portal_app, cards):
    card = cards.issue()
    a, b = portal_app.test_client(), portal_app.test_client()
    csrf_a, csrf_b = _csrf(a), _csrf(b)
    nonce_a = _challenge(a, csrf_a)
    _challenge(b, csrf_b)
    token = build_auth_token(card, PIN, origin=ORIGIN, nonce=nonce_a)
    assert b.post("/auth/login", json={"authToken": token}, headers={"X-CSRFToken": csrf_b}).status_code == 401
    # The nonce of session A is still good for session A: B's failure did not consume it.
    assert a.post("/auth/login", json={"authToken": token}, headers={"X-CSRFToken": csrf_a}).status_code == 200


def test_a_login_without_the_csrf_token_is_refused_before_the_nonce_is_spent(portal_app, cards):
    card = cards.issue()
    client = portal_app.test_client()
    csrf = _csrf(client)
    nonce = _challenge(client, csrf)
    token = build_auth_token(card, PIN, origin=ORIGIN, nonce=nonce)
    assert client.post("/auth/login", json={"authToken": token}).status_code == 400
    assert client.post("/auth/login", json={"authToken": token}, headers={"X-CSRFToken": csrf}).status_code == 200


def test_a_token_replayed_with_an_old_cookie_after_sign_in_is_refused(portal_app, cards):
    card = cards.issue()
    client = portal_app.test_client()
    csrf = _csrf(client)
    nonce = _challenge(client, csrf)
    before = client.get_cookie("portal_session").value
    token = build_auth_token(card, PIN, origin=ORIGIN, nonce=nonce)
    assert client.post("/auth/login", json={"authToken": token}, headers={"X-CSRFToken": csrf}).status_code == 200
    after = client.get_cookie("portal_session").value
    assert before != after  # the session id changes at sign-in
    attacker = portal_app.test_client()
    attacker.set_cookie("portal_session", before)
    assert attacker.post("/auth/login", json={"authToken": token}, headers={"X-CSRFToken": csrf}).status_code == 401
    assert _count(portal_app, ResidentSession) == 1


def test_the_session_cookie_is_httponly_and_samesite_and_secure_outside_development(portal_app, cards):
    portal_app.config["SESSION_COOKIE_SECURE"] = True
    response = _sign_in(portal_app.test_client(), cards.issue())
    header = "; ".join(response.headers.getlist("Set-Cookie"))
    assert "portal_session=" in header and "HttpOnly" in header and "SameSite=Lax" in header and "Secure" in header


def test_a_revoked_card_is_refused_as_soon_as_the_crl_is_republished(portal_app, cards):
    card = cards.issue()
    assert _sign_in(portal_app.test_client(), card).status_code == 200
    cards.revoke(card)
    response = _sign_in(portal_app.test_client(), card)
    assert response.status_code == 401 and response.json["hint"] == "certificate_revoked"
    assert "city office" in response.json["message"] or "市役所" in response.json["message"]


def test_a_card_of_the_second_ca_generation_signs_in(portal_app, cards):
    card = cards.issue(generation=2)
    response = _sign_in(portal_app.test_client(), card)
    assert response.status_code == 200


def test_a_resident_session_ends_when_idle_and_at_its_absolute_lifetime(portal_app, cards, clock):
    card = cards.issue()
    client = portal_app.test_client()
    _sign_in(client, card)
    _link(client, card)
    clock.advance(minutes=14)
    assert client.get("/mypage/").status_code == 200
    clock.advance(minutes=16)
    assert client.get("/mypage/").location.startswith("/auth/sign-in")
    again = portal_app.test_client()
    _sign_in(again, card)
    for _ in range(8 * 4 + 1):
        clock.advance(minutes=15)
        last = again.get("/mypage/")
    assert last.status_code == 302


def test_a_session_cookie_replayed_after_sign_out_is_refused(portal_app, cards):
    card = cards.issue()
    client = portal_app.test_client()
    _sign_in(client, card)
    _link(client, card)
    stolen = client.get_cookie("portal_session").value
    client.post("/auth/sign-out", data={"csrf_token": _csrf(client)})
    client.set_cookie("portal_session", stolen)
    assert client.get("/mypage/").status_code == 302
    assert [o for o, _ in _log(portal_app, "resident.sign_out")] == ["success"]


def test_too_many_challenges_from_one_address_are_throttled(portal_app):
    portal_app.config["CARD_CHALLENGE_LIMIT"] = 3
    client = portal_app.test_client()
    csrf = _csrf(client)
    codes = [client.post("/auth/challenge", headers={"X-CSRFToken": csrf}).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]


def _sign_in_from(app, card, peer: str, *, token=None):
    """A sign-in by the page from address ``peer``: the card's own token unless ``token`` (a forgery) is given."""
    client = app.test_client()
    csrf = _csrf(client)
    nonce = client.post("/auth/challenge", headers={"X-CSRFToken": csrf},
                        environ_base={"REMOTE_ADDR": peer}).json["nonce"]
    token = token or build_auth_token(card, PIN, origin=ORIGIN, nonce=nonce)
    return client.post("/auth/login", json={"authToken": token}, headers={"X-CSRFToken": csrf},
                       environ_base={"REMOTE_ADDR": peer})


def test_too_many_verified_sign_ins_with_one_card_are_throttled_even_from_new_addresses(portal_app, cards):
    # A genuine card (and its PIN) driven by a script: only sign-ins the card really signed use up its budget.
    portal_app.config["CARD_LOGIN_LIMIT"] = 2
    card = cards.issue()
    codes = [_sign_in_from(portal_app, card, f"127.0.0.{n + 2}").status_code for n in range(4)]
    assert codes == [200, 200, 429, 429]
    assert _count(portal_app, ResidentSession) == 2
    assert [(o, d.get("code")) for o, d in _log(portal_app, "resident.sign_in")] == [
        ("success", None), ("success", None), ("denied", "RATE_LIMITED"), ("denied", "RATE_LIMITED")]


def _forged(card_file) -> dict[str, str]:
    """What anyone can send who has read the victim's authentication certificate off the card (no PIN needed)."""
    return {"unverifiedCertificate": json.loads(card_file.read_text())["auth"]["cert"], "algorithm": "RS256",
            "signature": base64.b64encode(os.urandom(256)).decode(), "format": "web-eid:1.0", "appVersion": "1.0.0"}


def test_forged_tokens_with_a_residents_certificate_do_not_lock_the_resident_out(portal_app, cards):
    limit = portal_app.config["CARD_LOGIN_LIMIT"]
    card = cards.issue()
    codes = {_sign_in_from(portal_app, card, f"203.0.113.{n + 1}", token=_forged(card)).status_code
             for n in range(limit + 5)}
    assert codes == {401}
    response = _sign_in_from(portal_app, card, "198.51.100.7")
    assert response.status_code == 200, response.json


def test_deeply_nested_json_posted_to_the_sign_in_is_refused_like_any_malformed_body(portal_app):
    client = portal_app.test_client()
    csrf = _csrf(client)
    client.post("/auth/challenge", headers={"X-CSRFToken": csrf})
    response = client.post("/auth/login", data="[" * 3000 + "]" * 3000, content_type="application/json",
                           headers={"X-CSRFToken": csrf})
    assert response.status_code == 401 and response.json["error"] == "authentication_failed"


def test_a_link_signed_with_another_cards_signature_key_for_the_wrong_purpose_is_refused(portal_app, cards):
    card = cards.issue()
    client = portal_app.test_client()
    _sign_in(client, card)
    csrf = _csrf(client)
    challenge = client.post("/auth/link/challenge", headers={"X-CSRFToken": csrf}).json
    jws = build_signed_application(card, PASSWORD, aud=challenge["aud"], nonce=challenge["nonce"],
                                   application={"purpose": "something-else"})
    assert client.post("/auth/link", json={"signedApplication": jws}, headers={"X-CSRFToken": csrf}).status_code == 401
    from portal.extensions import db

    with portal_app.app_context():
        assert db.session.execute(select(PortalAccount.linked_at)).scalar_one() is None


def test_the_sign_in_page_is_japanese_first_and_complete_in_english(portal_app):
    client = portal_app.test_client()
    ja = BeautifulSoup(client.get("/auth/sign-in").text, "html.parser")
    assert ja.select_one("h1").text == "マイナンバーカードでサインイン"
    assert "PINが違います" in json.loads(ja.select_one("#card-messages").text)["wrongpin"]
    en = BeautifulSoup(client.get("/auth/sign-in?lang=en").text, "html.parser")
    assert en.select_one("h1").text == "Sign in with your My Number Card"
    assert "The PIN is wrong" in json.loads(en.select_one("#card-messages").text)["wrongpin"]
    assert en.select_one("label[for=pin]") is not None and en.select_one("label[for=card-file]") is not None


def test_an_expired_session_start_time_uses_the_application_clock(portal_app, cards, clock):
    # The certificate is valid "now" for the app's clock; moving the clock past its end refuses it.
    card = cards.issue(birth_date=dt.date(1990, 8, 27))
    clock.advance(days=365 * 6)
    portal_app.extensions.pop("jpki_trust", None)
    response = _sign_in(portal_app.test_client(), card)
    assert response.status_code == 401


def test_every_portal_response_carries_the_security_headers(portal_app):
    portal_app.config["APP_ENV"] = "test"
    client = portal_app.test_client()
    for path in ("/", "/auth/sign-in", "/services", "/api/v1/openapi.json", "/no-such-page"):
        response = client.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp, path
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        assert response.headers["Referrer-Policy"] == "no-referrer", path
        assert response.headers["Cache-Control"] == "no-store", path
        assert "max-age" in response.headers["Strict-Transport-Security"], path


def test_with_redis_unreachable_sign_in_and_signing_answer_503_never_500(portal_app, cards):
    from core.redisconn import get_redis

    client = portal_app.test_client()
    csrf = _csrf(client)
    get_redis(portal_app).close()
    working = portal_app.config["REDIS_URL"]
    portal_app.extensions["redis"] = None
    portal_app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    page = client.post("/auth/challenge", headers={"X-CSRFToken": csrf})
    assert page.status_code == 503 and page.headers["Retry-After"] == "30"
    api = client.post("/api/v1/auth/challenge")
    assert api.status_code == 503 and api.json == {"error": "temporarily_unavailable"}
    assert client.get("/auth/sign-in").status_code == 200  # pages that need no Redis still work
    portal_app.extensions["redis"] = None
    portal_app.config["REDIS_URL"] = working


def test_a_browser_session_ends_at_the_next_page_once_the_cards_certificate_is_revoked(portal_app, cards):
    card = cards.issue()
    client = portal_app.test_client()
    _sign_in(client, card)
    _link(client, card)
    assert client.get("/mypage/").status_code == 200
    cards.revoke(card)
    response = client.get("/mypage/")
    assert response.status_code == 302 and response.location.startswith("/auth/sign-in"), "a revoked card lives on"
    assert _log(portal_app, "resident.session_end") == [("failure", {"reason": "revoked"})]
