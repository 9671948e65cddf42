"""Every back-office view declares who may use it; the rule is enforced on the server."""

from __future__ import annotations

import pytest
from flask import Blueprint

from backoffice.security import AccessRule


def test_every_back_office_view_declares_an_access_rule(bo_app):
    missing = [endpoint for endpoint, view in bo_app.view_functions.items()
               if endpoint != "static" and not isinstance(getattr(view, "_access_rule", None), AccessRule)]
    assert missing == []


def test_a_view_without_a_rule_is_served_to_nobody(backoffice):
    bp = Blueprint("forgotten", __name__)

    @bp.route("/forgotten")
    def forgotten():
        return "personal data"

    backoffice.app.register_blueprint(bp)
    client = backoffice.client_for("admin1", "admin", "clerk", "auditor", "number_use", "approver")
    response = client.get("/forgotten")
    assert response.status_code == 500
    assert "personal data" not in response.text


@pytest.mark.parametrize(("roles", "path", "allowed"), [
    (("clerk",), "/audit/", False),
    (("auditor",), "/audit/", True),
    (("auditor",), "/ledger/search", False),
    (("admin",), "/admin/staff", True),
    (("clerk",), "/admin/staff", False),
    (("approver",), "/ledger/search", True),
    (("number_use",), "/admin/terminals", False),
])
def test_roles_are_checked_on_the_server(backoffice, roles, path, allowed):
    client = backoffice.client_for("someone", *roles)
    assert client.get(path).status_code == (200 if allowed else 403)


def test_signed_out_visitors_on_a_registered_terminal_are_sent_to_sign_in(backoffice):
    client = backoffice.enrolled_client()
    for path in ("/", "/ledger/search", "/audit/", "/admin/staff"):
        response = client.get(path)
        assert response.status_code == 302 and response.location.endswith("/sign-in")


def test_a_post_without_the_csrf_token_is_refused(backoffice):
    client = backoffice.client_for("clerk1", "clerk")
    response = client.post("/ledger/search", data={"name": "佐藤", "birth_date": "1980-01-01"})
    assert response.status_code == 400


def test_pages_are_never_cached_and_carry_the_security_headers(backoffice):
    client = backoffice.client_for("clerk1", "clerk")
    response = client.get("/ledger/search")
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "max-age" in response.headers["Strict-Transport-Security"]


def test_an_error_page_shows_no_internals(backoffice):
    bp = Blueprint("broken", __name__)

    from backoffice.security import access

    @bp.route("/broken")
    @access(public=True)
    def broken():
        raise RuntimeError("secret internals 123456789012")

    backoffice.app.register_blueprint(bp)
    client = backoffice.enrolled_client()
    response = client.get("/broken")
    assert response.status_code == 500
    assert "secret internals" not in response.text and "Traceback" not in response.text
