# ruff: noqa: F811  (the two cities' fixtures are test_moves.py's, imported by name and requested by the tests)
"""転出取消 and 予約取消 (F5, F9, R9, R10): a move cancelled before the 転入, online on the resident's signature or
at the counter; refused after the 転入 with the reason.

Two back offices on two real PostgreSQL databases (Hanamaki 032051, Kitakami 032069), the messages
between them opened with the recipient's keys as the bridge's delivery does (see test_moves.py).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pyotp
import pytest
from sqlalchemy import select

from backoffice.models import (
    AcceptedSignature,
    AuditLog,
    Case,
    CaseEvent,
    CaseStatus,
    IdoReason,
    MoveoutCertificate,
    Outbox,
    RecordStatus,
    ResidentHistory,
)
from bridge.handlers import PermanentFailure
from bridge.peers import prefecture
from bridge.peers.jlis.cardclient import build_signed_application
from core import clock as clock_module
from core.envelope import Opened
from tests.backoffice.test_moves import (  # noqa: F401  (the fixtures)
    HANAMAKI,
    KITAKAMI,
    MOVERS,
    PASSWORD,
    City,
    _case,
    _complete,
    _move,
    _resident,
    family,
    hanamaki,
    kitakami,
    kitakami_db_url,
    move_keys,
)


def _withdraw(city: City, card: Any, case_id: int) -> None:
    """The resident's signed withdrawal of the case, arriving from the portal as intake receives it."""
    from backoffice.extensions import db
    from backoffice.services.intake import receive_withdrawal

    case = _case(city.app, case_id)
    jws = build_signed_application(card, PASSWORD, aud=city.app.config["SITE_ORIGIN"], nonce="w" * 44,
                                   application={"type": "withdrawal", "receiptNumber": case.receipt_number})
    opened = Opened(message_id=str(uuid.uuid4()), message_type="application.withdrawn", sender="portal",
                    recipient=city.party, created_at=clock_module.utcnow(),
                    payload={"receiptNumber": case.receipt_number, "kind": case.kind, "moveId": case.move_id,
                             "submittedAt": clock_module.utcnow().isoformat(), "signedWithdrawal": jws})
    with city.app.test_request_context("/"):
        receive_withdrawal(db.session, opened)
        db.session.commit()


def _portal_answers(city: City) -> list[dict[str, Any]]:
    """The status messages for the portal (opened with the portal's keys; the test clock stands still, so unordered)."""
    from backoffice.extensions import db
    from core.envelope import KeyRegistry, open_envelope

    with city.app.app_context():
        rows = db.session.execute(select(Outbox).where(Outbox.message_type == "application.status")
                                  .order_by(Outbox.id)).scalars().all()
        keys = KeyRegistry.from_config({"BRIDGE_KEY_DIRECTORY": str(city.keys)}, party="portal")
        return [open_envelope(r.envelope, me="portal", keys=keys, accepted_types={"application.status"},
                              max_age=dt.timedelta(days=1), now=clock_module.utcnow()).payload for r in rows]


def _approved_move(hanamaki, kitakami, family, clock, move_keys, movers=MOVERS) -> tuple[City, City, int, int]:
    """Filed and approved at both ends: the 除票 at Hanamaki, the certificates matched at Kitakami."""
    origin, destination = City(hanamaki, clock, move_keys), City(kitakami, clock, move_keys)
    move_id = str(uuid.uuid4())
    out_case = origin.deliver(family["card"], "move_out", _move(movers), move_id=move_id)
    in_case = destination.deliver(family["card"], "move_in_reservation", _move(movers), move_id=move_id)
    origin.confirm_and_approve(out_case)
    for message in origin.sent("moveout.certificate"):
        destination.receive(message)
    destination.confirm_and_approve(in_case)
    return origin, destination, out_case, in_case


def _events(app: Any, case_id: int) -> list[str]:
    from backoffice.extensions import db

    with app.app_context():
        return list(db.session.execute(select(CaseEvent.action).where(CaseEvent.case_id == case_id)
                                       .order_by(CaseEvent.id)).scalars())


