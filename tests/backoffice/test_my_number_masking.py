"""My Numbers (R2): masked for staff without number_use on pages, CSV and JSON; unmasking is audited."""

from __future__ import annotations

import re

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select, text

from backoffice.models import AuditLog
from tests.conftest import csrf_from
from tests.factories import make_resident, my_number

NUMBER = my_number(424242)


@pytest.fixture
def resident_id(bo_app):
    from backoffice.extensions import db

    with bo_app.app_context():
        rid = make_resident(db.session, bo_app.config, my_number=NUMBER, name="番号　確認",
                            name_kana="バンゴウ　カクニン").id
        db.session.commit()
    return rid


def _unmask_rows(bo_app):
    from backoffice.extensions import db

    with bo_app.app_context():
        return [(r.actor, r.outcome, r.target_id) for r in db.session.execute(
            select(AuditLog).where(AuditLog.action == "ledger.unmask").order_by(AuditLog.seq)).scalars()]


def _no_number(body: str) -> None:
    assert NUMBER not in body
    assert NUMBER[-4:] not in re.sub(r"\d{5,}", "", body)  # not even the last four digits on their own


def test_a_clerk_never_sees_the_my_number_on_the_record_page(backoffice, resident_id):
    client = backoffice.client_for("clerk1", "clerk")
    page = client.get(f"/ledger/residents/{resident_id}")
    _no_number(page.text)
    soup = BeautifulSoup(page.text, "html.parser")
    assert soup.select_one("dd.my-number").text.strip().startswith("************")
    assert soup.select_one("form[action$='/my-number']") is None


def test_a_clerk_never_sees_the_my_number_in_search_results_or_the_csv_export(backoffice, resident_id):
    client = backoffice.client_for("clerk1", "clerk")
    fields = {"name": "番号", "birth_date": "1980-04-01"}
    page = client.post("/ledger/search", data={"csrf_token": csrf_from(client, "/ledger/search"), **fields})
    assert "番号　確認" in page.text
    _no_number(page.text)
    export = client.post("/ledger/search", data={"csrf_token": csrf_from(client, "/ledger/search"),
                                                 "export": "csv", **fields})
    assert export.mimetype == "text/csv"
    body = export.get_data(as_text=True)
    assert "番号　確認" in body and "************" in body
    _no_number(body)


def test_a_clerk_never_sees_the_my_number_in_json(backoffice, resident_id):
    client = backoffice.client_for("clerk1", "clerk")
    response = client.get(f"/ledger/api/residents/{resident_id}")
    assert response.json["my_number"] == "************"
    _no_number(response.get_data(as_text=True))


def test_number_use_staff_see_it_masked_until_they_unmask_and_the_unmask_is_audited(backoffice, resident_id):
    client = backoffice.client_for("number1", "number_use", "clerk")
    page = client.get(f"/ledger/residents/{resident_id}")
    _no_number(page.text)
    form = BeautifulSoup(page.text, "html.parser").select_one("form[action$='/my-number']")
    revealed = client.post(form["action"], data={"csrf_token": form.select_one("input[name=csrf_token]")["value"]})
    assert BeautifulSoup(revealed.text, "html.parser").select_one(".revealed").text == NUMBER
    assert _unmask_rows(backoffice.app) == [("number1", "success", str(resident_id))]


def test_a_clerk_cannot_unmask_by_posting_directly(backoffice, resident_id):
    client = backoffice.client_for("clerk1", "clerk")
    response = client.post(f"/ledger/residents/{resident_id}/my-number", data={"csrf_token": csrf_from(client, "/")})
    assert response.status_code == 403
    _no_number(response.text)


def test_the_database_holds_only_ciphertext_and_a_keyed_index(bo_app, resident_id):
    from backoffice.extensions import db

    with bo_app.app_context():
        row = db.session.execute(text("SELECT * FROM resident WHERE id = :i"), {"i": resident_id}).mappings().one()
    flat = " ".join(str(v) for v in row.values())
    assert NUMBER not in flat
    assert NUMBER.encode() not in bytes(row["my_number_encrypted"])


def test_the_operation_log_never_holds_the_my_number(backoffice, resident_id):
    client = backoffice.client_for("number1", "number_use", "clerk")
    client.post(f"/ledger/residents/{resident_id}/my-number", data={"csrf_token": csrf_from(client, "/")})
    from backoffice.extensions import db

    with backoffice.app.app_context():
        rows = db.session.execute(select(AuditLog.canonical)).scalars().all()
    assert rows and all(NUMBER not in r for r in rows)
