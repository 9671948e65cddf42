"""R20 from the portal: a resident's signed request becomes a request case for the signer, and no one else.

The portal is assumed compromised (it holds valid bridge keys and sends what it likes): each test
seals the envelope with the portal's own keys and hands it to the delivery job a back-office worker
runs, as tests/backoffice/test_intake_trust.py does for moves and certificates.
"""

from __future__ import annotations

import base64
import datetime as dt
import json

from sqlalchemy import select

from backoffice.models import AuditLog, DeadLetter, ProvisionRecord, Resident, ResidentRequest
from core import clock
from tests.backoffice import test_resident_requests
from tests.backoffice.case_fixtures import HEAD_NUMBER, WIFE_NUMBER, status_messages
from tests.backoffice.test_intake_trust import HERE, _portal_sends, _sign, _submitted
from tests.backoffice.test_resident_requests import _as

city = test_resident_requests.city  # the household of two with a card, and the staff who decide


def _signed(bo_app, city, application: dict) -> str:
    return _sign(bo_app, city["card"], application,
                 claims={"moveId": None, "parts": [{"kind": application["type"], "municipalityCode": HERE}]})


def _correction(**changes) -> dict:
    return {"type": "correction_request", "municipalityCode": HERE, "item": "name_kana",
            "correctValue": "ミヤザワ　ケンジ", "reason": "戸籍と読みが違います", **changes}


def _requests(bo_app) -> list[tuple[str, int, str | None, str | None]]:
    from backoffice.extensions import db

    with bo_app.app_context():
        return [(r.kind, r.resident_id, r.receipt_number, r.item) for r in db.session.execute(
            select(ResidentRequest).order_by(ResidentRequest.id)).scalars()]


def _dead_letters(bo_app) -> list[str]:
    from backoffice.extensions import db

    with bo_app.app_context():
        return list(db.session.execute(select(DeadLetter.reason).order_by(DeadLetter.id)).scalars())


def _tampered(jws: str, **changes) -> str:
    """The same signature over a payload the portal changed after the resident signed it."""
    header, payload, signature = jws.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["application"].update(changes)
    body = base64.urlsafe_b64encode(json.dumps(claims, ensure_ascii=False).encode()).rstrip(b"=").decode()
    return f"{header}.{body}.{signature}"


def test_a_signed_request_is_a_case_for_the_signer_and_a_compromised_portal_gets_none_for_anyone_else(bo_app, city):
    # Naming the wife inside a request the householder signed: not a field of any request, refused on receipt.
    named = _signed(bo_app, city, _correction(juminhyoCode="12345678901", name="宮沢　トシ"))
    _portal_sends(bo_app, "application.submitted", _submitted(named, receipt="R-NAMED", kind="correction_request"))
    # The value changed after signing: the signature no longer covers it.
    honest = _signed(bo_app, city, _correction())
    altered = _tampered(honest, correctValue="宮沢　トシ")
    _portal_sends(bo_app, "application.submitted", _submitted(altered, receipt="R-ALTERED", kind="correction_request"))
    # The envelope claiming another kind than the one signed.
    _portal_sends(bo_app, "application.submitted", _submitted(honest, receipt="R-KIND", kind="suspension_request"))
    assert _requests(bo_app) == [], "a request the resident did not sign as it arrived made a case"
    assert _dead_letters(bo_app) == ["schema", "unsigned_field"]
    returned = {m["receiptNumber"]: m for m in status_messages(bo_app)}
    assert returned["R-ALTERED"]["status"] == "returned" and "署名" in returned["R-ALTERED"]["reason"]

    # The resident's own signed request: a case for the signer, with 30 days from receipt.
    _portal_sends(bo_app, "application.submitted", _submitted(honest, receipt="R-OWN", kind="correction_request"))
    assert _requests(bo_app) == [("correction", city["head"], "R-OWN", "name_kana")]
    from backoffice.extensions import db

    with bo_app.app_context():
        request = db.session.execute(select(ResidentRequest)).scalar_one()
        assert request.due_on == clock.today_jst() + dt.timedelta(days=30)
        assert request.received_by == "portal" and request.statement == "戸籍と読みが違います"
        assert db.session.get(Resident, city["wife"]).name == "宮沢　トシ"
    assert {m["status"] for m in status_messages(bo_app) if m["receiptNumber"] == "R-OWN"} == {"received"}
    # The same signature again, under a new receipt number: acted on once only.
    _portal_sends(bo_app, "application.submitted", _submitted(honest, receipt="R-AGAIN", kind="correction_request"))
    assert len(_requests(bo_app)) == 1
    assert _dead_letters(bo_app)[-1] == "signature_replayed"