def test_a_signed_cancellation_before_the_move_in_restores_the_records_and_tells_the_destination_and_prefecture(
        hanamaki, kitakami, family, clock, move_keys):
    origin, destination, out_case, in_case = _approved_move(hanamaki, kitakami, family, clock, move_keys)
    _withdraw(origin, family["card"], out_case)

    for resident_id in (family["head"], family["wife"]):
        restored = _resident(hanamaki, resident_id)
        assert restored.status is RecordStatus.CURRENT, "the 除票 was not restored"
        assert (restored.removed_on, restored.removal_reason, restored.planned_moveout_on) == (None, None, None)
        assert restored.last_reason is IdoReason.MOVE_OUT_CANCELLED
    from backoffice.extensions import db

    with hanamaki.app_context():
        history = db.session.execute(select(ResidentHistory).where(ResidentHistory.resident_id == family["head"])
                                     .order_by(ResidentHistory.id)).scalars().all()
        # The history keeps the 除票 as it was and the cancellation after it: nothing of the 転出 is lost.
        assert [h.reason for h in history][-2:] == [IdoReason.MOVE_OUT, IdoReason.MOVE_OUT_CANCELLED]
        before = json.loads(history[-1].before)
        assert before["status"] == "removed" and before["planned_moveout_address"] == "岩手県北上市大通り1-3-1"
    assert _case(hanamaki, out_case).status is CaseStatus.WITHDRAWN
    assert _events(hanamaki, out_case)[-1] == "moveout_cancelled"
    assert "withdrawn" in {a["status"] for a in _portal_answers(origin)}
    updates = [m for m in origin.sent("identity.update") if m.payload["items"]["change_reason"] == "転出取消"]
    assert [m.recipient for m in updates] == [prefecture.PARTY] * 2
    # The departments told of the 転出 are told of its cancellation, each only its listed items.
    sent = origin.provisions()
    told = sorted(r for r, t, _ in sent if t == "dept.notice.move_out")
    assert told and sorted(r for r, t, _ in sent if t == "dept.notice.move_out_cancelled") == told
    assert all("my_number" not in items for r, t, items in sent if r == "dept:pension")
    cancellations = origin.sent("moveout.cancellation")
    assert [m.recipient for m in cancellations] == [f"muni:{KITAKAMI}"] * 2
    assert set(cancellations[0].payload["items"]) == {"juminhyo_code", "name", "birth_date", "move_id"}

    for message in cancellations:
        destination.receive(message)
    with kitakami.app_context():
        assert db.session.execute(select(MoveoutCertificate)).scalars().all() == [], "the 転出証明書情報 stayed"
    assert _case(kitakami, in_case).status is CaseStatus.WITHDRAWN
    assert _events(kitakami, in_case)[-1] == "reservation_cancelled"
    assert any(a["status"] == "withdrawn" and "転出が取り消された" in a["reason"] for a in _portal_answers(destination))


def test_after_the_move_in_the_cancellation_is_refused_with_the_reason_and_nothing_changes(
        hanamaki, kitakami, family, clock, move_keys):
    # The householder files for his wife alone: his own card stays valid after her 転入.
    origin, destination, out_case, in_case = _approved_move(hanamaki, kitakami, family, clock, move_keys,
                                                            movers=MOVERS[1:])
    _complete(kitakami, destination, in_case)
    for message in destination.sent("movein.notice"):
        origin.receive(message)
    assert _case(hanamaki, out_case).status is CaseStatus.COMPLETED  # 転出確定

    _withdraw(origin, family["card"], out_case)
    wife = _resident(hanamaki, family["wife"])
    assert wife.status is RecordStatus.REMOVED and wife.confirmed_moveout_address is not None
    assert _case(hanamaki, out_case).status is CaseStatus.COMPLETED
    assert any(a["status"] == "completed" and a["reasonCode"] == "cancellation_moved_in"
               for a in _portal_answers(origin))
    assert origin.sent("moveout.cancellation") == []

    # A cancellation that arrives at the destination after its 転入 is refused there too (a dead letter).
    late = Opened(message_id=str(uuid.uuid4()), message_type="moveout.cancellation", sender=f"muni:{HANAMAKI}",
                  recipient=destination.party, created_at=clock_module.utcnow(),
                  payload={"items": {"juminhyo_code": wife.juminhyo_code, "name": "宮沢　トシ",
                                     "birth_date": "1992-11-27", "move_id": _case(kitakami, in_case).move_id}})
    with pytest.raises(PermanentFailure):
        destination.receive(late)
    assert _case(kitakami, in_case).status is CaseStatus.COMPLETED


