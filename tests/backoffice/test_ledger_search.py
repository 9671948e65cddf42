"""Ledger enquiry (F6, R11): two of the four basic items, sex not counting; every search logged."""

from __future__ import annotations

import datetime as dt

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select

from backoffice.models import AuditLog, IdoReason, RecordStatus, Sex
from tests.conftest import csrf_from
from tests.factories import make_resident, my_number


@pytest.fixture
def ledger(bo_app):
    """Three residents: two 佐藤 with different birth dates, and a removed record."""
    from backoffice.extensions import db

    with bo_app.app_context():
        s = db.session
        ids = {
            "hanako": make_resident(s, bo_app.config, name="佐藤　花子", name_kana="サトウ　ハナコ", sex=Sex.FEMALE,
                                    birth_date=dt.date(1985, 6, 15), banchi="1丁目2番3号").id,
            "taro": make_resident(s, bo_app.config, name="佐藤　太郎", name_kana="サトウ　タロウ",
                                  birth_date=dt.date(1950, 1, 2), banchi="5番地").id,
            "gone": make_resident(s, bo_app.config, name="佐藤　次郎", name_kana="サトウ　ジロウ",
                                  birth_date=dt.date(1985, 6, 15), status=RecordStatus.REMOVED,
                                  removed_on=dt.date(2024, 3, 1), removal_reason=IdoReason.MOVE_OUT).id,
        }
        s.commit()
    return ids


def _search(client, **fields):
    data = {"csrf_token": csrf_from(client, "/ledger/search"), **fields}
    return client.post("/ledger/search", data=data)


def _names(response):
    soup = BeautifulSoup(response.text, "html.parser")
    return sorted(td.text for td in soup.select("tr.result td:nth-of-type(2)"))


def _last_search_row(bo_app):
    from backoffice.extensions import db

    with bo_app.app_context():
        return db.session.execute(
            select(AuditLog).where(AuditLog.action == "ledger.search").order_by(AuditLog.seq.desc())).scalars().first()


@pytest.mark.sqlite
def test_name_and_sex_alone_are_refused_with_a_message_and_an_audit_row(backoffice, ledger):
    client = backoffice.client_for("clerk1", "clerk")
    response = _search(client, name="佐藤", sex="2")
    assert response.status_code == 200
    soup = BeautifulSoup(response.text, "html.parser")
    assert soup.select_one(".error-summary a[href='#name']") is not None
    assert soup.select("tr.result") == []
    row = _last_search_row(backoffice.app)
    assert row.outcome == "denied" and row.detail_dict()["reason"] == "two_of_four"


@pytest.mark.sqlite
def test_name_and_birth_date_find_the_person(backoffice, ledger):
    client = backoffice.client_for("clerk1", "clerk")
    response = _search(client, name="佐藤", birth_date="1950-01-02")
    assert _names(response) == ["佐藤　太郎"]
    row = _last_search_row(backoffice.app)
    assert row.outcome == "success" and row.detail_dict()["results"] == 1
    assert row.detail_dict()["criteria"] == {"name": "佐藤", "birth_date": "1950-01-02"}


@pytest.mark.sqlite
def test_address_and_birth_date_are_accepted_and_removed_records_are_marked(backoffice, ledger):
    client = backoffice.client_for("clerk1", "clerk")
    from core.addressmaster import load_machiaza

    town = load_machiaza(backoffice.app.config["MUNICIPALITY_CODE"])[0].name
    response = _search(client, address=town, birth_date="1985-06-15")
    assert _names(response) == ["佐藤　次郎", "佐藤　花子"]
    soup = BeautifulSoup(response.text, "html.parser")
    assert len(soup.select("tr.result.removed")) == 1


def test_a_single_basic_item_is_refused(backoffice, ledger):
    client = backoffice.client_for("clerk1", "clerk")
    for fields in ({"name": "佐藤"}, {"birth_date": "1985-06-15"}, {"address": "花"}, {"sex": "1"}):
        assert _names(_search(client, **fields)) == []
        assert _last_search_row(backoffice.app).outcome == "denied"


def test_kana_hiragana_and_half_width_name_searches_are_folded(backoffice, ledger):
    client = backoffice.client_for("clerk1", "clerk")
    for name in ("さとう", "サトウ　ハナ", "ｻﾄｳ", "佐藤　花"):
        assert _names(_search(client, name=name, birth_date="1985-06-15"))[-1] == "佐藤　花子", name


def test_the_resident_record_code_alone_is_enough(backoffice, ledger, bo_app):
    from backoffice.extensions import db
    from backoffice.models import Resident

    with bo_app.app_context():
        code = db.session.get(Resident, ledger["taro"]).juminhyo_code
    client = backoffice.client_for("clerk1", "clerk")
    assert _names(_search(client, juminhyo_code=code)) == ["佐藤　太郎"]
    bad = code[:-1] + str((int(code[-1]) + 1) % 10)
    response = _search(client, juminhyo_code=bad)
    assert BeautifulSoup(response.text, "html.parser").select_one(".error-summary a[href='#juminhyo_code']")


