"""異動集計 (F11, R14): counts by reason and month and by 町字 from the history; the CSV is logged and escaped."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select

from backoffice.models import AuditLog, IdoReason, ResidentHistory
from core import clock
from core.addressmaster import load_machiaza
from tests.conftest import csrf_from
from tests.factories import make_resident


@pytest.fixture
def history(bo_app):
    """A known history: April 2026 two 転入 and one 転居 in the first 町字, one 出生 in the second; May one 転出."""
    from backoffice.extensions import db

    first, second = (m.code for m in load_machiaza("032051")[:2])
    rows = [
        (IdoReason.MOVE_IN, dt.date(2026, 4, 1), first),
        (IdoReason.MOVE_IN, dt.date(2026, 4, 15), first),
        (IdoReason.MOVE_WITHIN, dt.date(2026, 4, 20), first),
        (IdoReason.BIRTH, dt.date(2026, 4, 30), second),
        (IdoReason.MOVE_OUT, dt.date(2026, 5, 2), second),
        (IdoReason.MOVE_OUT, dt.date(2026, 5, 2), second),  # the same person's 転出 written twice: counted once
        (IdoReason.MOVE_OUT, dt.date(2026, 4, 25), second),  # 転出予定 in April, 転出確定 on 5/3: counted in May
        (IdoReason.MOVE_OUT, dt.date(2026, 5, 3), second),
        (IdoReason.DEATH, dt.date(2026, 7, 1), first),  # outside the period asked for
        (IdoReason.MOVE_IN, dt.date(2026, 5, 9), "=HYPERLINK(\"http://x\")"),  # a hostile cell for the CSV
    ]
    with bo_app.test_request_context("/"):
        people = [make_resident(db.session, bo_app.config) for _ in rows]
        people[5] = people[4]
        people[7] = people[6]
        for person, (reason, day, machiaza) in zip(people, rows, strict=True):
            db.session.add(ResidentHistory(resident_id=person.id, reason=reason, changed_on=day, notified_on=day,
                                           recorded_at=clock.utcnow(), recorded_by="test", before="{}",
                                           after=json.dumps({"machiaza_code": machiaza})))
        db.session.commit()
    return {"first": first, "second": second}


def _post(client, **data):
    token = csrf_from(client, "/statistics/")
    return client.post("/statistics/", data={"csrf_token": token, **data})


def test_the_page_counts_moves_by_reason_and_month_and_by_town_area(backoffice, history):
    client = backoffice.client_for("stats1", "clerk")
    html = BeautifulSoup(_post(client, first="2026-04", last="2026-05").text, "html.parser")
    assert "7" in html.select_one("#total").text.split()

    def cell(table, row_attr, key, reason):
        found = html.select_one(f'#{table} tr[{row_attr}="{key}"] td[data-reason="{reason}"]')
        return int(found.text)

    assert cell("by-month", "data-month", "2026-04", "転入") == 2
    assert cell("by-month", "data-month", "2026-04", "転居") == 1
    assert cell("by-month", "data-month", "2026-04", "出生") == 1
    assert cell("by-month", "data-month", "2026-05", "転出") == 2
    assert cell("by-month", "data-month", "2026-04", "転出") == 0
    assert cell("by-month", "data-month", "2026-05", "転入") == 1
    assert html.select_one('#by-month td[data-reason="死亡"]') is None  # July is outside the period
    assert cell("by-machiaza", "data-machiaza", history["first"], "転入") == 2
    assert cell("by-machiaza", "data-machiaza", history["second"], "転出") == 2
    first_name = load_machiaza("032051")[0].name
    assert html.select_one(f'#by-machiaza tr[data-machiaza="{history["first"]}"] th').text == first_name


def test_the_csv_export_is_logged_and_a_formula_never_reaches_the_spreadsheet(backoffice, history, bo_app):
    client = backoffice.client_for("stats2", "auditor")
    response = _post(client, first="2026-04", last="2026-05", export="csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0] == ["年月", "町字コード", "町字", "異動事由", "件数"]
    assert ["2026-04", history["first"], load_machiaza("032051")[0].name, "転入", "2"] in rows
    assert sum(int(r[4]) for r in rows[1:]) == 7
    hostile = [r for r in rows if "HYPERLINK" in r[1]]
    assert hostile and all(cell.startswith("'=") for r in hostile for cell in r[1:3])
    assert not any(cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r)
    from backoffice.extensions import db

    with bo_app.app_context():
        logged = db.session.execute(select(AuditLog.detail).where(AuditLog.action == "statistics.export")).scalar_one()
        assert '"rows"' in logged and "2026-04" in logged


def test_a_bad_period_is_refused_naming_the_field_and_nothing_is_counted(backoffice, history, bo_app):
    client = backoffice.client_for("stats3", "approver")
    html = BeautifulSoup(_post(client, first="2026-05", last="2026-04").text, "html.parser")
    assert html.select_one(".error-summary a")["href"] == "#last" and html.select_one("#by-month") is None
    html = BeautifulSoup(_post(client, first="April", last="2026-04").text, "html.parser")
    assert html.select_one(".error-summary a")["href"] == "#first"


def test_only_clerks_approvers_and_auditors_see_the_statistics(backoffice):
    assert backoffice.client_for("adm1", "admin").get("/statistics/").status_code == 403
    assert backoffice.client_for("num1", "number_use").get("/statistics/").status_code == 403
    assert backoffice.client_for("clk1", "clerk").get("/statistics/").status_code == 200


def test_notifications_past_the_fourteen_days_are_counted_by_month(backoffice, tmp_path):
    """届出期間経過 (第52条): each 転入・転居 completed past the 14 days counts in the month it was notified."""
    from backoffice.extensions import db
    from backoffice.models import Case, Staff
    from backoffice.services import filing
    from tests.backoffice.case_fixtures import deliver, make_city, move

    city = make_city(backoffice.app, tmp_path)
    case_id = deliver(backoffice.app, city, "in_city_reservation", move([("宮沢　賢", "1990-08-27")]))
    client = backoffice.client_for("stats3", "clerk")
    today = clock.today_jst()
    with backoffice.app.test_request_context("/"):
        staff = db.session.execute(select(Staff).where(Staff.login_id == "stats3")).scalar_one()
        case = db.session.get(Case, case_id)
        assert filing.record_if_late(db.session, case, moved_on=today - dt.timedelta(days=13), notified_on=today,
                                     by=staff) is None  # within the 14 days: not late
        assert filing.record_if_late(db.session, case, moved_on=today - dt.timedelta(days=40), notified_on=today,
                                     by=staff) == 40
        db.session.commit()
    month = today.strftime("%Y-%m")
    html = BeautifulSoup(_post(client, first=month, last=month).text, "html.parser")
    assert html.select_one(f"#late tr[data-month='{month}'] td").text == "1"
