"""A compromised portal (issue 10 §2): it holds valid bridge keys and sends any payload it likes.

Each test builds the envelope payload by hand, seals it with the portal's keys and hands it to the
delivery job a back-office worker runs. The back office must act only on what the resident signed.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from sqlalchemy import func, select

from backoffice.models import AcceptedSignature, AuditLog, Case, CaseStatus, DeadLetter
from bridge.peers.jlis.cardclient import build_signed_application
from core import clock
from core.envelope import KeyRegistry, seal
from tests.backoffice.case_fixtures import PASSWORD, load_case, make_city, move, status_messages

HERE, THERE = "032051", "032069"


@pytest.fixture
def city(bo_app, tmp_path):
    """A household of two in Hanamaki; the householder holds a card issued at the counter."""
    return make_city(bo_app, tmp_path)


def _portal_sends(bo_app, message_type: str, payload: dict) -> str:
    """Seal ``payload`` with the portal's own keys and deliver it as a back-office worker would."""
    from bridge.jobs.deliver import deliver

    keys = KeyRegistry.from_config({"BRIDGE_KEY_DIRECTORY": bo_app.config["BRIDGE_KEY_DIRECTORY"]}, party="portal")
    sealed = seal(payload, message_type=message_type, sender="portal", recipient=f"muni:{HERE}", keys=keys)
    with bo_app.app_context():
        deliver(sealed.message_id, sealed.token)
    return sealed.message_id


def _sign(bo_app, card, application, *, iat=None, claims=None) -> str:
    return build_signed_application(card, PASSWORD, aud=bo_app.config["SITE_ORIGIN"], nonce="n" * 44,
                                    application=application, iat=iat, claims=claims)


def _move_out_claims(move_id: str) -> dict:
    return {"moveId": move_id, "parts": [{"kind": "move_out", "municipalityCode": HERE},
                                         {"kind": "move_in_reservation", "municipalityCode": THERE}]}


def _submitted(jws: str, *, receipt: str, kind: str = "move_out", move_id: str | None = None) -> dict:
    return {"receiptNumber": receipt, "kind": kind, "moveId": move_id, "submittedAt": clock.utcnow().isoformat(),
            "signedApplication": jws}


def _withdrawn(jws: str, *, receipt: str, move_id: str | None) -> dict:
    return {"receiptNumber": receipt, "kind": "move_out", "moveId": move_id,
            "submittedAt": clock.utcnow().isoformat(), "signedWithdrawal": jws}


def _cases(bo_app) -> list[Case]:
    from backoffice.extensions import db

    with bo_app.app_context():
        rows = db.session.execute(select(Case).order_by(Case.id)).scalars().all()
        for row in rows:
            db.session.expunge(row)
        return list(rows)


def _dead_letters(bo_app) -> list[str]:
    from backoffice.extensions import db

    with bo_app.app_context():
        return list(db.session.execute(select(DeadLetter.reason).order_by(DeadLetter.id)).scalars())


def _logged(bo_app, action: str) -> int:
    from backoffice.extensions import db

    with bo_app.app_context():
        return db.session.execute(select(func.count()).select_from(AuditLog).where(AuditLog.action == action)
                                  ).scalar_one()


def _a_received_move_out(bo_app, city, receipt: str = "R-1") -> tuple[Case, str]:
    move_id = str(uuid.uuid4())
    _portal_sends(bo_app, "application.submitted",
                  _submitted(_sign(bo_app, city["card"], move(), claims=_move_out_claims(move_id)),
                             receipt=receipt, move_id=move_id))
    [case] = _cases(bo_app)
    assert case.status is CaseStatus.RECEIVED
    return case, move_id


def _second_card(bo_app, tmp_path):
    """The wife's own card (another holder in the same household)."""
    from backoffice.extensions import db
    from backoffice.models import Resident
    from backoffice.services import cards

    with bo_app.test_request_context("/"):
        wife = db.session.execute(select(Resident).where(Resident.name == "宮沢　トシ")).scalar_one()
        _record, card_file = cards.issue_card(db.session, resident_code=wife.juminhyo_code, pin="1234",
                                              password=PASSWORD, issued_by="clerk1", iterations=1000)
        db.session.commit()
    path = tmp_path / "wife.json"
    path.write_bytes(card_file)
    return path


def _withdrawal(receipt: str) -> dict:
    return {"type": "withdrawal", "receiptNumber": receipt}


# 1. Withdrawals are verified.

