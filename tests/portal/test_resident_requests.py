"""R20 on the portal: disclosure, correction and suspension requests signed with the card, and the answer.

The answer to a disclosure request arrives with the municipality's status message and is shown in
"My applications" to the resident who filed it, and to nobody else.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select

from bridge.handlers import PermanentFailure
from core import clock
from core.envelope import Opened
from portal.models import Application, ApplicationKind, ApplicationStatus, Outbox
from tests.portal.test_applications import Resident, _api_submit, _bearer

ANSWER = {"record": {"name": "宮沢　賢", "name_kana": "ミヤザワ　ケン", "birth_date": "1990-08-27", "sex": "1",
                     "address": "岩手県花巻市桜町一丁目1番地", "relationship": "世帯主", "honseki": None,
                     "hittosha": None},
          "accesses": [{"at": "2026-12-01 10:15", "who": "clerk, number_use", "office": "花巻市 市民課",
                        "procedure": "個人番号の表示 / My Number shown",
                        "basis": "番号法第9条第1項 / My Number Act art. 9(1)"}]}


def _status(app, receipt, status, reason=None, answer=None, sender="muni:032051"):
    from portal.extensions import db
    from portal.services.status import receive_status

    payload = {"receiptNumber": receipt, "status": status, "reason": reason}
    if answer is not None:
        payload["answer"] = answer
    opened = Opened(message_id=str(uuid.uuid4()), message_type="application.status", sender=sender,
                    recipient="portal", created_at=clock.utcnow(), payload=payload)
    with app.test_request_context("/"):
        receive_status(db.session, opened)
        db.session.commit()


def _applications(app) -> list[Application]:
    from portal.extensions import db

    with app.app_context():
        rows = list(db.session.execute(select(Application).order_by(Application.id)).scalars())
        db.session.expunge_all()
        return rows


def _disclosure(resident) -> str:
    assert resident.post("/apply/request", {"kind": "disclosure_request"}).status_code == 302
    check = BeautifulSoup(resident.client.get("/apply/request/check").text, "html.parser")
    assert "開示請求" in check.select_one("#answers").text
    sent = resident.sign("/apply/request/sign/challenge", "/apply/request/submit")
    assert sent.status_code == 200, sent.json
    return sent.json["redirect"].rsplit("/", 1)[-1]


def test_resident_b_never_sees_the_answer_to_resident_as_disclosure_request(portal_app, cards):
    a = Resident(portal_app, cards)
    b = Resident(portal_app, cards, name="石川　一", birth_date=dt.date(1986, 2, 20))
    receipt = _disclosure(a)
    _status(portal_app, receipt, "received", "回答期限 / Answer due by: 2027-01-05")
    _status(portal_app, receipt, "completed", "全部開示", ANSWER)

    # A reads the answer on My applications: the record, and who accessed it by role and office.
    page = BeautifulSoup(a.client.get(f"/mypage/applications/{receipt}").text, "html.parser")
    assert "ミヤザワ　ケン" in page.select_one("#answer-record").text
    [row] = page.select("#answer-accesses tr.access")
    cells = [td.text for td in row.select("td")]
    assert cells[0] == "2026-12-01 10:15" and "花巻市 市民課" == cells[2] and "番号法" in cells[4]
    assert cells[1] == "住民記録担当職員、個人番号取扱職員"  # roles in the resident's language, never a name

    # B: not in the list, 404 on the page and in the API, and the attempt is in the operation log.
    listing = b.client.get("/mypage/applications").text
    assert receipt not in listing
    response = b.client.get(f"/mypage/applications/{receipt}")
    assert response.status_code == 404 and "ミヤザワ" not in response.text
    client, headers = _bearer(portal_app, b.card)
    api = client.get(f"/api/v1/applications/{receipt}", headers=headers)
    assert api.status_code == 404 and "ミヤザワ" not in api.text
    assert all(item["answer"] is None
               for item in client.get("/api/v1/applications", headers=headers).json["applications"])
    own, own_headers = _bearer(portal_app, a.card)
    assert own.get(f"/api/v1/applications/{receipt}", headers=own_headers).json["answer"] == ANSWER


def test_each_request_is_signed_and_queued_for_the_city_and_a_missing_answer_is_named(portal_app, cards):
    r = Resident(portal_app, cards)
    refused = r.post("/apply/request", {"kind": "correction_request", "item": "name_kana", "correct_value": " ",
                                        "reason": "読みが違う"})
    summary = BeautifulSoup(refused.text, "html.parser").select_one(".error-summary")
    assert summary is not None and summary.select_one("a[href='#correct_value']") is not None
    assert r.post("/apply/request", {"kind": "correction_request", "item": "name_kana",
                                     "correct_value": "ミヤザワ　ケンジ", "reason": "読みが違う"}).status_code == 302
    assert r.sign("/apply/request/sign/challenge", "/apply/request/submit").status_code == 200
    assert r.post("/apply/request", {"kind": "suspension_request", "use": "provision",
                                     "reason": "同意していない提供"}).status_code == 302
    # What the card signs is what was checked: a value changed in the browser is refused, nothing stored.
    tampered = r.sign("/apply/request/sign/challenge", "/apply/request/submit",
                      tamper=lambda app: {**app, "use": "erasure"})
    assert tampered.status_code == 400
    assert r.sign("/apply/request/sign/challenge", "/apply/request/submit").status_code == 200
    stored = _applications(portal_app)
    assert [a.kind for a in stored] == [ApplicationKind.CORRECTION_REQUEST, ApplicationKind.SUSPENSION_REQUEST]
    assert all(a.status is ApplicationStatus.SUBMITTED and a.municipality_code == "032051" for a in stored)
    from portal.extensions import db

    with portal_app.app_context():
        kinds = [m.message_type for m in db.session.execute(select(Outbox).order_by(Outbox.id)).scalars()
                 if m.recipient == "muni:032051"]
    assert kinds == ["application.submitted", "application.submitted"]


def test_a_request_by_api_is_checked_against_its_schema_naming_the_field(portal_app, cards):
    r = Resident(portal_app, cards)
    client, headers = _bearer(portal_app, r.card)
    bad = _api_submit(client, headers, r.card, {"type": "correction_request", "municipalityCode": "032051",
                                                "item": "my_number", "correctValue": "x", "reason": "y"})
    assert bad.status_code == 422 and [f["pointer"] for f in bad.json["fields"]] == ["/item"]
    elsewhere = _api_submit(client, headers, r.card, {"type": "disclosure_request", "municipalityCode": "032069"})
    assert elsewhere.status_code == 422 and elsewhere.json["fields"][0]["field"] == "municipalityCode"
    good = _api_submit(client, headers, r.card, {"type": "disclosure_request", "municipalityCode": "032051"})
    assert good.status_code == 202 and good.json["parts"][0]["kind"] == "disclosure_request"
    assert [a.kind for a in _applications(portal_app)] == [ApplicationKind.DISCLOSURE_REQUEST]


def test_an_answer_is_kept_only_for_a_granted_disclosure_request(portal_app, cards):
    r = Resident(portal_app, cards)
    client, headers = _bearer(portal_app, r.card)
    receipt = _api_submit(client, headers, r.card, {"type": "suspension_request", "municipalityCode": "032051",
                                                    "use": "use", "reason": "理由"}).json["receipt_number"]
    with pytest.raises(PermanentFailure):
        _status(portal_app, receipt, "completed", "決定", ANSWER)
    [application] = _applications(portal_app)
    assert application.answer is None and application.status is ApplicationStatus.SUBMITTED
    page = r.client.get(f"/mypage/applications/{receipt}").text
    assert "answer-accesses" not in page
    # A new deadline for a request already being checked still reaches the resident.
    _status(portal_app, receipt, "in_review", "回答期限 / Answer due by: 2027-01-05")
    _status(portal_app, receipt, "in_review", "回答期限 / Answer due by: 2027-02-04（延長 / extended: 照会中）")
    [application] = _applications(portal_app)
    assert application.status_reason.endswith("照会中）")


def test_a_request_cannot_be_withdrawn_online_so_the_portal_never_shows_one_the_city_still_handles(portal_app, cards):
    r = Resident(portal_app, cards)
    assert r.post("/apply/request", {"kind": "suspension_request", "use": "use", "reason": "理由"}).status_code == 302
    sent = r.sign("/apply/request/sign/challenge", "/apply/request/submit")
    receipt = sent.json["redirect"].rsplit("/", 1)[-1]
    page = r.client.get(f"/mypage/applications/{receipt}").text
    assert f"/mypage/applications/{receipt}/withdraw" not in page
    assert r.client.get(f"/mypage/applications/{receipt}/withdraw").status_code == 302
    refused = r.sign(f"/mypage/applications/{receipt}/withdraw/challenge", f"/mypage/applications/{receipt}/withdraw")
    assert refused.status_code == 400 and "取り下げられません" in refused.json["message"]
    [application] = _applications(portal_app)
    assert application.status is ApplicationStatus.SUBMITTED
    from portal.extensions import db

    with portal_app.app_context():
        sent_types = [m.message_type for m in db.session.execute(select(Outbox)).scalars()]
    assert "application.withdrawn" not in sent_types