def test_an_unsigned_cancellation_or_one_signed_by_another_card_restores_nothing(
        hanamaki, kitakami, family, clock, move_keys, tmp_path):
    from backoffice.extensions import db
    from backoffice.services import cards
    from backoffice.services.intake import receive_withdrawal

    with hanamaki.test_request_context("/"):
        wife_code = _resident(hanamaki, family["wife"]).juminhyo_code
        _record, wife_card = cards.issue_card(db.session, resident_code=wife_code, pin="1234", password=PASSWORD,
                                              issued_by="clerk1", iterations=1000)
        db.session.commit()
    path = tmp_path / "wife.json"
    path.write_bytes(wife_card)
    origin, _destination, out_case, _in_case = _approved_move(hanamaki, kitakami, family, clock, move_keys)
    case = _case(hanamaki, out_case)
    # A compromised portal: no signature at all.
    forged = Opened(message_id=str(uuid.uuid4()), message_type="application.withdrawn", sender="portal",
                    recipient=origin.party, created_at=clock_module.utcnow(),
                    payload={"receiptNumber": case.receipt_number, "kind": "move_out", "moveId": case.move_id,
                             "submittedAt": clock_module.utcnow().isoformat(), "signedWithdrawal": "a.b.c"})
    with hanamaki.test_request_context("/"):
        receive_withdrawal(db.session, forged)
        db.session.commit()
    assert _resident(hanamaki, family["head"]).status is RecordStatus.REMOVED, "an unsigned cancellation acted"
    # Another card holder of the household signs it: not the certificate that signed the 転出届.
    _withdraw(origin, path, out_case)
    assert _resident(hanamaki, family["head"]).status is RecordStatus.REMOVED, "another card's signature acted"
    assert _case(hanamaki, out_case).status is CaseStatus.APPROVED
    assert origin.sent("moveout.cancellation") == []


def test_a_signer_no_longer_of_the_household_cannot_cancel_the_move_they_filed(
        hanamaki, kitakami, family, clock, move_keys):
    """第26条 on the ledger as it stands: the head filed for his wife alone, then left the household."""
    from backoffice.extensions import db
    from backoffice.models import Resident
    from backoffice.services import records

    origin, _destination, out_case, _in_case = _approved_move(hanamaki, kitakami, family, clock, move_keys,
                                                              movers=MOVERS[1:])
    with hanamaki.app_context():
        head = db.session.get(Resident, family["head"])
        records.remove_record(db.session, head, reason=IdoReason.RESIDENCE_FORFEITED,
                              changed_on=clock_module.today_jst(), notified_on=None, by="clerk1")
        db.session.commit()
    _withdraw(origin, family["card"], out_case)
    assert _resident(hanamaki, family["wife"]).status is RecordStatus.REMOVED, "a signer outside the household acted"
    assert _case(hanamaki, out_case).status is CaseStatus.APPROVED
    assert any(a["status"] == "approved" and a["reasonCode"] == "cancellation_signer" for a in _portal_answers(origin))
    with hanamaki.app_context():
        refused = db.session.execute(select(AuditLog.detail).where(
            AuditLog.action == "intake.cancellation_refused")).scalar_one()
        assert json.loads(refused)["reason"] == "signer"
        # Judged once: the refused signature cannot come back later, when the ledger might let it act.
        assert db.session.execute(select(AcceptedSignature).where(AcceptedSignature.part == "withdrawal")
                                  ).first() is not None


