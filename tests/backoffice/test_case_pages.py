"""The inbox and the case page (F4, F5, R2, R7): what clerks and approvers see and do through the browser."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pyotp
import pytest
from bs4 import BeautifulSoup
from sqlalchemy import func, select

from backoffice.models import AuditLog, CaseStatus
from backoffice.services import cases as workflow
from tests.backoffice.case_fixtures import (  # no_effects: autouse, for this module
    HEAD_NUMBER,
    WIFE_NUMBER,
    audit_actions,
    deliver,
    events,
    load_case,
    make_city,
    move,
    no_effects,  # noqa: F401
    status_messages,
)
from tests.conftest import csrf_from

MY_NUMBER = re.compile(r"(?<!\d)\d{12}(?!\d)")



@pytest.fixture
def city(bo_app: Any, tmp_path: Any) -> dict[str, Any]:
    """A household of two with a card (see case_fixtures)."""
    return make_city(bo_app, tmp_path)


def _page(client: Any, path: str) -> BeautifulSoup:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return BeautifulSoup(response.text, "html.parser")


def _post(client: Any, case_id: int, step: str, **data: str) -> Any:
    token = csrf_from(client, f"/cases/{case_id}")
    return client.post(f"/cases/{case_id}/{step}", data={"csrf_token": token, **data})


def _audit_count(bo_app: Any, action: str) -> int:
    from backoffice.extensions import db

    with bo_app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == action)))


def test_a_clerk_confirms_and_another_approves_through_the_pages_with_a_fresh_code(backoffice, city):
    case_id = deliver(backoffice.app, city, receipt="R-WEB")
    clerk = backoffice.client_for("clerk1", "clerk")
    approver = backoffice.client_for("approver1", "approver")
    response = _post(clerk, case_id, "confirm")
    assert response.status_code == 302 and response.location.endswith(f"/cases/{case_id}")  # post, redirect, get
    page = _page(clerk, f"/cases/{case_id}")
    assert page.select_one("#case-status")["data-status"] == "confirmed"
    assert page.select_one("#approve-form") is None  # a clerk has no approve form
    # The code the approver signed in with is spent; a wrong or empty code is refused next to the field.
    for code in ("", "12345x"):
        refused = _post(approver, case_id, "approve", **{"approve-totp_code": code})
        assert refused.status_code == 400
        error = BeautifulSoup(refused.text, "html.parser").select_one("#approve-form .error-message")
        assert error is not None and "ワンタイムコード" in error.text and "one-time code" not in error.text
    assert load_case(backoffice.app, case_id).status is CaseStatus.CONFIRMED
    assert ("case.approve", "approver1", "denied") in audit_actions(backoffice.app, case_id)
    response = _post(approver, case_id, "approve", **{"approve-totp_code": backoffice.totp("approver1")})
    assert response.status_code == 302
    page = _page(approver, f"/cases/{case_id}")
    assert page.select_one("#case-status")["data-status"] == "approved"
    assert page.select_one("#case-confirmed").text.startswith("clerk1")
    assert page.select_one("#case-approved").text.startswith("approver1")
    assert [tr["data-action"] for tr in page.select("#history tr[data-action]")] == ["received", "confirm", "approve"]
    sent = [m["status"] for m in status_messages(backoffice.app) if m["receiptNumber"] == "R-WEB"]
    assert sent.count("approved") == 1


def test_the_confirming_clerk_is_refused_approval_on_the_page(backoffice, city):
    case_id = deliver(backoffice.app, city)
    both = backoffice.client_for("both1", "clerk", "approver")
    assert _post(both, case_id, "confirm").status_code == 302
    refused = _post(both, case_id, "approve", **{"approve-totp_code": backoffice.totp("both1")})
    assert refused.status_code == 400
    errors = BeautifulSoup(refused.text, "html.parser").select_one("#case-errors").text
    assert "確認した職員は同じ案件を承認できません" in errors and "cannot approve" not in errors
    both.get(f"/cases/{case_id}?lang=en")  # the same refusal in English only
    refused = _post(both, case_id, "approve", **{"approve-totp_code": backoffice.totp("both1")})
    errors = BeautifulSoup(refused.text, "html.parser").select_one("#case-errors").text
    assert "The person who confirmed a case cannot approve it" in errors and "確認した職員" not in errors
    assert load_case(backoffice.app, case_id).approved_by is None


def test_a_clerk_without_number_use_never_sees_a_my_number_on_the_case_page(backoffice, city):
    case_id = deliver(backoffice.app, city)
    clerk = backoffice.client_for("clerk2", "clerk")
    views_before = _audit_count(backoffice.app, "ledger.view")
    response = clerk.get(f"/cases/{case_id}")
    assert response.status_code == 200
    assert HEAD_NUMBER not in response.text and WIFE_NUMBER not in response.text
    assert not MY_NUMBER.search(response.text)
    page = BeautifulSoup(response.text, "html.parser")
    assert [td.text.strip() for td in page.select("td.my-number")] == ["************", "************"]
    assert page.select("td.my-number form") == []  # no way to unmask without the role
    # Each ledger record shown beside the application is a logged ledger view.
    assert _audit_count(backoffice.app, "ledger.view") == views_before + 2
    assert clerk.post(f"/ledger/residents/{city['head']}/my-number",
                      data={"csrf_token": csrf_from(clerk, f"/cases/{case_id}")}).status_code == 403


def test_with_number_use_the_my_number_stays_masked_until_the_logged_unmask(backoffice, city):
    case_id = deliver(backoffice.app, city)
    officer = backoffice.client_for("number1", "clerk", "number_use")
    response = officer.get(f"/cases/{case_id}")
    assert HEAD_NUMBER not in response.text and not MY_NUMBER.search(response.text)
    form = BeautifulSoup(response.text, "html.parser").select_one("td.my-number form")
    assert form is not None
    before = _audit_count(backoffice.app, "ledger.unmask")
    revealed = officer.post(form["action"], data={"csrf_token": csrf_from(officer, f"/cases/{case_id}")})
    assert revealed.status_code == 200 and HEAD_NUMBER in revealed.text
    assert _audit_count(backoffice.app, "ledger.unmask") == before + 1


def test_the_case_page_shows_the_application_the_signature_check_and_marks_differences(backoffice, city):
    application = move([("宮沢　賢", "1990-08-27"), ("宮沢　トシ", "1992-11-27")])
    application["movers"][1]["kana"] = "ミヤザワ　トシコ"  # the ledger has ミヤザワ　トシ
    case_id = deliver(backoffice.app, city, application=application)
    clerk = backoffice.client_for("clerk3", "clerk")
    page = _page(clerk, f"/cases/{case_id}")
    application_text = page.select_one("#application").text
    assert "北上市" in application_text and "大通り1-3-1" in application_text
    assert page.select_one("#case-kind").text == "転出届"
    signature = page.select_one("#signature").text
    assert load_case(backoffice.app, case_id).sign_cert_serial in signature and "失効していません" in signature
    movers = page.select("section.mover")
    assert [m["data-differences"] for m in movers] == ["2", "2"]  # kana and relationship as typed differ
    wife_diffs = [tr["data-item"] for tr in movers[1].select("tr.diff")]
    assert "kana" in wife_diffs and "name" not in wife_diffs and "birth_date" not in wife_diffs
    assert "相違" in movers[1].select_one("tr.diff[data-item=kana]").text
    assert "宮沢　賢" in page.select_one("pre.signed").text


def test_return_with_a_reason_reaches_the_portal_and_an_empty_reason_is_refused_by_the_field(backoffice, city):
    case_id = deliver(backoffice.app, city, receipt="R-WEB-RETURN")
    clerk = backoffice.client_for("clerk4", "clerk")
    refused = _post(clerk, case_id, "return", **{"return-reason": "  "})
    assert refused.status_code == 400
    error = BeautifulSoup(refused.text, "html.parser").select_one("#return-form .error-message")
    assert error is not None and "理由を入力してください" in error.text and "Please enter a reason" not in error.text
    assert load_case(backoffice.app, case_id).status is CaseStatus.RECEIVED
    reason = "転入先の番地を正しく入力して、もう一度送ってください。"
    assert _post(clerk, case_id, "return", **{"return-reason": reason}).status_code == 302
    assert load_case(backoffice.app, case_id).status is CaseStatus.RETURNED
    returned = [m for m in status_messages(backoffice.app) if m["receiptNumber"] == "R-WEB-RETURN"
                and m["status"] == "returned"]
    assert [m["reason"] for m in returned] == [reason]
    assert reason in _page(clerk, f"/cases/{case_id}").select_one("#history").text


def test_a_step_without_the_csrf_token_is_refused(backoffice, city):
    case_id = deliver(backoffice.app, city)
    clerk = backoffice.client_for("clerk5", "clerk")
    assert clerk.post(f"/cases/{case_id}/confirm").status_code == 400
    assert load_case(backoffice.app, case_id).status is CaseStatus.RECEIVED


def test_notes_between_clerks_are_kept_with_the_case(backoffice, city):
    case_id = deliver(backoffice.app, city)
    clerk = backoffice.client_for("clerk6", "clerk")
    other = backoffice.client_for("clerk7", "clerk")
    refused = _post(clerk, case_id, "notes", **{"note-text": ""})
    assert refused.status_code == 400 and "メモを入力してください" in refused.text
    assert _post(clerk, case_id, "notes", **{"note-text": "世帯主の続柄を電話で確認中"}).status_code == 302
    notes = _page(other, f"/cases/{case_id}").select_one("#notes").text
    assert "clerk6" in notes and "世帯主の続柄を電話で確認中" in notes
    assert ("case.note", "clerk6", "success") in audit_actions(backoffice.app, case_id)


def test_the_inbox_filters_counts_marks_sensitive_cases_and_claims_without_personal_data_in_urls(backoffice, city):
    app = backoffice.app
    first = deliver(app, city, receipt="I1")
    backoffice.clock.advance(minutes=5)
    app.config["SENSITIVE_CASE_KINDS"] = ("in_city_reservation",)
    # Someone not resident in an in-city move would be returned; a sensitive kind goes to a clerk instead.
    sensitive = deliver(app, city, "in_city_reservation",
                        move([("宮沢　賢", "1990-08-27"), ("宮沢　清六", "2010-04-01")],
                             destination={"kind": "in_city", "machiazaCode": "0320510001", "banchi": "1番地"}),
                        receipt="I2")
    app.config["SENSITIVE_CASE_KINDS"] = ()
    backoffice.clock.advance(minutes=5)
    certificate = deliver(app, city, "certificate", {"type": "certificate", "municipalityCode": "032051"},
                          receipt="I3")
    clerk = backoffice.client_for("clerk8", "clerk")
    page = _page(clerk, "/cases/")
    assert [a.text for a in page.select("tr.case td:first-child a")] == ["I1", "I2", "I3"]  # oldest first
    assert page.select_one(f"tr[data-case='{sensitive}']")["class"] == ["case", "sensitive"]
    assert "要配慮" in page.select_one(f"tr[data-case='{sensitive}']").text
    counts = {li.a["data-status"]: li.select_one(".count").text for li in page.select("#counts li")}
    assert counts["received"] == "2" and counts["in_review"] == "1" and counts["approved"] == "0"
    assert "勤務時間" in page.select_one(f"tr[data-case='{first}'] td.age").text
    # Filters
    assert [a.text for a in _page(clerk, "/cases/?kind=certificate").select("tr.case td:first-child a")] == ["I3"]
    assert [a.text for a in _page(clerk, "/cases/?sensitive=1").select("tr.case td:first-child a")] == ["I2"]
    assert [a.text for a in _page(clerk, "/cases/?status=in_review").select("tr.case td:first-child a")] == ["I2"]
    assert _page(clerk, "/cases/?mine=1").select("tr.case td:first-child a") == []
    # Claim from the inbox, then "claimed by me"; release gives it back.
    claim = page.select_one(f"tr[data-case='{certificate}'] form")
    token = csrf_from(clerk, "/cases/")
    response = clerk.post(claim["action"], data={"csrf_token": token, "back": "inbox"})
    assert response.status_code == 302 and response.location.endswith("/cases/")
    mine = _page(clerk, "/cases/?mine=1")
    assert [a.text for a in mine.select("tr.case td:first-child a")] == ["I3"]
    assert mine.select_one("td.claimed").text == "clerk8"
    release = mine.select_one(f"tr[data-case='{certificate}'] form")
    assert "release" in release["action"]
    clerk.post(release["action"], data={"csrf_token": csrf_from(clerk, "/cases/"), "back": "inbox"})
    assert load_case(app, certificate).claimed_by is None
    assert [e[0] for e in events(app, certificate)] == ["received", "claim", "release"]
    # Every link and form target names ids and enum values only.
    allowed = {"status", "kind", "mine", "sensitive", "lang"}
    for page_path in ("/cases/", "/cases/?sensitive=1", f"/cases/{first}"):
        soup = _page(clerk, page_path)
        for target in [a["href"] for a in soup.select("a[href]")] + [f.get("action", "") for f in soup.select("form")]:
            parts = urlsplit(target)
            assert "宮沢" not in target and not MY_NUMBER.search(target)
            assert all(k in allowed for k, _v in parse_qsl(parts.query)), target
    assert clerk.get("/cases/?kind=marriage").status_code == 400
    assert backoffice.client_for("admin8", "admin").get("/cases/").status_code == 403


def test_age_counts_working_hours_only_and_the_inbox_marks_an_overdue_case(backoffice, city):
    with backoffice.app.app_context():
        jst = dt.timezone(dt.timedelta(hours=9))
        friday_noon = dt.datetime(2026, 11, 20, 12, 0, tzinfo=jst)  # Mon 23 Nov 2026 is 勤労感謝の日
        tuesday_noon = dt.datetime(2026, 11, 24, 12, 0, tzinfo=jst)
        # Friday 12:00-17:15 and Tuesday 8:30-12:00; the weekend and the holiday do not count.
        assert workflow.working_hours_between(friday_noon, tuesday_noon) == pytest.approx(5.25 + 3.5)
        new_year = workflow.working_hours_between(dt.datetime(2026, 12, 28, 17, 0, tzinfo=jst),
                                                  dt.datetime(2027, 1, 4, 9, 30, tzinfo=jst))
        assert new_year == pytest.approx(0.25 + 1.0)  # 12/29-1/3 the offices are closed
    case_id = deliver(backoffice.app, city)
    clerk = backoffice.client_for("clerk9", "clerk")
    assert "超過" not in _page(clerk, "/cases/").select_one(f"tr[data-case='{case_id}'] td.sla").text
    backoffice.clock.advance(days=14)
    later = backoffice.client_for("clerk11", "clerk")  # the first session has long ended
    assert "超過" in _page(later, "/cases/").select_one(f"tr[data-case='{case_id}'] td.sla").text


def test_an_approver_sees_the_approve_form_only_for_a_confirmed_case(backoffice, city):
    case_id = deliver(backoffice.app, city)
    approver = backoffice.client_for("approver2", "approver")
    assert _page(approver, f"/cases/{case_id}").select_one("#approve-form") is None
    assert _page(approver, f"/cases/{case_id}").select_one("#confirm-form") is None  # confirming is a clerk's step
    clerk = backoffice.client_for("clerk10", "clerk")
    _post(clerk, case_id, "confirm")
    assert _page(approver, f"/cases/{case_id}").select_one("#approve-form input[name='approve-totp_code']")
    assert approver.post(f"/cases/{case_id}/confirm",
                         data={"csrf_token": csrf_from(approver, f"/cases/{case_id}")}).status_code == 403


def test_wrong_step_up_codes_count_toward_the_lockout_and_end_the_session(backoffice, city):
    case_id = deliver(backoffice.app, city)
    clerk = backoffice.client_for("clerk12", "clerk")
    approver = backoffice.client_for("approver3", "approver")
    _post(clerk, case_id, "confirm")
    for _attempt in range(backoffice.app.config["LOCKOUT_THRESHOLD"]):
        backoffice.clock.advance(seconds=30)
        real = pyotp.TOTP(backoffice.secrets["approver3"]).at(backoffice.clock.now)
        assert _post(approver, case_id, "approve", **{"approve-totp_code": "000000" if real != "000000" else "111111"}
                     ).status_code == 400
    # Locked like a sign-in lockout: the session ends and only an administrator can unlock.
    assert approver.get(f"/cases/{case_id}").status_code == 302
    assert backoffice.sign_in(backoffice.enrolled_client("again"), "approver3").status_code != 302
    assert load_case(backoffice.app, case_id).status is CaseStatus.CONFIRMED