def test_a_signer_the_ledger_does_not_hold_gets_no_case_and_is_told(bo_app, city, cards):
    # A genuine card of someone who is not in this city's ledger (the portal may forward anyone's).
    stranger = cards.issue(name="高橋　ミツ", birth_date=dt.date(1970, 1, 2), address="岩手県花巻市桜町一丁目9番地")
    from bridge.peers.jlis.cardclient import build_signed_application
    from tests.portal_fixtures import PASSWORD

    application = {"type": "disclosure_request", "municipalityCode": HERE}
    jws = build_signed_application(stranger, PASSWORD, aud=bo_app.config["SITE_ORIGIN"], nonce="n" * 44,
                                   application=application,
                                   claims={"moveId": None, "parts": [{"kind": "disclosure_request",
                                                                      "municipalityCode": HERE}]})
    _portal_sends(bo_app, "application.submitted", _submitted(jws, receipt="R-STRANGER", kind="disclosure_request"))
    assert _requests(bo_app) == []
    [answer] = status_messages(bo_app)
    assert answer["receiptNumber"] == "R-STRANGER" and answer["status"] == "returned"
    assert "住民記録を確認できなかった" in answer["reason"]
    from backoffice.extensions import db

    with bo_app.app_context():
        denied = db.session.execute(select(AuditLog).where(
            AuditLog.action == "intake.resident_request_refused")).scalar_one()
        assert denied.outcome == "denied" and denied.target_id == "R-STRANGER"


def test_the_disclosure_answer_goes_to_the_portal_with_no_staff_name_and_nothing_about_anyone_else(bo_app, city):
    from backoffice.services import ledger, resident_requests

    jws = _signed(bo_app, city, {"type": "disclosure_request", "municipalityCode": HERE})
    _portal_sends(bo_app, "application.submitted", _submitted(jws, receipt="R-DISCLOSE", kind="disclosure_request"))
    [(kind, resident_id, _receipt, _item)] = _requests(bo_app)
    assert (kind, resident_id) == ("disclosure", city["head"])
    _as(bo_app, "clerk_a", lambda s, who: ledger.get_record(s, city["head"]))
    _as(bo_app, "number_n", lambda s, who: ledger.reveal_my_number(ledger.get_record(s, city["head"]), who))
    _as(bo_app, "number_n", lambda s, who: ledger.reveal_my_number(ledger.get_record(s, city["wife"]), who))
    from backoffice.extensions import db

    with bo_app.app_context():  # what left the office about each of them (the 提供記録, R4)
        for n, (recipient, person) in enumerate((("prefecture", "head"), ("dept:tax", "head"), ("dept:nhi", "wife"))):
            db.session.add(ProvisionRecord(
                recipient_id=recipient, message_type="identity.update", message_id=f"00000000-0000-4000-8000-{n:012d}",
                resident_id=city[person], items_sent="[]", legal_basis=f"根拠 {recipient}", reason="case 1",
                detail="{}", created_at=clock.utcnow(), created_by="bridge"))
        db.session.commit()

    with bo_app.app_context():
        request_id = db.session.execute(select(ResidentRequest.id)).scalar_one()
    _as(bo_app, "clerk_a", lambda s, who: resident_requests.confirm(s, request_id, by=who))
    assert [m["status"] for m in status_messages(bo_app)].count("in_review") == 1
    _as(bo_app, "approver_b", lambda s, who: resident_requests.decide(s, request_id, grant=True, reason="全部開示",
                                                                      by=who))
    [told] = [m for m in status_messages(bo_app) if m["status"] == "completed"]
    assert told["receiptNumber"] == "R-DISCLOSE" and told["status"] == "completed" and told["reason"] == "全部開示"
    answer = told["answer"]
    assert answer["record"]["name"] == "宮沢　賢" and answer["record"]["birth_date"] == "1990-08-27"
    assert [(a["who"].split(" / ")[0], a["procedure"].split(" / ")[0]) for a in answer["accesses"]] == [
        ("clerk", "住民票の照会"), ("clerk, number_use", "住民票の照会"), ("clerk, number_use", "個人番号の表示"),
        ("都道府県知事（都道府県サーバー）", "情報の提供"), ("税務担当課（個人住民税）", "庁内での利用のための移転")]
    assert all(a["basis"] and "花巻市" in a["office"] for a in answer["accesses"])
    assert "根拠 dept:nhi" not in json.dumps(answer, ensure_ascii=False)  # the wife's provision is hers
    text = json.dumps(answer, ensure_ascii=False)
    for secret in ("clerk_a", "number_n", "approver_b", "職員", "宮沢　トシ", "トシ", HEAD_NUMBER, WIFE_NUMBER):
        assert secret not in text, secret


