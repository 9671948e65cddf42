"""Intake (F2, R9, R10, R22): the back office verifies again, matches the ledger, makes one case, answers."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import func, select

from backoffice.models import Case, CaseStatus, Outbox
from bridge.handlers import PermanentFailure
from bridge.jobs.deliver import check_payload
from core import clock
from core.envelope import Opened
from tests.backoffice.case_fixtures import deliver, load_case, make_city, move


@pytest.fixture
def city(bo_app, tmp_path):
    """A household of two in Hanamaki; the householder holds a card issued at the counter."""
    return make_city(bo_app, tmp_path)


def _status_messages(bo_app):
    from backoffice.extensions import db

    with bo_app.app_context():
        return db.session.execute(select(Outbox.recipient, Outbox.message_type)).all()


def test_a_move_out_by_the_card_holder_becomes_one_received_case_and_the_portal_is_told(bo_app, city):
    movers = [("宮沢　賢", "1990-08-27"), ("宮沢　トシ", "1992-11-27")]
    case_id = deliver(bo_app, city, "move_out", move(movers), receipt="R1")
    case = load_case(bo_app, case_id)
    assert case.status is CaseStatus.RECEIVED and case.applicant_resident_id == city["head"]
    assert json.loads(case.mover_resident_ids) == [city["head"], city["wife"]]
    assert json.loads(case.findings) == []
    assert _status_messages(bo_app) == [("portal", "application.status")]
    # The same application delivered again makes no second case and no second answer.
    assert deliver(bo_app, city, "move_out", move([("宮沢　賢", "1990-08-27")]), receipt="R1") == case_id
    from backoffice.extensions import db

    with bo_app.app_context():
        assert db.session.execute(select(func.count()).select_from(Case)).scalar_one() == 1
    assert len(_status_messages(bo_app)) == 1


def test_a_move_in_reservation_for_someone_already_resident_is_returned_with_the_reason(bo_app, city):
    case = load_case(bo_app, deliver(bo_app, city, "move_in_reservation", move([("宮沢　賢", "1990-08-27")])))
    assert case.status is CaseStatus.RETURNED and "転居予約" in case.status_reason


def test_an_in_city_reservation_with_someone_not_resident_is_returned(bo_app, city):
    case = load_case(bo_app, deliver(bo_app, city, "in_city_reservation",
                                  move([("宮沢　賢", "1990-08-27"), ("誰か　知らない", "2001-01-01")])))
    assert case.status is CaseStatus.RETURNED and "not recorded as a resident" in case.status_reason


def test_a_second_open_move_out_for_the_same_person_is_returned(bo_app, city):
    first = load_case(bo_app, deliver(bo_app, city, "move_out", move([("宮沢　賢", "1990-08-27")])))
    second = load_case(bo_app, deliver(bo_app, city, "move_out", move([("宮沢　賢", "1990-08-27")])))
    assert first.status is CaseStatus.RECEIVED and second.status is CaseStatus.RETURNED


def test_a_move_out_naming_someone_an_open_one_names_is_returned_and_a_closed_one_blocks_nothing(bo_app, city):
    from backoffice.extensions import db

    both = [("宮沢　賢", "1990-08-27"), ("宮沢　トシ", "1992-11-27")]
    first = deliver(bo_app, city, "move_out", move([("宮沢　トシ", "1992-11-27")]))
    second = load_case(bo_app, deliver(bo_app, city, "move_out", move(both)))  # the wife is in an open one
    assert second.status is CaseStatus.RETURNED and "同じ方の転出届" in second.status_reason
    with bo_app.app_context():
        db.session.get(Case, first).status = CaseStatus.WITHDRAWN
        db.session.commit()
    third = load_case(bo_app, deliver(bo_app, city, "move_out", move(both)))
    assert third.status is CaseStatus.RECEIVED


def test_an_unknown_household_member_goes_to_a_clerk(bo_app, city):
    case = load_case(bo_app, deliver(bo_app, city, "move_out",
                                  move([("宮沢　賢", "1990-08-27"), ("宮沢　清六", "2010-04-01")])))
    assert case.status is CaseStatus.IN_REVIEW
    assert [f["code"] for f in json.loads(case.findings)] == ["unknown_member"]


def test_a_signer_whose_four_items_differ_from_the_ledger_goes_to_a_clerk(bo_app, city):
    from backoffice.extensions import db
    from backoffice.models import IdoReason, Resident
    from backoffice.services import records

    with bo_app.test_request_context("/"):
        head = db.session.get(Resident, city["head"])
        records.amend_record(db.session, head, reason=IdoReason.CORRECTION, changed_on=clock.today_jst(),
                             notified_on=None, by="clerk1", banchi="99番地")
        db.session.commit()
    case = load_case(bo_app, deliver(bo_app, city, "move_out", move([("宮沢　賢", "1990-08-27")])))
    assert case.status is CaseStatus.IN_REVIEW
    assert "four_items_mismatch" in [f["code"] for f in json.loads(case.findings)]


def test_a_revoked_signature_certificate_is_refused_here_too(bo_app, city):
    from backoffice.extensions import db
    from backoffice.models import CardRecord
    from backoffice.services import cards

    with bo_app.test_request_context("/"):
        serial = db.session.execute(select(CardRecord.sign_cert_serial)).scalar_one()
        cards.revoke_certificate(db.session, serial=serial, reason="keyCompromise", by="clerk1")
        db.session.commit()
    case = load_case(bo_app, deliver(bo_app, city, "move_out", move([("宮沢　賢", "1990-08-27")])))
    assert case.status is CaseStatus.RETURNED and json.loads(case.findings)[0]["code"] == "signature_refused"


def test_a_sensitive_case_is_never_returned_automatically(bo_app, city):
    bo_app.config["SENSITIVE_CASE_KINDS"] = ("move_in_reservation",)
    case = load_case(bo_app, deliver(bo_app, city, "move_in_reservation", move([("宮沢　賢", "1990-08-27")])))
    assert case.status is CaseStatus.IN_REVIEW and case.sensitive
    assert "would_return" in [f["code"] for f in json.loads(case.findings)]


def test_a_case_whose_signature_was_refused_cannot_be_confirmed_or_approved_even_when_its_kind_is_sensitive(
        bo_app, backoffice, city):
    # The attack: with move-outs configured sensitive, a forged (revoked-certificate) 転出届 goes to a clerk
    # instead of coming back at once; a clerk and an approver who go along would remove the records on it.
    from backoffice.extensions import db
    from backoffice.models import CardRecord, RecordStatus, Resident
    from backoffice.services import cards, cases
    from tests.backoffice.case_fixtures import staff

    backoffice.add_staff("clerk_a", "clerk")
    backoffice.add_staff("approver_b", "approver")
    bo_app.config["SENSITIVE_CASE_KINDS"] = ("move_out",)
    with bo_app.test_request_context("/"):
        serial = db.session.execute(select(CardRecord.sign_cert_serial)).scalar_one()
        cards.revoke_certificate(db.session, serial=serial, reason="keyCompromise", by="clerk1")
        db.session.commit()
    case_id = deliver(bo_app, city, "move_out", move([("宮沢　賢", "1990-08-27")]))
    assert load_case(bo_app, case_id).status is CaseStatus.IN_REVIEW

    with bo_app.test_request_context("/"), pytest.raises(cases.CaseError) as refused:
        cases.confirm(db.session, case_id, by=staff(db.session, "clerk_a"))
    assert refused.value.code == "signature_refused"
    with bo_app.test_request_context("/"):
        db.session.get(Case, case_id).status = CaseStatus.CONFIRMED  # as if confirmed before this rule
        db.session.get(Case, case_id).confirmed_by = staff(db.session, "clerk_a").id
        db.session.commit()
    with bo_app.test_request_context("/"), pytest.raises(cases.CaseError) as refused:
        cases.approve(db.session, case_id, by=staff(db.session, "approver_b"), totp_code=backoffice.totp("approver_b"))
    assert refused.value.code == "signature_refused"
    with bo_app.app_context():
        assert db.session.get(Resident, city["head"]).status is RecordStatus.CURRENT


def test_a_malformed_message_is_a_permanent_failure(bo_app):
    from backoffice.extensions import db
    from backoffice.services.intake import receive_application

    opened = Opened(message_id=str(uuid.uuid4()), message_type="application.submitted", sender="portal",
                    recipient="muni:032051", created_at=clock.utcnow(), payload={"receiptNumber": 1})
    # Refused by its schema on arrival, before the handler runs (tests/bridge/test_messages.py: end to end).
    with bo_app.test_request_context("/"), pytest.raises(PermanentFailure) as refused:
        check_payload(opened)
        receive_application(db.session, opened)
    assert refused.value.reason == "schema_invalid"
    with bo_app.app_context():
        assert db.session.execute(select(Case)).first() is None


def test_a_signed_application_whose_payload_is_not_a_json_object_is_a_schema_refusal_and_no_case(bo_app):
    """A compromised portal's JWS that decodes to a JSON array: refused as malformed at once, never retried."""
    from backoffice.extensions import db
    from backoffice.services.intake import receive_application

    payload = {"receiptNumber": "202612060000000009", "kind": "move_out", "moveId": None,
               "submittedAt": clock.utcnow().isoformat(), "signedApplication": "eyJhbGciOiJSUzI1NiJ9.W10.c2ln"}
    opened = Opened(message_id=str(uuid.uuid4()), message_type="application.submitted", sender="portal",
                    recipient="muni:032051", created_at=clock.utcnow(), payload=payload)
    check_payload(opened)  # the envelope's shape is right: only the signed content is wrong
    with bo_app.test_request_context("/"), pytest.raises(PermanentFailure) as refused:
        receive_application(db.session, opened)
    assert (refused.value.reason, refused.value.detail) == ("schema", "signed application is not a JWS")
    with bo_app.app_context():
        assert db.session.execute(select(Case)).first() is None


def test_the_clerks_inbox_lists_arrived_cases_oldest_first_without_personal_data_in_urls(backoffice, city):
    from bs4 import BeautifulSoup

    first = deliver(backoffice.app, city, "move_out", move([("宮沢　賢", "1990-08-27")]), receipt="A1")
    backoffice.clock.advance(minutes=5)
    deliver(backoffice.app, city, "move_out",
             move([("宮沢　トシ", "1992-11-27"), ("宮沢　清六", "2010-04-01")]), receipt="A2")
    client = backoffice.client_for("clerk9", "clerk")
    page = BeautifulSoup(client.get("/cases/").text, "html.parser")
    assert [a.text for a in page.select("tr.case td:first-child a")] == ["A1", "A2"]
    for link in page.select("a[href]"):
        assert "宮沢" not in link["href"]
    detail = BeautifulSoup(client.get(f"/cases/{first}").text, "html.parser")
    assert "宮沢　賢" in detail.select_one("pre.signed").text
    assert client.get("/cases/?status=bogus").status_code == 400
    admin = backoffice.client_for("admin9", "admin")
    assert admin.get("/cases/").status_code == 403
