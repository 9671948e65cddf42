"""届出期間経過 (第22条, 第23条, 第52条第2項): the list of notifications past the 14 days, one by one, for the
clerk's notice to the summary court (過料通知): who, which move, how many days; logged, clerks and approvers only."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from bs4 import BeautifulSoup
from sqlalchemy import select

from backoffice.models import AuditLog
from core import clock


def _late_case(backoffice, tmp_path, login: str) -> tuple[int, int, Any]:
    """An in-city move completed 40 days after the move; returns the case id and the mover's record id."""
    from backoffice.extensions import db
    from backoffice.models import Case, Staff
    from backoffice.services import filing
    from tests.backoffice.case_fixtures import deliver, make_city, move

    city = make_city(backoffice.app, tmp_path)
    case_id = deliver(backoffice.app, city, "in_city_reservation", move([("宮沢　賢", "1990-08-27")]))
    client = backoffice.client_for(login, "clerk")
    today = clock.today_jst()
    with backoffice.app.test_request_context("/"):
        staff = db.session.execute(select(Staff).where(Staff.login_id == login)).scalar_one()
        case = db.session.get(Case, case_id)
        filing.record_if_late(db.session, case, moved_on=today - dt.timedelta(days=13), notified_on=today, by=staff)
        filing.record_if_late(db.session, case, moved_on=today - dt.timedelta(days=40), notified_on=today, by=staff)
        db.session.commit()
    return case_id, city["head"], client


def test_the_clerk_lists_each_late_notification_with_the_person_and_the_days_and_the_view_is_logged(
        backoffice, tmp_path):
    from backoffice.extensions import db
    from backoffice.services import filing

    case_id, head, client = _late_case(backoffice, tmp_path, "late1")
    page = BeautifulSoup(client.get("/statistics/late?lang=ja").text, "html.parser")
    [row] = page.select("#late-list tbody tr")
    assert row["data-case"] == str(case_id)
    assert row.select_one(".people").text == "宮沢　賢"
    assert row.select_one(".days").text == "40"
    today = clock.today_jst()
    moved = today - dt.timedelta(days=40)
    assert row.select_one(".days-late").text == str((today - filing.notification_deadline(moved)).days)
    with backoffice.app.app_context():
        logged = db.session.execute(select(AuditLog).where(AuditLog.action == "move.late_list")).scalars().all()
        assert len(logged) == 1 and json.loads(logged[0].detail)["residents"] == [head]
        assert logged[0].actor == "late1"
    statistics = BeautifulSoup(client.get("/statistics/").text, "html.parser")
    assert statistics.select_one("#late-list-link")["href"] == "/statistics/late"


def test_only_clerks_and_approvers_see_the_names_of_the_late(backoffice, tmp_path):
    _late_case(backoffice, tmp_path, "late2")
    auditor = backoffice.client_for("aud2", "auditor")
    assert auditor.get("/statistics/late").status_code == 403
    assert backoffice.client_for("adm2", "admin").get("/statistics/late").status_code == 403
    assert backoffice.client_for("app2", "approver").get("/statistics/late").status_code == 200
    page = BeautifulSoup(auditor.get("/statistics/").text, "html.parser")
    assert page.select_one("#late-list-link") is None


def test_with_no_late_notification_the_list_says_so(backoffice):
    page = BeautifulSoup(backoffice.client_for("late3", "clerk").get("/statistics/late?lang=en").text, "html.parser")
    assert page.select_one("#none") is not None and page.select_one("#late-list") is None