def test_a_long_access_log_still_reaches_the_portal_with_its_newest_accesses(bo_app, city):
    from backoffice.services import ledger, resident_requests
    from bridge.messages import ANSWER_MAX_ACCESSES

    jws = _signed(bo_app, city, {"type": "disclosure_request", "municipalityCode": HERE})
    _portal_sends(bo_app, "application.submitted", _submitted(jws, receipt="R-LONG", kind="disclosure_request"))
    views = ANSWER_MAX_ACCESSES + 50
    _as(bo_app, "clerk_a", lambda s, who: [ledger.get_record(s, city["head"]) for _ in range(views)])
    _as(bo_app, "number_n", lambda s, who: ledger.reveal_my_number(ledger.get_record(s, city["head"]), who))
    from backoffice.extensions import db

    with bo_app.app_context():
        request_id = db.session.execute(select(ResidentRequest.id)).scalar_one()
    _as(bo_app, "clerk_a", lambda s, who: resident_requests.confirm(s, request_id, by=who))
    _as(bo_app, "approver_b", lambda s, who: resident_requests.decide(s, request_id, grant=True, reason="全部開示",
                                                                      by=who))
    [told] = [m for m in status_messages(bo_app) if m["status"] == "completed"]
    accesses = told["answer"]["accesses"]
    assert len(accesses) == ANSWER_MAX_ACCESSES
    assert accesses[-1]["procedure"].startswith("個人番号の表示")  # the newest kept
    with bo_app.app_context():
        kept = json.loads(db.session.get(ResidentRequest, request_id).answer)["accesses"]
    assert len(kept) == views + 2  # the whole list stays with the request, for the answer by post


def test_a_clerk_extends_the_deadline_once_on_the_page_and_the_resident_is_told_the_new_date(bo_app, backoffice, city):
    from tests.conftest import csrf_from

    jws = _signed(bo_app, city, _correction())
    _portal_sends(bo_app, "application.submitted", _submitted(jws, receipt="R-EXTEND", kind="correction_request"))
    from backoffice.extensions import db

    with bo_app.app_context():
        request_id = db.session.execute(select(ResidentRequest.id)).scalar_one()
    clerk = backoffice.client_for("clerk_x", "clerk", terminal="t-clerk-x")
    token = csrf_from(clerk, "/resident-requests/")
    no_reason = clerk.post(f"/resident-requests/{request_id}/extend", data={"csrf_token": token, "days": "20",
                                                                          "reason": " "})
    assert no_reason.status_code == 400 and "延長の理由" in no_reason.get_data(as_text=True)
    assert clerk.post(f"/resident-requests/{request_id}/extend", data={
        "csrf_token": token, "days": "20", "reason": "戸籍の照会に時間を要するため"}).status_code == 302
    new_date = (clock.today_jst() + dt.timedelta(days=50)).isoformat()
    with bo_app.app_context():
        assert db.session.get(ResidentRequest, request_id).due_on.isoformat() == new_date
    [told] = [m for m in status_messages(bo_app) if m["status"] == "in_review"]
    assert new_date in told["reason"] and "戸籍の照会に時間を要するため" in told["reason"]
    again = clerk.post(f"/resident-requests/{request_id}/extend", data={
        "csrf_token": token, "days": "10", "reason": "再延長"})
    assert again.status_code == 400  # once only
    with bo_app.app_context():
        assert db.session.get(ResidentRequest, request_id).due_on.isoformat() == new_date
