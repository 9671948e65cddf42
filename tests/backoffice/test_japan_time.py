"""Every date and time a clerk or auditor reads is Japan time (JST), whatever the server's clock zone."""

from __future__ import annotations

import datetime as dt

from bs4 import BeautifulSoup

from backoffice.models import Case, CaseStatus
from core.clock import to_jst
from tests.backoffice.case_fixtures import deliver, make_city, move

LATE_EVENING_UTC = dt.datetime(2026, 12, 5, 15, 30, tzinfo=dt.UTC)  # 2026-12-06 00:30 in Japan


def test_the_counter_list_shows_when_a_reservation_arrived_in_japan_time(backoffice, tmp_path):
    from backoffice.extensions import db

    city = make_city(backoffice.app, tmp_path)
    case_id = deliver(backoffice.app, city, "in_city_reservation", move([("宮沢　賢", "1990-08-27")]),
                      receipt="R-JST")
    with backoffice.app.app_context():
        case = db.session.get(Case, case_id)
        case.status, case.received_at = CaseStatus.APPROVED, LATE_EVENING_UTC
        db.session.commit()
    client = backoffice.client_for("clerk7", "clerk")
    response = client.get("/counter/")
    page = BeautifulSoup(response.text, "html.parser")
    row = page.find("a", string="R-JST").find_parent("tr")
    assert "2026-12-06 00:30 JST" in row.text and "UTC" not in page.text


def test_the_operation_log_shows_japan_time(backoffice):
    from sqlalchemy import select

    from backoffice.extensions import db
    from backoffice.models import AuditLog

    client = backoffice.client_for("auditor7", "auditor")
    with backoffice.app.app_context():
        first = db.session.execute(select(AuditLog).order_by(AuditLog.seq).limit(1)).scalar_one()
        expected = to_jst(first.ts).strftime("%Y-%m-%d %H:%M:%S JST")
    page = client.get("/audit/").text
    assert expected in page and " UTC" not in page