def test_a_withdrawal_that_is_not_a_signature_withdraws_nothing_and_the_portal_is_told(bo_app, city):
    case, move_id = _a_received_move_out(bo_app, city)
    _portal_sends(bo_app, "application.withdrawn", _withdrawn("not.a.signature", receipt="R-1", move_id=move_id))
    assert load_case(bo_app, case.id).status is CaseStatus.RECEIVED, "a forged withdrawal closed the case"
    assert _dead_letters(bo_app) == ["withdrawal_refused"]
    assert _logged(bo_app, "intake.withdrawal_refused") == 1
    answer = status_messages(bo_app)[-1]
    assert answer["receiptNumber"] == "R-1" and answer["status"] == "received"
    assert answer["reasonCode"] == "withdrawal_signature" and answer["reason"] is None


def test_a_withdrawal_signed_by_another_card_holder_is_refused(bo_app, city, tmp_path):
    case, move_id = _a_received_move_out(bo_app, city)
    wife_card = _second_card(bo_app, tmp_path)
    signed = _sign(bo_app, wife_card, _withdrawal("R-1"))
    _portal_sends(bo_app, "application.withdrawn", _withdrawn(signed, receipt="R-1", move_id=move_id))
    assert load_case(bo_app, case.id).status is CaseStatus.RECEIVED, "another resident's signature withdrew it"
    assert _dead_letters(bo_app) == ["withdrawal_refused"]


@pytest.mark.parametrize("signed_content", [
    {"type": "withdrawal", "receiptNumber": "R-OTHER"},  # the resident withdrew another application
    {"type": "certificate-cancel", "receiptNumber": "R-1"},  # not a withdrawal at all
])
def test_a_withdrawal_must_name_this_receipt_and_be_a_withdrawal(bo_app, city, signed_content):
    case, move_id = _a_received_move_out(bo_app, city)
    signed = _sign(bo_app, city["card"], signed_content)
    _portal_sends(bo_app, "application.withdrawn", _withdrawn(signed, receipt="R-1", move_id=move_id))
    assert load_case(bo_app, case.id).status is CaseStatus.RECEIVED, "a signature for something else withdrew it"
    assert _dead_letters(bo_app) == ["withdrawal_refused"]


def test_the_applicants_own_signed_withdrawal_closes_the_case(bo_app, city):
    case, move_id = _a_received_move_out(bo_app, city)
    _portal_sends(bo_app, "application.withdrawn",
                  _withdrawn(_sign(bo_app, city["card"], _withdrawal("R-1")), receipt="R-1", move_id=move_id))
    assert load_case(bo_app, case.id).status is CaseStatus.WITHDRAWN
    assert _dead_letters(bo_app) == []
    assert status_messages(bo_app)[-1]["status"] == "withdrawn"


def test_an_old_signed_withdrawal_is_refused(bo_app, city):
    case, move_id = _a_received_move_out(bo_app, city)
    old = int((clock.utcnow() - dt.timedelta(days=3)).timestamp())
    signed = _sign(bo_app, city["card"], _withdrawal("R-1"), iat=old)
    _portal_sends(bo_app, "application.withdrawn", _withdrawn(signed, receipt="R-1", move_id=move_id))
    assert load_case(bo_app, case.id).status is CaseStatus.RECEIVED


# 2. One signature, one case; a signing time within the configured age.

def test_one_signature_cannot_be_replayed_into_a_second_case(bo_app, city):
    move_id = str(uuid.uuid4())
    jws = _sign(bo_app, city["card"], move(), claims=_move_out_claims(move_id))
    _portal_sends(bo_app, "application.submitted", _submitted(jws, receipt="R-1", move_id=move_id))
    _portal_sends(bo_app, "application.submitted", _submitted(jws, receipt="R-2", move_id=move_id))
    assert [c.receipt_number for c in _cases(bo_app)] == ["R-1"], "the same signature made a second case"
    assert _dead_letters(bo_app) == ["signature_replayed"]
    assert _logged(bo_app, "bridge.dead_letter") == 1
    from backoffice.extensions import db

    with bo_app.app_context():
        assert db.session.execute(select(AcceptedSignature.part)).scalars().all() == ["move_out"]


@pytest.mark.parametrize(("age", "code"), [(dt.timedelta(days=2), "SIGNED_TOO_LONG_AGO"),
                                           (-dt.timedelta(hours=1), "SIGNED_IN_FUTURE")])
def test_a_signature_made_too_long_ago_or_in_the_future_is_refused_on_arrival(bo_app, city, age, code):
    move_id = str(uuid.uuid4())
    iat = int((clock.utcnow() - age).timestamp())
    jws = _sign(bo_app, city["card"], move(), iat=iat, claims=_move_out_claims(move_id))
    _portal_sends(bo_app, "application.submitted", _submitted(jws, receipt="R-1", move_id=move_id))
    [case] = _cases(bo_app)
    assert case.status is CaseStatus.RETURNED, f"a signature {age} old made a {case.status} case"
    assert json.loads(case.findings)[0] == {"code": "signature_refused", "detail": code}