@pytest.mark.sqlite
def test_the_code_of_a_person_who_returned_finds_the_joshu_and_the_current_record_each_marked(backoffice, bo_app):
    from backoffice.extensions import db

    with bo_app.app_context():
        old = make_resident(db.session, bo_app.config, name="岩手　三郎", name_kana="イワテ　サブロウ",
                            my_number=my_number(8181), status=RecordStatus.REMOVED, removed_on=dt.date(2018, 3, 31),
                            removal_reason=IdoReason.MOVE_OUT, banchi="1番地")
        code = old.juminhyo_code
        make_resident(db.session, bo_app.config, name="岩手　三郎", name_kana="イワテ　サブロウ",
                      my_number=my_number(8181), juminhyo_code=code, banchi="9番地",
                      became_resident_reason=IdoReason.MOVE_IN)
        db.session.commit()
    client = backoffice.client_for("clerk1", "clerk")
    response = _search(client, juminhyo_code=code)
    soup = BeautifulSoup(response.text, "html.parser")
    rows = soup.select("tr.result")
    assert len(rows) == 2 and "2" in soup.select_one("#results").text
    by_address = {row.select("td")[4].text[-3:]: row for row in rows}
    assert set(by_address) == {"1番地", "9番地"}
    assert all(row.select("td")[0].text == code for row in rows)
    joshu, current = by_address["1番地"], by_address["9番地"]
    assert "removed" in joshu["class"] and "除票" in joshu.select("td")[5].text
    assert "current" in current["class"] and current.select("td")[5].text.strip() in ("現存", "Current")
    assert _last_search_row(bo_app).detail_dict()["results"] == 2


def test_search_criteria_never_appear_in_a_url(backoffice, ledger):
    client = backoffice.client_for("clerk1", "clerk")
    response = _search(client, name="佐藤", birth_date="1950-01-02")
    soup = BeautifulSoup(response.text, "html.parser")
    assert soup.select_one("form.search-form")["method"] == "post"
    for link in soup.select("a[href]"):
        assert "佐藤" not in link["href"] and "1950" not in link["href"]


def test_the_record_page_shows_household_and_history_and_is_logged(backoffice, ledger, bo_app):
    client = backoffice.client_for("clerk1", "clerk")
    response = client.get(f"/ledger/residents/{ledger['hanako']}")
    assert response.status_code == 200
    assert "佐藤　花子" in BeautifulSoup(response.text, "html.parser").select_one("h1").text
    from backoffice.extensions import db

    with bo_app.app_context():
        rows = db.session.execute(select(AuditLog).where(AuditLog.action == "ledger.view")).scalars().all()
    assert [(r.target_type, r.target_id, r.actor) for r in rows] == [("resident", str(ledger["hanako"]), "clerk1")]


def test_an_administrator_cannot_search_the_ledger(backoffice, ledger):
    client = backoffice.client_for("admin1", "admin")
    assert client.get("/ledger/search").status_code == 403
    assert client.get(f"/ledger/residents/{ledger['hanako']}").status_code == 403


@pytest.fixture
def many_takahashi(bo_app):
    """1,001 current 高橋 born on the same day in one 町字: more than a search counts (bulk-inserted copies)."""
    from sqlalchemy import insert

    from backoffice.extensions import db
    from backoffice.models import Resident

    with bo_app.app_context():
        s = db.session
        first = make_resident(s, bo_app.config, name="高橋　一郎", name_kana="タカハシ　イチロウ",
                              birth_date=dt.date(1970, 7, 7))
        row = {c.key: getattr(first, c.key) for c in Resident.__table__.columns if c.key != "id"}
        copies = [{**row, "atena_number": f"C{i:014d}", "juminhyo_code": f"9{i:010d}", "banchi": f"{i}番地",
                   "my_number_encrypted": None, "my_number_index": None}
                  for i in range(1, 1001)]
        s.execute(insert(Resident), copies)
        s.commit()


def test_a_search_matching_more_than_the_count_cap_says_more_than_and_logs_it(backoffice, many_takahashi):
    client = backoffice.client_for("clerk1", "clerk")
    response = _search(client, name="高橋", birth_date="1970-07-07")
    heading = BeautifulSoup(response.text, "html.parser").select_one("#results").text
    assert "1,000件を超える" in heading, heading
    assert len(_names(response)) == backoffice.app.config["SEARCH_PAGE_SIZE"]
    row = _last_search_row(backoffice.app)
    assert row.outcome == "success"
    assert row.detail_dict()["results"] == 1000 and row.detail_dict()["more"] is True
    data = {"csrf_token": csrf_from(client, "/ledger/search"), "name": "高橋", "birth_date": "1970-07-07"}
    english = client.post("/ledger/search?lang=en", data=data)
    assert "More than 1,000 records found" in BeautifulSoup(english.text, "html.parser").select_one("#results").text