def test_one_approver_alone_cannot_cancel_an_approved_move_at_the_counter(hanamaki, kitakami, family, clock,
                                                                         move_keys):
    # The attack: one approver, with nobody at the counter, restores the records of a family that moved out.
    # A cancellation at the counter is two people's work, as any change of the ledger: a clerk records the
    # resident's request (having checked who asks), another person with the approver role cancels.
    from backoffice.extensions import db
    from backoffice.services import cancellation, staff
    from backoffice.services.cases import CaseError

    origin, _destination, out_case, _in_case = _approved_move(hanamaki, kitakami, family, clock, move_keys)
    with hanamaki.test_request_context("/"):
        with pytest.raises(CaseError) as refused:
            cancellation.cancel_at_counter(db.session, out_case, by=origin.staff(db.session, "approver_b"),
                                           totp_code=pyotp.TOTP(origin.secrets["approver_b"]).at(clock.now))
        db.session.rollback()
    assert refused.value.code == "no_counter_request"
    with hanamaki.test_request_context("/"):  # nor by recording the request herself, holding both roles
        both, secret = staff.add_staff(db.session, login_id="both_c", name="職員 both_c",
                                       password="correct horse battery", roles=["clerk", "approver"])
        cancellation.request_counter_cancellation(db.session, out_case, by=both)
        db.session.commit()
        both_id = both.id
    clock.advance(seconds=30)
    with hanamaki.test_request_context("/"):
        from backoffice.models import Staff

        with pytest.raises(CaseError) as refused:
            cancellation.cancel_at_counter(db.session, out_case, by=db.session.get(Staff, both_id),
                                           totp_code=pyotp.TOTP(secret).at(clock.now))
        db.session.rollback()
    assert refused.value.code == "same_person"
    assert _resident(hanamaki, family["head"]).status is RecordStatus.REMOVED


def test_a_cancellation_at_the_counter_needs_the_approver_and_a_fresh_code(hanamaki, kitakami, family, clock,
                                                                           move_keys):
    from backoffice.extensions import db
    from backoffice.services import cancellation
    from backoffice.services.cases import CaseError

    origin, _destination, out_case, _in_case = _approved_move(hanamaki, kitakami, family, clock, move_keys)
    with hanamaki.test_request_context("/"):
        cancellation.request_counter_cancellation(db.session, out_case, by=origin.staff(db.session, "clerk_a"))
        db.session.commit()
    with hanamaki.test_request_context("/"):
        with pytest.raises(CaseError) as refused:
            cancellation.cancel_at_counter(db.session, out_case, by=origin.staff(db.session, "clerk_a"),
                                           totp_code="000000")
        db.session.rollback()
    assert refused.value.code == "need_approver"
    clock.advance(seconds=30)
    with hanamaki.test_request_context("/"):
        with pytest.raises(CaseError) as refused:
            cancellation.cancel_at_counter(db.session, out_case, by=origin.staff(db.session, "approver_b"),
                                           totp_code="000000")
        db.session.rollback()
    assert refused.value.field == "totp_code"
    assert _resident(hanamaki, family["head"]).status is RecordStatus.REMOVED
    with hanamaki.test_request_context("/"):
        cancellation.cancel_at_counter(db.session, out_case, by=origin.staff(db.session, "approver_b"),
                                       totp_code=pyotp.TOTP(origin.secrets["approver_b"]).at(clock.now))
        db.session.commit()
    assert _resident(hanamaki, family["head"]).status is RecordStatus.CURRENT
    assert _resident(hanamaki, family["wife"]).status is RecordStatus.CURRENT
    with hanamaki.app_context():
        event = db.session.execute(select(CaseEvent).where(CaseEvent.case_id == out_case)
                                   .order_by(CaseEvent.id.desc())).scalars().first()
        assert (event.action, json.loads(event.detail)["how"], event.actor) == ("moveout_cancelled", "counter",
                                                                                 "approver_b")


def test_an_approved_move_in_reservation_is_cancelled_on_the_signature_and_frees_the_certificates(
        hanamaki, kitakami, family, clock, move_keys):
    """予約取消: the 転入予約 closes; the 転出 at the origin stands, its certificates wait for a new reservation."""
    from backoffice.extensions import db

    _origin, destination, out_case, in_case = _approved_move(hanamaki, kitakami, family, clock, move_keys)
    _withdraw(destination, family["card"], in_case)
    assert _case(kitakami, in_case).status is CaseStatus.WITHDRAWN
    assert _events(kitakami, in_case)[-1] == "reservation_cancelled"
    with kitakami.app_context():
        assert [c.case_id for c in db.session.execute(select(MoveoutCertificate)).scalars()] == [None, None]
    assert _resident(hanamaki, family["head"]).status is RecordStatus.REMOVED  # the 転出 itself stands
    assert _case(hanamaki, out_case).status is CaseStatus.APPROVED


