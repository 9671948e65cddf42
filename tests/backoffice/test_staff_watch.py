"""Staff access watched (R18): a realistic day and one insider; the security officer's alerts page."""

from __future__ import annotations

import datetime as dt
import json
import random
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from backoffice.models import AuditLog, BridgeAlert
from tests.conftest import csrf_from

JST = ZoneInfo("Asia/Tokyo")
KANA = "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワ"


def _last_tuesday(clock) -> dt.datetime:
    day = clock.now.astimezone(JST).date() - dt.timedelta(days=7)
    while day.weekday() != 1:
        day -= dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(8, 30), JST)


class Day:
    """Writes the operation-log rows a day of work leaves, each at its time, as the services write them."""

    def __init__(self, bo_app, clock):
        self.app, self.clock, self.rows = bo_app, clock, []

    def add(self, at, staff, action, outcome="success", target=None, detail=None):
        self.rows.append((at, staff, action, outcome, target, detail or {}))

    def write(self):
        from backoffice.extensions import db
        from backoffice.services import audit

        for at, (login_id, staff_id), action, outcome, target, detail in sorted(self.rows, key=lambda r: r[0]):
            self.clock.now = at.astimezone(dt.UTC)
            with self.app.app_context():
                audit.chain().append(db.session, action=action, actor=login_id, actor_id=staff_id, outcome=outcome,
                                     target_type="resident" if target else None, target_id=target, detail=detail)
                db.session.commit()


def _name(rng):
    return "".join(rng.choice(KANA) for _ in range(rng.randint(3, 6)))


def _ordinary_hour(day, rng, who, start, *, reveals=False, prints=False):
    for _ in range(rng.randint(3, 9)):
        at = start + dt.timedelta(minutes=rng.randint(0, 59), seconds=rng.randint(0, 59))
        born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randint(0, 60 * 365))
        criteria = {"name": _name(rng), "birth_date": born.isoformat()}
        day.add(at, who, "ledger.search", detail={"criteria": criteria, "results": rng.randint(0, 3)})
        day.add(at + dt.timedelta(seconds=20), who, "ledger.view", target=str(rng.randint(1, 1000)))
        if reveals and rng.random() < 0.3:
            day.add(at + dt.timedelta(seconds=40), who, "ledger.unmask", target=str(rng.randint(1, 1000)))
    if prints:
        for _ in range(rng.randint(1, 5)):
            day.add(start + dt.timedelta(minutes=rng.randint(0, 59)), who, "certificate.print",
                    detail={"certificate": rng.randint(1, 500)})


@pytest.fixture
def day(bo_app, backoffice, clock):
    rng = random.Random(20261206)
    staff = {}
    for login_id, roles in [*((f"clerk{n}", ("clerk",)) for n in range(1, 8)), ("number1", ("clerk", "number_use")),
                            ("insider", ("clerk",))]:
        staff[login_id] = (login_id, backoffice.add_staff(login_id, *roles))
    day = Day(bo_app, clock)
    start = _last_tuesday(clock)
    for who in staff.values():
        for hour in range(9):  # 08:30 to 17:30, with the ordinary slips: a refused search now and then
            _ordinary_hour(day, rng, who, start + dt.timedelta(hours=hour), reveals=who[0] == "number1",
                           prints=who[0] in ("clerk1", "clerk2"))
        day.add(start + dt.timedelta(hours=rng.randint(0, 8), minutes=5), who, "ledger.search", outcome="denied",
                detail={"criteria": {"name": _name(rng)}, "reason": "two_items"})
        if rng.random() < 0.5:
            day.add(start + dt.timedelta(hours=rng.randint(0, 8), minutes=30), who, "ledger.export",
                    detail={"criteria": {"name": _name(rng), "birth_date": "1980-04-01"}, "rows": 1, "format": "csv"})
    # Overtime until 18:45 for one clerk: inside office hours, no alert.
    _ordinary_hour(day, rng, staff["clerk3"], start + dt.timedelta(hours=9, minutes=15))
    # The insider, between 14:30 and 15:30: exports of one kana and one address character, every pair.
    insider = staff["insider"]
    for n, kana in enumerate("アイウエオカキクケコ"):
        at = start + dt.timedelta(hours=6, minutes=5 * n)
        day.add(at, insider, "ledger.export", outcome="denied",
                detail={"criteria": {"name": kana, "address": "花"}, "reason": "name_too_short"})
        day.add(at + dt.timedelta(minutes=1), insider, "ledger.search",
                detail={"criteria": {"name": kana + "サ", "address": "花城町"}, "results": 40})
    day.write()
    clock.now = (start + dt.timedelta(hours=10)).astimezone(dt.UTC)
    return staff


def _staff_alerts(bo_app):
    from backoffice.extensions import db

    with bo_app.app_context():
        return [json.loads(a.detail) for a in db.session.execute(
            select(BridgeAlert).where(BridgeAlert.kind == "staff_access").order_by(BridgeAlert.id)).scalars()]


