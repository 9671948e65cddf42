"""Registered terminals (R1): only enrolled, unrevoked terminals are served."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select

from backoffice.models import AuditLog
from tests.conftest import csrf_from


def _refusals(bo_app):
    from backoffice.extensions import db

    with bo_app.app_context():
        return [r.detail_dict()["reason"] for r in db.session.execute(
            select(AuditLog).where(AuditLog.action == "terminal.refused").order_by(AuditLog.seq)).scalars()]


@pytest.mark.sqlite
def test_an_unregistered_terminal_gets_403_and_an_audit_row(bo_app):
    client = bo_app.test_client()
    for path in ("/sign-in", "/ledger/search", "/ledger/residents/1", "/audit/"):
        assert client.get(path).status_code == 403
    assert _refusals(bo_app) == ["unregistered"] * 4


def test_a_revoked_terminal_is_refused_from_its_next_request(backoffice):
    client = backoffice.client_for("clerk1", "clerk", terminal="counter-7")
    assert client.get("/ledger/search").status_code == 200
    admin = backoffice.client_for("admin1", "admin")
    page = BeautifulSoup(admin.get("/admin/terminals").text, "html.parser")
    form = page.select_one("form[action$='/counter-7/revoke']")
    admin.post(form["action"], data={"csrf_token": form.select_one("input[name=csrf_token]")["value"]})
    assert client.get("/ledger/search").status_code == 403
    assert "revoked" in _refusals(backoffice.app)


def test_an_enrollment_code_works_only_once(backoffice):
    code = backoffice.add_terminal("counter-1")
    first = backoffice.app.test_client()
    assert first.post("/terminal/enroll", data={"code": code, "csrf_token": csrf_from(first, "/terminal/enroll")}
                      ).status_code == 302
    second = backoffice.app.test_client()
    response = second.post("/terminal/enroll", data={"code": code, "csrf_token": csrf_from(second, "/terminal/enroll")})
    assert response.status_code == 200
    assert BeautifulSoup(response.text, "html.parser").select_one("#code-error") is not None
    assert second.get("/sign-in").status_code == 403


def test_an_enrollment_code_expires_after_a_day(backoffice):
    code = backoffice.add_terminal("counter-1")
    backoffice.clock.advance(hours=25)
    client = backoffice.app.test_client()
    response = client.post("/terminal/enroll", data={"code": code, "csrf_token": csrf_from(client, "/terminal/enroll")})
    assert response.status_code == 200
    assert client.get("/sign-in").status_code == 403


def test_a_forged_terminal_cookie_is_refused(backoffice):
    client = backoffice.enrolled_client()
    value = client.get_cookie("bo_terminal").value
    client.set_cookie("bo_terminal", value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert client.get("/sign-in").status_code == 403
    assert "bad_cookie" in _refusals(backoffice.app)


def test_a_client_certificate_header_counts_only_from_a_trusted_proxy(bo_app):
    from backoffice.extensions import db
    from backoffice.services import terminals

    with bo_app.test_request_context("/"):
        terminals.add_terminal(db.session, name="proxy-term", cert_fingerprint="AB:CD:EF:01")
        db.session.commit()
    header = {"X-Client-Cert-Fingerprint": "ab:cd:ef:01"}
    client = bo_app.test_client()
    # Not from a trusted proxy: the header is ignored.
    assert client.get("/sign-in", headers=header).status_code == 403
    bo_app.config["TRUSTED_PROXIES"] = ("127.0.0.1",)
    assert client.get("/sign-in", headers=header, environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    assert client.get("/sign-in", headers=header, environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 403
    unknown = {"X-Client-Cert-Fingerprint": "ff:ff"}
    assert client.get("/sign-in", headers=unknown, environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 403
