"""Who may file a move, and for whom (住民基本台帳法第26条): at intake, and again at approval.

The attack first: a card holder files a 転出届 naming a resident of another household, whom the
ledger would otherwise remove from the city on the strength of a stranger's signature.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from backoffice.models import CaseStatus, Resident
from backoffice.services import cases as workflow
from backoffice.services.cases import CaseError
from tests.backoffice.case_fixtures import deliver, load_case, make_city, move, staff
from tests.factories import make_household, make_resident

STRANGER = ("岩手　花子", "1985-05-05")
HEAD, WIFE = ("宮沢　賢", "1990-08-27"), ("宮沢　トシ", "1992-11-27")


@pytest.fixture
def city(bo_app: Any, tmp_path: Any) -> dict[str, Any]:
    """The Miyazawa household of two (the head holds the card) and a resident of another household."""
    from backoffice.extensions import db

    ids = make_city(bo_app, tmp_path)
    with bo_app.test_request_context("/"):
        other = make_household(db.session, householder_name=STRANGER[0])
        stranger = make_resident(db.session, bo_app.config, household=other, name=STRANGER[0],
                                 name_kana="イワテ　ハナコ", birth_date=dt.date.fromisoformat(STRANGER[1]))
        db.session.commit()
        ids["stranger"] = stranger.id
    return ids


def _add_child(bo_app: Any, city: dict[str, Any], born: dt.date, name: str = "宮沢　清六") -> int:
    from backoffice.extensions import db

    with bo_app.test_request_context("/"):
        head = db.session.get(Resident, city["head"])
        child = make_resident(db.session, bo_app.config, household=head.household, name=name,
                              name_kana="ミヤザワ　セイロク", birth_date=born, relationship_to_head="子",
                              is_householder=False, banchi=head.banchi)
        db.session.commit()
        return int(child.id)


def test_a_card_holder_naming_a_resident_of_another_household_is_returned_with_the_reason(bo_app, city):
    case = load_case(bo_app, deliver(bo_app, city, "move_out", move([STRANGER])))
    assert case.status is CaseStatus.RETURNED
    assert "署名した方" in case.status_reason and "not a member of the movers' household" in case.status_reason
    # The returned case holds nothing: the stranger's own 転出届 is received.
    own = make_card_for(bo_app, city, "stranger")
    assert load_case(bo_app, deliver(bo_app, own, "move_out", move([STRANGER]))).status is CaseStatus.RECEIVED


def make_card_for(bo_app: Any, city: dict[str, Any], who: str) -> dict[str, Any]:
    """A card for ``who`` of ``city`` (its file beside the first card)."""
    from backoffice.extensions import db
    from backoffice.services import cards

    with bo_app.test_request_context("/"):
        resident = db.session.get(Resident, city[who])
        _record, card_file = cards.issue_card(db.session, resident_code=resident.juminhyo_code, pin="1234",
                                              password="ABC123", issued_by="clerk1", iterations=1000)
        db.session.commit()
    path = city["card"].with_name(f"card-{who}.json")
    path.write_bytes(card_file)
    return {**city, "card": path}


def test_movers_of_two_households_are_returned_with_the_reason(bo_app, city):
    case = load_case(bo_app, deliver(bo_app, city, "move_out", move([HEAD, STRANGER])))
    assert case.status is CaseStatus.RETURNED and "同じ世帯の方ではありません" in case.status_reason
    assert "who_may_file" in [f["code"] for f in json.loads(case.findings)]


def test_more_movers_than_the_household_has_are_returned_with_the_reason(bo_app, city):
    case = load_case(bo_app, deliver(bo_app, city, "move_out", move([HEAD, WIFE, ("宮沢　清六", "2010-04-01")])))
    assert case.status is CaseStatus.RETURNED and "more people than the household has" in case.status_reason


def test_an_in_city_reservation_for_a_resident_of_another_household_is_returned(bo_app, city):
    case = load_case(bo_app, deliver(bo_app, city, "in_city_reservation", move([STRANGER])))
    assert case.status is CaseStatus.RETURNED and "署名した方" in case.status_reason


def test_a_parent_files_for_a_child_moving_alone_and_a_member_for_the_householder(bo_app, city):
    child = _add_child(bo_app, city, dt.date(2007, 4, 1))
    case = load_case(bo_app, deliver(bo_app, city, "move_out", move([("宮沢　清六", "2007-04-01")])))
    assert case.status is CaseStatus.RECEIVED and json.loads(case.mover_resident_ids) == [child]
    assert case.applicant_resident_id == city["head"]
    wife = make_card_for(bo_app, city, "wife")  # a 世帯員 files for the 世帯主
    other = load_case(bo_app, deliver(bo_app, wife, "move_out", move([HEAD])))
    assert other.status is CaseStatus.RECEIVED and json.loads(other.mover_resident_ids) == [city["head"]]


def test_of_two_namesakes_the_one_in_the_signers_household_is_the_mover(bo_app, city):
    from backoffice.extensions import db

    with bo_app.test_request_context("/"):
        elsewhere = make_household(db.session, householder_name=WIFE[0])
        make_resident(db.session, bo_app.config, household=elsewhere, name=WIFE[0], name_kana="ミヤザワ　トシ",
                      birth_date=dt.date.fromisoformat(WIFE[1]))
        db.session.commit()
    case = load_case(bo_app, deliver(bo_app, city, "move_out", move([WIFE])))
    assert case.status is CaseStatus.RECEIVED and json.loads(case.mover_resident_ids) == [city["wife"]]


def test_approval_checks_the_household_again_and_refuses_when_the_mover_left_it(bo_app, backoffice, city):
    from backoffice.extensions import db

    backoffice.add_staff("clerk_a", "clerk")
    backoffice.add_staff("approver_c", "approver")
    case_id = deliver(bo_app, city, "move_out", move([WIFE]))
    assert load_case(bo_app, case_id).status is CaseStatus.RECEIVED
    with bo_app.test_request_context("/"):
        workflow.confirm(db.session, case_id, by=staff(db.session, "clerk_a"))
        # Between intake and approval the wife became the head of a household of her own.
        wife = db.session.get(Resident, city["wife"])
        wife.household_id = make_household(db.session, householder_name=WIFE[0]).id
        db.session.commit()
    backoffice.clock.advance(seconds=30)
    with bo_app.test_request_context("/"):
        with pytest.raises(CaseError) as refused:
            workflow.approve(db.session, case_id, by=staff(db.session, "approver_c"),
                             totp_code=backoffice.totp("approver_c"))
        db.session.rollback()
    assert refused.value.field == "movers" and refused.value.code == "signer_not_in_household"
    case = load_case(bo_app, case_id)
    assert case.status is CaseStatus.CONFIRMED
    with bo_app.app_context():
        assert db.session.get(Resident, city["wife"]).planned_moveout_on is None