def test_a_cancellation_from_a_municipality_that_did_not_send_the_certificate_withdraws_nothing(
        hanamaki, kitakami, family, clock, move_keys):
    from backoffice.extensions import db

    _origin, destination, _out_case, in_case = _approved_move(hanamaki, kitakami, family, clock, move_keys)
    other = Opened(message_id=str(uuid.uuid4()), message_type="moveout.cancellation", sender="muni:032018",
                   recipient=destination.party, created_at=clock_module.utcnow(),
                   payload={"items": {"juminhyo_code": family["head_code"], "name": "宮沢　賢",
                                      "birth_date": "1990-08-27", "move_id": _case(kitakami, in_case).move_id}})
    destination.receive(other)  # even knowing the move id, another city cancels nothing
    with kitakami.app_context():
        assert len(db.session.execute(select(MoveoutCertificate)).scalars().all()) == 2
    assert _case(kitakami, in_case).status is CaseStatus.APPROVED


def test_the_case_page_offers_the_cancellation_only_before_the_move_in(hanamaki, kitakami, family, clock, move_keys):
    from backoffice.extensions import db
    from backoffice.services import cancellation

    origin, destination, out_case, in_case = _approved_move(hanamaki, kitakami, family, clock, move_keys)
    with hanamaki.app_context():
        assert cancellation.cancellable(db.session, db.session.get(Case, out_case))
    _complete(kitakami, destination, in_case)
    for message in destination.sent("movein.notice"):
        origin.receive(message)
    with hanamaki.app_context():
        assert not cancellation.cancellable(db.session, db.session.get(Case, out_case))
        assert cancellation.refusal(db.session, db.session.get(Case, out_case)) == "moved_in"


def test_a_householder_who_left_is_not_restored_beside_the_householder_who_followed(
        hanamaki, kitakami, family, clock, move_keys):
    """第25条 made the wife householder when he left alone: two householders would follow, so it is refused."""
    from backoffice.extensions import db
    from backoffice.services import cancellation
    from backoffice.services.cases import CaseError

    origin, _destination, out_case, _in_case = _approved_move(hanamaki, kitakami, family, clock, move_keys,
                                                              movers=MOVERS[:1])
    assert _resident(hanamaki, family["wife"]).is_householder  # the only one who stays heads the household
    clock.advance(seconds=30)
    with hanamaki.test_request_context("/"):
        with pytest.raises(CaseError) as refused:
            cancellation.cancel_at_counter(db.session, out_case, by=origin.staff(db.session, "approver_b"),
                                           totp_code=pyotp.TOTP(origin.secrets["approver_b"]).at(clock.now))
        db.session.rollback()
    assert refused.value.code == "householder_changed" and "世帯主変更届" in str(refused.value.message)
    _withdraw(origin, family["card"], out_case)
    assert _resident(hanamaki, family["head"]).status is RecordStatus.REMOVED, "two householders in one household"
    assert any(a["reasonCode"] == "cancellation_householder" and a["status"] == "approved"
               for a in _portal_answers(origin))


def test_an_approved_in_city_reservation_is_cancelled_on_the_signature_and_the_ledger_is_untouched(
        hanamaki, family, clock, move_keys):
    """予約取消 of a 転居予約: the case closes before the counter; nothing of the ledger changed or changes."""
    city = City(hanamaki, clock, move_keys)
    destination = {"kind": "in_city", "machiazaCode": f"{HANAMAKI}0001", "banchi": "1番地"}
    case_id = city.deliver(family["card"], "in_city_reservation", _move(MOVERS, destination=destination),
                           move_id=str(uuid.uuid4()))
    city.confirm_and_approve(case_id)
    assert _case(hanamaki, case_id).status is CaseStatus.APPROVED
    _withdraw(city, family["card"], case_id)
    assert _case(hanamaki, case_id).status is CaseStatus.WITHDRAWN
    assert _events(hanamaki, case_id)[-1] == "reservation_cancelled"
    head = _resident(hanamaki, family["head"])
    assert head.status is RecordStatus.CURRENT and head.last_reason is not IdoReason.MOVE_OUT_CANCELLED
    assert city.sent("moveout.cancellation") == [] and city.sent("identity.update") == []
