"""Bad input on the back office's pages is refused naming the field (400) or not found (404), never a server error.

Each case here was a 500 once: an id or page number past PostgreSQL's integer range, a date whose day after or
whose UTC instant Python cannot represent, a month past 9999-12, a NUL byte that PostgreSQL refuses in text.
Every refusal changes nothing: no operation-log row, no export.
"""

from __future__ import annotations

import re

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import func, select

from backoffice.models import AuditLog, Role
from tests.conftest import csrf_from

HUGE_IDS = (2**31, 2**63, 10**20)  # past INTEGER, past BIGINT, past both


def _log_rows(bo_app) -> int:
    from backoffice.extensions import db

    with bo_app.app_context():
        return db.session.execute(select(func.count()).select_from(AuditLog)).scalar_one()


def _html(response) -> BeautifulSoup:
    return BeautifulSoup(response.text, "html.parser")


def _error_links(response) -> list[str]:
    return [a["href"] for a in _html(response).select(".error-summary a")]


# -- ids in the URL ------------------------------------------------------------------------------------------------


def test_every_route_with_a_number_in_its_path_answers_an_id_past_the_database_range_with_not_found(backoffice):
    app = backoffice.app
    clients: dict[str, tuple[object, str]] = {}
    walked = []
    for rule in app.url_map.iter_rules():
        if not re.search(r"<(?:int|bigint)[:(]", rule.rule):
            continue
        access_rule = getattr(app.view_functions[rule.endpoint], "_access_rule", None)
        assert access_rule is not None, rule.endpoint
        # A role that may reach the view, so the request gets past the access check to the database.
        role = sorted(r.value for r in access_rule.roles)[0] if access_rule.roles else Role.CLERK.value
        if role not in clients:
            client = backoffice.client_for(f"walker_{role}", role)
            clients[role] = (client, csrf_from(client, "/"))
        client, token = clients[role]
        for huge in HUGE_IDS:
            path = re.sub(r"<(?:int|bigint)(?:\([^)]*\))?:\w+>", str(huge), rule.rule)
            if "GET" in (rule.methods or ()):
                response = client.get(path)
            else:
                response = client.post(path, data={"csrf_token": token})
            walked.append((path, response.status_code))
            assert response.status_code in (400, 404), (rule.rule, huge, response.status_code)
    # The walk covers the pages reported, so a converter that stopped matching them would show here.
    paths = {p for p, _ in walked}
    for expected in ("/ledger/residents/", "/cases/", "/cards/", "/counter/", "/certificates/cases/",
                     "/support-measures/", "/resident-requests/", "/audit/alerts/"):
        assert any(p.startswith(expected) for p in paths), expected


# -- the operation log's filters -------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["999999999999999999", "99999999999999999999", "0", "-5", "two"])
def test_an_operation_log_page_out_of_range_is_refused_naming_the_page(backoffice, page):
    auditor = backoffice.client_for("aud1", "auditor")
    before = _log_rows(backoffice.app)
    response = auditor.get(f"/audit/?page={page}")
    assert response.status_code == 400
    assert set(_error_links(response)) == {"#page"}
    assert _html(response).select("table.log") == []
    assert _log_rows(backoffice.app) == before  # not even the browsing is logged: nothing was browsed


@pytest.mark.parametrize(("query", "field"), [("date_to=9999-12-31", "date_to"), ("date_from=0001-01-01", "date_from"),
                                              ("date_from=3000-01-01", "date_from"), ("date_to=1899-12-31", "date_to")])
def test_an_operation_log_date_outside_1900_to_2999_is_refused_naming_the_field_in_browse_and_export(
        backoffice, query, field):
    auditor = backoffice.client_for("aud1", "auditor")
    token = csrf_from(auditor, "/audit/")
    before = _log_rows(backoffice.app)
    response = auditor.get(f"/audit/?{query}")
    assert response.status_code == 400
    assert _error_links(response) == [f"#{field}"]
    export = auditor.post(f"/audit/export?{query}", data={"csrf_token": token})
    assert export.status_code == 400 and export.mimetype == "text/html"
    assert _error_links(export) == [f"#{field}"]
    assert _log_rows(backoffice.app) == before
    # The ends of the range themselves are still dates to filter by.
    response = auditor.get("/audit/?date_from=1900-01-01&date_to=2999-12-31&page=1")
    assert response.status_code == 200 and _error_links(response) == []


# -- statistics ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("first", "last", "field"), [("9999-12", "9999-12", "first"), ("2026-01", "9999-12", "last"),
                                                      ("0001-01", "0001-01", "first"), ("3000-01", "3000-02", "first")])
def test_a_statistics_month_outside_1900_to_2999_is_refused_naming_the_field_and_nothing_is_exported(
        backoffice, first, last, field):
    clerk = backoffice.client_for("clk1", "clerk")
    token = csrf_from(clerk, "/statistics/")
    before = _log_rows(backoffice.app)
    response = clerk.get(f"/statistics/?first={first}&last={last}")
    assert response.status_code == 400
    assert _error_links(response) == [f"#{field}"]
    assert _html(response).select_one("#by-month") is None
    export = clerk.post("/statistics/", data={"csrf_token": token, "first": first, "last": last, "export": "csv"})
    assert export.status_code == 400 and "Content-Disposition" not in export.headers
    assert _error_links(export) == [f"#{field}"]
    assert _log_rows(backoffice.app) == before


# -- control characters in text --------------------------------------------------------------------------------------


def _refused_naming(response, field: str) -> bool:
    refusal = _html(response).select_one("#refused-field")
    return response.status_code == 400 and refusal is not None and field in refusal.get_text()


@pytest.mark.parametrize("bad", ["\x00", "\x1b", "\x08"], ids=["nul", "escape", "backspace"])
def test_a_control_character_in_the_sign_in_login_id_is_refused_naming_the_field(backoffice, bad):
    backoffice.add_staff("u1", "clerk")
    client = backoffice.enrolled_client("t1")
    token = csrf_from(client, "/sign-in")
    before = _log_rows(backoffice.app)
    response = client.post("/sign-in", data={"csrf_token": token, "login_id": f"u1{bad}", "password": "x" * 12,
                                             "totp": "123456"})
    assert _refused_naming(response, "login_id")
    assert _log_rows(backoffice.app) == before  # not even a failed sign-in: nothing was tried
    assert client.get("/ledger/search").status_code == 302  # and nobody is signed in


@pytest.mark.parametrize("bad", ["\x00", "\x1f"], ids=["nul", "unit-separator"])
def test_a_control_character_in_the_ledger_search_is_refused_naming_the_field(backoffice, bad):
    clerk = backoffice.client_for("clk1", "clerk")
    token = csrf_from(clerk, "/ledger/search")
    before = _log_rows(backoffice.app)
    response = clerk.post("/ledger/search", data={"csrf_token": token, "name": f"宮沢{bad}",
                                                  "birth_date": "1990-08-27"})
    assert _refused_naming(response, "name")
    assert "宮沢" not in response.text  # the refusal names the field, never echoes what was typed
    assert _log_rows(backoffice.app) == before


@pytest.mark.parametrize(("query", "field"), [("actor=a%00", "actor"), ("action=staff%00", "action"),
                                              ("actor=a%0B", "actor")])
def test_a_control_character_in_an_operation_log_filter_is_refused_naming_the_field(backoffice, query, field):
    auditor = backoffice.client_for("aud1", "auditor")
    before = _log_rows(backoffice.app)
    response = auditor.get(f"/audit/?{query}")
    assert _refused_naming(response, field)
    assert _log_rows(backoffice.app) == before
