"""Japan time on every date a resident sees, and one office calendar for the visit dates."""

from __future__ import annotations

import datetime as dt

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select

from core import clock, officecalendar
from portal.models import Application, ApplicationEvent
from portal.services import applications as apps
from tests.portal.test_applications import Resident, _account, _api_submit, _bearer, _move

LATE_EVENING_UTC = dt.datetime(2026, 12, 5, 16, 0, tzinfo=dt.UTC)  # 2026-12-06 01:00 in Japan


def test_my_applications_shows_the_receipt_date_of_japan(portal_app, cards):
    from portal.extensions import db

    resident = Resident(portal_app, cards)
    client, headers = _bearer(portal_app, resident.card)
    assert _api_submit(client, headers, resident.card, _move()).status_code == 202
    with portal_app.app_context():
        for application in db.session.execute(select(Application)).scalars():
            application.submitted_at = LATE_EVENING_UTC
        for event in db.session.execute(select(ApplicationEvent)).scalars():
            event.at = LATE_EVENING_UTC
        db.session.commit()
        receipt = db.session.execute(select(Application.receipt_number)).scalars().first()
    listing = BeautifulSoup(resident.client.get("/mypage/applications").text, "html.parser")
    assert "令和8年12月6日" in listing.text and "令和8年12月5日" not in listing.text
    detail = resident.client.get(f"/mypage/applications/{receipt}").text
    assert "令和8年12月6日" in detail and "令和8年12月5日" not in detail


@pytest.mark.parametrize(("day", "is_open"), [
    (dt.date(2026, 12, 4), True),  # a Friday
    (dt.date(2026, 12, 5), False),  # a Saturday
    (dt.date(2026, 11, 23), False),  # 勤労感謝の日
    (dt.date(2026, 12, 28), True),  # the last open day of the year
    (dt.date(2026, 12, 29), False), (dt.date(2027, 1, 3), False),  # the year-end closure
    (dt.date(2027, 1, 4), True),
    (dt.date(2026, 5, 6), False),  # 振替休日
])
def test_the_office_calendar_knows_the_closed_days(day, is_open):
    assert officecalendar.is_open(day) is is_open


def test_a_deadline_on_a_closed_day_moves_to_the_next_open_day():
    assert officecalendar.deadline(dt.date(2026, 12, 29)) == dt.date(2027, 1, 4)
    assert officecalendar.deadline(dt.date(2026, 12, 4)) == dt.date(2026, 12, 4)


def test_a_visit_on_a_day_the_office_is_closed_is_refused_naming_the_visit_date(portal_app):
    today = clock.today_jst()
    move = today + dt.timedelta(days=3)
    days = [move + dt.timedelta(days=n) for n in range(14)]
    closed = next(d for d in days if not officecalendar.is_open(d))
    open_day = next(d for d in days if officecalendar.is_open(d) and d >= apps.next_business_day(today))
    with portal_app.test_request_context("/"):
        errors = apps.check_move(_move(moveDate=move.isoformat(), visitDate=closed.isoformat()), account=_account(),
                                 today=today)
        assert [e.field for e in errors] == ["visitDate"] and "閉庁日" in str(errors[0].message)
        assert apps.check_move(_move(moveDate=move.isoformat(), visitDate=open_day.isoformat()), account=_account(),
                               today=today) == []
