"""Client addresses behind the TLS proxy, and the global backstop of the sign-in rate limits (real Redis)."""

from __future__ import annotations

PROXY = "127.0.0.2"  # the TLS proxy in front of the apps (an address only; nothing is sent to it)


def _challenge(client, *, peer: str, forwarded: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    return client.post("/api/v1/auth/challenge", headers=headers, environ_base={"REMOTE_ADDR": peer}).status_code


def test_two_residents_behind_the_trusted_proxy_get_separate_budgets(portal_app):
    portal_app.config.update(TRUSTED_PROXIES=(PROXY,), CARD_CHALLENGE_LIMIT=3)
    client = portal_app.test_client()
    first = [_challenge(client, peer=PROXY, forwarded="198.51.100.1") for _ in range(4)]
    assert first == [200, 200, 200, 429]
    assert _challenge(client, peer=PROXY, forwarded="198.51.100.2") == 200, "the second resident shares the budget"


def test_a_client_cannot_pick_its_address_by_prefixing_the_header_the_proxy_appends_to(portal_app):
    portal_app.config.update(TRUSTED_PROXIES=(PROXY,), CARD_CHALLENGE_LIMIT=3)
    client = portal_app.test_client()
    codes = [_challenge(client, peer=PROXY, forwarded=f"203.0.113.{i}, 198.51.100.1") for i in range(5)]
    assert codes == [200, 200, 200, 429, 429]


def test_a_forwarded_for_header_from_an_untrusted_peer_is_ignored(portal_app):
    portal_app.config.update(TRUSTED_PROXIES=(PROXY,), CARD_CHALLENGE_LIMIT=3)
    client = portal_app.test_client()
    codes = [_challenge(client, peer="192.0.2.9", forwarded=f"198.51.100.{i}") for i in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    # The operation log keeps the peer's address, not the one the header claims.
    from sqlalchemy import select

    from portal.extensions import db
    from portal.models import AuditLog

    client.post("/api/v1/auth/token", json={"authToken": {}, "nonce": "x"},
                headers={"X-Forwarded-For": "198.51.100.77"}, environ_base={"REMOTE_ADDR": "192.0.2.10"})
    with portal_app.app_context():
        addresses = db.session.execute(select(AuditLog.client_addr).where(AuditLog.action == "resident.sign_in"))
        assert addresses.scalars().all() == ["192.0.2.10"]


def test_the_global_backstop_refuses_challenges_spread_over_many_addresses(portal_app):
    portal_app.config.update(CARD_CHALLENGE_LIMIT=3, CARD_CHALLENGE_GLOBAL_LIMIT=5)
    client = portal_app.test_client()
    codes = [_challenge(client, peer=f"192.0.2.{i}") for i in range(1, 9)]
    assert codes == [200] * 5 + [429] * 3, codes
    # The page's challenge is of the same family and shares the global budget.
    from bs4 import BeautifulSoup

    token = BeautifulSoup(client.get("/auth/sign-in").text, "html.parser").select_one("input[name=csrf_token]")["value"]
    page = client.post("/auth/challenge", headers={"X-CSRFToken": token}, environ_base={"REMOTE_ADDR": "192.0.2.99"})
    assert page.status_code == 429


def test_the_global_backstop_refuses_logins_spread_over_many_addresses(portal_app):
    portal_app.config.update(CARD_LOGIN_LIMIT=10, CARD_LOGIN_GLOBAL_LIMIT=4)
    client = portal_app.test_client()
    codes = [client.post("/api/v1/auth/token", json={"authToken": {"unverifiedCertificate": f"c{i}"}, "nonce": "n"},
                         environ_base={"REMOTE_ADDR": f"192.0.2.{i}"}).status_code for i in range(1, 7)]
    assert codes == [401] * 4 + [429] * 2, codes


def test_a_terminal_behind_the_trusted_proxy_is_still_identified_when_the_proxy_forwards_the_address(bo_app):
    from backoffice.extensions import db
    from backoffice.services import terminals

    with bo_app.test_request_context("/"):
        terminals.add_terminal(db.session, name="proxy-term", cert_fingerprint="AB:CD:EF:02")
        db.session.commit()
    bo_app.config["TRUSTED_PROXIES"] = (PROXY,)
    client = bo_app.test_client()
    headers = {"X-Client-Cert-Fingerprint": "ab:cd:ef:02", "X-Forwarded-For": "198.51.100.20"}
    assert client.get("/sign-in", headers=headers, environ_base={"REMOTE_ADDR": PROXY}).status_code == 200
    # A client that is not the proxy cannot claim a certificate, whatever address it forwards.
    spoof = {**headers, "X-Forwarded-For": PROXY}
    assert client.get("/sign-in", headers=spoof, environ_base={"REMOTE_ADDR": "192.0.2.5"}).status_code == 403