def test_a_realistic_day_and_one_insider_exporting_prefix_searches_flags_exactly_the_insider(bo_app, day):
    result = bo_app.test_cli_runner().invoke(args=["watch", "run"])
    assert result.exit_code == 0, result.output
    alerts = _staff_alerts(bo_app)
    assert {a["actor"] for a in alerts} == {"insider"}
    assert {(a["rule"], a["category"]) for a in alerts} == {("enumeration", ""), ("denials", ""),
                                                            ("volume", "exports")}
    enumeration = next(a for a in alerts if a["rule"] == "enumeration")
    from backoffice.extensions import db

    with bo_app.app_context():
        rows = db.session.execute(select(AuditLog).where(AuditLog.seq.in_(enumeration["seqs"]))).scalars().all()
    assert rows and {r.actor for r in rows} == {"insider"} and {r.action for r in rows} <= {"ledger.export",
                                                                                              "ledger.search"}
    # The job runs every ten minutes: the same hits are not alerted again.
    again = bo_app.test_cli_runner().invoke(args=["watch", "run"])
    assert again.exit_code == 0 and "0 new alerts" in again.output
    assert len(_staff_alerts(bo_app)) == len(alerts)


def test_a_night_visit_and_too_many_my_number_reveals_are_each_flagged(bo_app, backoffice, clock):
    night = ("clerk9", backoffice.add_staff("clerk9", "clerk"))
    numbers = ("number9", backoffice.add_staff("number9", "clerk", "number_use"))
    day = Day(bo_app, clock)
    start = _last_tuesday(clock)
    day.add(start.replace(hour=22, minute=10), night, "ledger.view", target="17")
    for n in range(12):
        day.add(start + dt.timedelta(hours=2, minutes=n * 2), numbers, "ledger.unmask", target=str(100 + n))
    day.write()
    clock.now = (start + dt.timedelta(hours=15)).astimezone(dt.UTC)
    assert bo_app.test_cli_runner().invoke(args=["watch", "run"]).exit_code == 0
    found = {(a["actor"], a["rule"], a["category"]) for a in _staff_alerts(bo_app)}
    assert found == {("clerk9", "after_hours", ""), ("number9", "volume", "reveals")}


def test_the_security_officer_sees_the_rows_behind_an_alert_and_acknowledges_it_with_a_note(bo_app, backoffice, day):
    assert bo_app.test_cli_runner().invoke(args=["watch", "run"]).exit_code == 0
    clerk = backoffice.client_for("clerk_x", "clerk", terminal="t-clerk")
    assert clerk.get("/audit/alerts").status_code == 403
    officer = backoffice.client_for("officer", "auditor", terminal="t-officer")
    page = officer.get("/audit/alerts")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "insider" in html and "ledger.export" in html and "clerk1" not in html
    assert "アクセス警告" in html  # Japanese first
    from backoffice.extensions import db

    with bo_app.app_context():
        alert_id = db.session.execute(select(BridgeAlert.id).where(BridgeAlert.kind == "staff_access")
                                      .order_by(BridgeAlert.id)).scalars().first()
    token = csrf_from(officer, "/audit/alerts")
    blank = officer.post(f"/audit/alerts/{alert_id}/acknowledge", data={"csrf_token": token, "note": "  "})
    assert blank.status_code == 400 and "メモ" in blank.get_data(as_text=True)
    note = "課長に報告。本人に事情を確認予定。"
    done = officer.post(f"/audit/alerts/{alert_id}/acknowledge", data={"csrf_token": token, "note": note})
    assert done.status_code == 302
    assert note in officer.get("/audit/alerts").get_data(as_text=True)
    with bo_app.app_context():
        ack = db.session.execute(select(AuditLog).where(AuditLog.action == "alert.acknowledge")).scalar_one()
    assert (ack.actor, ack.target_id, ack.detail_dict()["note"]) == ("officer", str(alert_id), note)


@pytest.mark.parametrize("action", ["card.view", "certificate.preview", "counter.view", "support_measure.view",
                                    "support_measure.list", "resident_request.list"])
def test_walking_pages_of_personal_data_outside_the_ledger_by_id_is_counted_as_views(bo_app, backoffice, clock,
                                                                                     action):
    # The attack: a clerk opens /cards/1, /cards/2, ... each page showing a holder's name and 住民票コード,
    # every one a search key of its own; only the ledger's own views were counted, so nothing fired.
    walker = ("walker", backoffice.add_staff("walker", "clerk"))
    day = Day(bo_app, clock)
    start = _last_tuesday(clock) + dt.timedelta(hours=1, minutes=30)  # 10:00 JST: 90 pages before 10:30
    for n in range(90):
        day.add(start + dt.timedelta(seconds=20 * n), walker, action, target=str(n + 1))
    day.write()
    clock.now = (start + dt.timedelta(hours=2)).astimezone(dt.UTC)
    assert bo_app.test_cli_runner().invoke(args=["watch", "run"]).exit_code == 0
    assert {(a["actor"], a["rule"], a["category"]) for a in _staff_alerts(bo_app)} == {("walker", "volume", "views")}


def test_the_lists_of_support_measures_and_residents_requests_are_in_the_operation_log(bo_app, backoffice):
    # The lists name every person under a support measure (支援措置) and everyone who asked about their own
    # record: each look at them is an operation-log row with who looked and which entries were shown.
    from backoffice.extensions import db

    clerk = backoffice.client_for("clerk_l", "clerk", terminal="t-clerk")
    for path, action in (("/support-measures/", "support_measure.list"), ("/resident-requests/",
                                                                          "resident_request.list")):
        assert clerk.get(path).status_code == 200
        with bo_app.app_context():
            row = db.session.execute(select(AuditLog).where(AuditLog.action == action)).scalar_one()
            assert row.actor == "clerk_l" and "shown" in json.loads(row.detail)