# 3. What the back office acts on is what was signed.

@pytest.mark.parametrize("envelope", [
    {"kind": "in_city_reservation"},  # the resident signed a move out, not a move within the city
    {"kind": "move_in_reservation"},  # the signed 転入予約 is for Kitakami, not for this city
    {"moveId": "00000000-0000-4000-8000-000000000000"},  # another move than the one signed
    {"moveId": None},
])
def test_an_envelope_field_that_disagrees_with_the_signed_application_is_refused(bo_app, city, envelope):
    move_id = str(uuid.uuid4())
    jws = _sign(bo_app, city["card"], move(), claims=_move_out_claims(move_id))
    payload = {**_submitted(jws, receipt="R-1", move_id=move_id), **envelope}
    _portal_sends(bo_app, "application.submitted", payload)
    assert _cases(bo_app) == [], f"a case was made from the unsigned {envelope}"
    assert _dead_letters(bo_app) == ["unsigned_field"]


def test_an_application_signed_without_its_parts_is_refused(bo_app, city):
    jws = _sign(bo_app, city["card"], move())
    _portal_sends(bo_app, "application.submitted", _submitted(jws, receipt="R-1"))
    assert _cases(bo_app) == [], "a case was made although the resident never signed which parts to send"
    assert _dead_letters(bo_app) == ["unsigned_field"]


def test_the_case_takes_its_kind_and_move_from_the_signature(bo_app, city):
    case, move_id = _a_received_move_out(bo_app, city)
    assert (case.kind, case.move_id) == ("move_out", move_id)


def test_a_signed_withdrawal_after_the_city_started_checking_leaves_the_case_and_tells_the_portal_why(bo_app, city):
    from backoffice.extensions import db

    case, move_id = _a_received_move_out(bo_app, city)
    with bo_app.app_context():
        db.session.get(Case, case.id).status = CaseStatus.CONFIRMED
        db.session.commit()
    _portal_sends(bo_app, "application.withdrawn",
                  _withdrawn(_sign(bo_app, city["card"], _withdrawal("R-1")), receipt="R-1", move_id=move_id))
    assert load_case(bo_app, case.id).status is CaseStatus.CONFIRMED
    answer = status_messages(bo_app)[-1]
    assert answer["status"] == "in_review" and answer["reasonCode"] == "withdrawal_too_late"
    assert _logged(bo_app, "intake.withdrawal_too_late") == 1


def test_a_withdrawal_refused_while_in_review_cannot_be_replayed_to_cancel_the_move_once_approved(
        bo_app, backoffice, city):
    """The attack: the resident's withdrawal is refused (the city is already checking); after the approval
    the compromised portal sends the same signature again, where it would read as a 転出取消."""
    from backoffice.extensions import db
    from backoffice.models import RecordStatus, Resident
    from backoffice.services import cases
    from tests.backoffice.case_fixtures import staff

    backoffice.add_staff("clerk_a", "clerk")
    backoffice.add_staff("approver_b", "approver")
    case, move_id = _a_received_move_out(bo_app, city)
    with bo_app.test_request_context("/"):
        cases.confirm(db.session, case.id, by=staff(db.session, "clerk_a"))
        db.session.commit()
    withdrawal = _sign(bo_app, city["card"], _withdrawal("R-1"))
    _portal_sends(bo_app, "application.withdrawn", _withdrawn(withdrawal, receipt="R-1", move_id=move_id))
    assert [m["reasonCode"] for m in status_messages(bo_app) if m["reasonCode"]] == ["withdrawal_too_late"]
    with bo_app.test_request_context("/"):
        cases.approve(db.session, case.id, by=staff(db.session, "approver_b"), totp_code=backoffice.totp("approver_b"))
        db.session.commit()
    with bo_app.app_context():
        assert db.session.get(Resident, city["head"]).status is RecordStatus.REMOVED

    _portal_sends(bo_app, "application.withdrawn", _withdrawn(withdrawal, receipt="R-1", move_id=move_id))

    assert load_case(bo_app, case.id).status is CaseStatus.APPROVED
    with bo_app.app_context():
        assert db.session.get(Resident, city["head"]).status is RecordStatus.REMOVED
    assert sorted(m["reasonCode"] for m in status_messages(bo_app) if m["reasonCode"]) == [
        "withdrawal_signature", "withdrawal_too_late"]
    assert _logged(bo_app, "case.moveout_cancelled") == 0
