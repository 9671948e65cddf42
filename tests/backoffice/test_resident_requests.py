"""The resident's own requests (R20): deadlines, two people, a correction through the ledger, who saw the data."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from backoffice.models import IdoReason, Resident, ResidentHistory
from core import clock as clock_module
from tests.backoffice.case_fixtures import make_city, staff


@pytest.fixture
def city(bo_app, backoffice, tmp_path):
    city = make_city(bo_app, tmp_path)
    for login_id, roles in (("clerk_a", ("clerk",)), ("number_n", ("clerk", "number_use")),
                            ("approver_b", ("approver", "clerk"))):
        backoffice.add_staff(login_id, *roles)
    return city


def _as(bo_app, login_id, action):
    from flask_login import login_user

    from backoffice.extensions import db

    with bo_app.test_request_context("/"):
        who = staff(db.session, login_id)
        login_user(who)
        result = action(db.session, who)
        db.session.commit()
        return result


def test_a_disclosure_answer_lists_who_saw_the_record_by_role_and_office_and_nothing_about_anyone_else(
        bo_app, city):
    from backoffice.services import ledger, resident_requests

    _as(bo_app, "clerk_a", lambda s, who: ledger.get_record(s, city["head"]))
    _as(bo_app, "number_n", lambda s, who: ledger.reveal_my_number(ledger.get_record(s, city["head"]), who))
    _as(bo_app, "clerk_a", lambda s, who: ledger.get_record(s, city["wife"]))  # someone else's record
    request_id = _as(bo_app, "clerk_a", lambda s, who: resident_requests.receive(
        s, kind="disclosure", resident_id=city["head"], by=who).id)
    _as(bo_app, "clerk_a", lambda s, who: resident_requests.confirm(s, request_id, by=who))
    with pytest.raises(resident_requests.RequestError) as same:
        _as(bo_app, "clerk_a", lambda s, who: resident_requests.decide(s, request_id, grant=True, reason="開示",
                                                                       by=who))
    assert same.value.field == "decided_by"
    answer = _as(bo_app, "approver_b", lambda s, who: resident_requests.decide(
        s, request_id, grant=True, reason="全部開示", by=who).answer)
    entries = json.loads(answer)["accesses"]
    assert [(e["who"], e["procedure"].split(" / ")[0]) for e in entries] == [
        ("clerk", "住民票の照会"), ("clerk, number_use", "住民票の照会"), ("clerk, number_use", "個人番号の表示")]
    # Exactly the head's three: the view of his wife's record is not his data.
    assert all("花巻市" in e["office"] and ("住民基本台帳法" in e["basis"] or "番号法" in e["basis"]) for e in entries)
    for secret in ("clerk_a", "number_n", "approver_b", "窓口"):
        assert secret not in answer


def test_a_granted_correction_is_made_through_the_ledger_and_only_after_the_second_person(bo_app, city):
    from backoffice.services import resident_requests

    with pytest.raises(resident_requests.RequestError) as bad:
        _as(bo_app, "clerk_a", lambda s, who: resident_requests.receive(
            s, kind="correction", resident_id=city["head"], item="my_number_encrypted", correct_value="x", by=who))
    assert bad.value.field == "item"
    request_id = _as(bo_app, "clerk_a", lambda s, who: resident_requests.receive(
        s, kind="correction", resident_id=city["head"], item="name_kana", correct_value="ミヤザワ　ケンジ", by=who).id)
    _as(bo_app, "clerk_a", lambda s, who: resident_requests.confirm(s, request_id, by=who))
    from backoffice.extensions import db

    with bo_app.app_context():
        assert db.session.get(Resident, city["head"]).name_kana == "ミヤザワ　ケン"  # not before the decision
    _as(bo_app, "approver_b", lambda s, who: resident_requests.decide(s, request_id, grant=True,
                                                                      reason="戸籍で確認", by=who))
    with bo_app.app_context():
        assert db.session.get(Resident, city["head"]).name_kana == "ミヤザワ　ケンジ"
        history = db.session.execute(select(ResidentHistory).where(ResidentHistory.resident_id == city["head"])
                                     .order_by(ResidentHistory.id.desc())).scalars().first()
        assert history.reason is IdoReason.CORRECTION and json.loads(history.before)["name_kana"] == "ミヤザワ　ケン"


def test_the_deadline_is_thirty_days_extended_once_only_with_a_reason_and_overdue_requests_are_listed(
        bo_app, city, clock):
    from backoffice.services import resident_requests

    request = _as(bo_app, "clerk_a", lambda s, who: resident_requests.receive(
        s, kind="suspension", resident_id=city["head"], item="statistics", by=who))
    assert request.due_on == clock_module.today_jst() + dt.timedelta(days=30)
    with pytest.raises(resident_requests.RequestError) as no_reason:
        _as(bo_app, "clerk_a", lambda s, who: resident_requests.extend(s, request.id, days=30, reason=" ", by=who))
    assert no_reason.value.field == "extension_reason"
    extended = _as(bo_app, "clerk_a", lambda s, who: resident_requests.extend(
        s, request.id, days=30, reason="関係機関への照会に時間を要するため", by=who))
    assert extended.due_on == clock_module.today_jst() + dt.timedelta(days=60)
    with pytest.raises(resident_requests.RequestError):
        _as(bo_app, "clerk_a", lambda s, who: resident_requests.extend(s, request.id, days=10, reason="再延長", by=who))
    clock.advance(days=61)
    overdue = _as(bo_app, "clerk_a", lambda s, who: [r.id for r in resident_requests.overdue(s)])
    assert overdue == [request.id]


def test_a_correction_recorded_confirmed_and_granted_on_the_pages_changes_the_ledger(bo_app, backoffice, city):
    from backoffice.extensions import db
    from tests.conftest import csrf_from

    with bo_app.app_context():
        atena = db.session.get(Resident, city["head"]).atena_number
    clerk = backoffice.client_for("clerk_p", "clerk", terminal="t-clerk-p")
    token = csrf_from(clerk, "/resident-requests/")
    missing = clerk.post("/resident-requests/", data={"csrf_token": token, "kind": "correction", "atena_number": atena,
                                                      "item": "name_kana", "correct_value": " "})
    assert missing.status_code == 400 and "正しい内容" in missing.get_data(as_text=True)
    recorded = clerk.post("/resident-requests/", data={"csrf_token": token, "kind": "correction", "atena_number": atena,
                                                       "item": "name_kana", "correct_value": "ミヤザワ　ケンジ"})
    assert recorded.status_code == 302
    page = clerk.get("/resident-requests/").get_data(as_text=True)
    assert "開示・訂正・利用停止請求" in page and (clock_module.today_jst() + dt.timedelta(days=30)).isoformat() in page
    with bo_app.app_context():
        from backoffice.models import ResidentRequest

        request_id = db.session.execute(select(ResidentRequest.id)).scalar_one()
    assert clerk.post(f"/resident-requests/{request_id}/confirm", data={"csrf_token": token}).status_code == 302
    approver = backoffice.client_for("approver_p", "approver", terminal="t-approver-p")
    token = csrf_from(approver, "/resident-requests/")
    no_reason = approver.post(f"/resident-requests/{request_id}/decide", data={"csrf_token": token,
                                                                              "decision": "grant", "reason": ""})
    assert no_reason.status_code == 400 and "決定の理由" in no_reason.get_data(as_text=True)
    assert approver.post(f"/resident-requests/{request_id}/decide", data={
        "csrf_token": token, "decision": "grant", "reason": "戸籍で確認"}).status_code == 302
    with bo_app.app_context():
        assert db.session.get(Resident, city["head"]).name_kana == "ミヤザワ　ケンジ"


def test_a_suspension_request_from_the_portal_names_what_it_stops_in_the_pages_language(bo_app, backoffice, city):
    """A suspension filed online keeps what it asks to stop (erasure, …) as its item: the clerk reads words."""
    from backoffice.services import resident_requests
    from tests.test_page_language import problems

    _as(bo_app, "clerk_a", lambda s, who: resident_requests.receive(
        s, kind="suspension", resident_id=city["head"], by=None, item="erasure", receipt_number="R-S-1"))
    clerk = backoffice.client_for("clerk_s", "clerk")
    for lang, words in (("ja", "消去"), ("en", "Erase")):
        page = clerk.get(f"/resident-requests/?lang={lang}").get_data(as_text=True)
        assert words in page, lang
        assert ">erasure<" not in page and "(erasure)" not in page, lang
        assert problems(page, lang, "/resident-requests/") == [], lang
