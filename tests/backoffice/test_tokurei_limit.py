# ruff: noqa: F811  (the two cities' fixtures are test_moves.py's, imported by name and requested by the tests)
"""特例転入 past its limit (第24条の2; 施行令第24条の2・第24条の3): the counter refuses the 特例転入 naming the rule,
the card's special use lapses, the clerk records the paper 転出証明書 and the 転入 is recorded as usual."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from backoffice.models import AuditLog, CardRecord, Case, CaseEvent, CaseStatus, Resident
from core import clock as clock_module
from tests.backoffice.test_moves import (  # noqa: F401  (the fixtures)
    MOVERS,
    _case,
    _ready_move_in,
    _serial,
    family,
    hanamaki,
    kitakami,
    kitakami_db_url,
    move_keys,
)
from tests.pki_fixtures import deliver_card_revocations


def _complete(kitakami, destination, in_case: int, moved_on: dt.date, paper=None) -> list[int]:
    from backoffice.extensions import db
    from backoffice.services import completion

    with kitakami.test_request_context("/"):
        case = db.session.get(Case, in_case)
        created = completion.complete_move_in(db.session, case, by=destination.staff(db.session, "clerk_a"),
                                              moved_on=moved_on, paper_certificate=paper)
        db.session.commit()
        return [r.id for r in created]


def test_past_the_limit_the_card_use_lapses_and_the_paper_certificate_is_recorded(
        hanamaki, kitakami, family, clock, move_keys):
    from backoffice.extensions import db
    from backoffice.services.cases import CaseError

    today = clock_module.today_jst()
    destination, in_case = _ready_move_in(hanamaki, kitakami, family, clock, move_keys, MOVERS,
                                          moveDate=(today - dt.timedelta(days=3)).isoformat())
    moved = today - dt.timedelta(days=16)
    with pytest.raises(CaseError) as refused:
        _complete(kitakami, destination, in_case, moved)
    assert refused.value.field == "paper_certificate"
    with kitakami.test_request_context("/"):  # the message reads in the page's language (Japanese by default)
        assert "特例転入" in refused.value.message
        assert (today - dt.timedelta(days=2)).isoformat() in refused.value.message  # the limit: 14 days after the move
    with pytest.raises(CaseError) as incomplete:
        _complete(kitakami, destination, in_case, moved, paper=("花巻-1", " "))
    assert incomplete.value.code == "paper_incomplete"
    with kitakami.app_context():
        assert db.session.execute(select(func.count()).select_from(Resident)).scalar_one() == 0
    created = _complete(kitakami, destination, in_case, moved, paper=("花巻-2026-0042", "岩手県花巻市"))
    assert len(created) == 2 and _case(kitakami, in_case).status is CaseStatus.COMPLETED
    with kitakami.app_context():
        actions = db.session.execute(select(CaseEvent.action).where(CaseEvent.case_id == in_case)
                                     .order_by(CaseEvent.id)).scalars().all()
        assert "card_use_lapsed" in actions and "paper_moveout_certificate" in actions
        lapsed = db.session.execute(select(AuditLog).where(AuditLog.action == "card.lapsed")).scalars().all()
        # The householder's card, named by the 転出証明書情報, lapsed; the wife had none.
        assert [json.loads(a.detail)["serial"] for a in lapsed] == [str(_serial(family["card"]))]
        # A lapsed card is 廃止: signed to keep (keepsCard) or not, it is not carried over to this ledger.
        assert db.session.execute(select(func.count()).select_from(CardRecord)).scalar_one() == 0
    # The 転入通知 still goes back to Hanamaki, which confirms the 除票 as usual.
    assert len(destination.sent("movein.notice")) == 2


def test_past_the_limit_jlis_revokes_both_certificates_of_the_lapsed_card(
        hanamaki, kitakami, family, clock, move_keys, jlis_config):
    from bridge.peers.jlis.service import open_simulator

    today = clock_module.today_jst()
    destination, in_case = _ready_move_in(hanamaki, kitakami, family, clock, move_keys, MOVERS,
                                          moveDate=(today - dt.timedelta(days=3)).isoformat())
    _complete(kitakami, destination, in_case, today - dt.timedelta(days=16), paper=("花巻-2026-0042", "岩手県花巻市"))
    auth, sign = _serial(family["card"], "auth"), _serial(family["card"])
    # Sent to J-LIS over the bridge with the 転入 (the card is 廃止), applied when J-LIS receives them.
    assert sorted(deliver_card_revocations(kitakami)) == sorted([str(auth), str(sign)])
    simulator = open_simulator(jlis_config)
    assert simulator.certificate_record(auth).revocation_reason.value == "affiliationChanged"
    assert simulator.certificate_record(sign).revocation_reason.value == "affiliationChanged"
    assert [(r, t) for r, t, _ in destination.provisions() if r == "jlis"] == [("jlis", "card.revocation")] * 2


def test_within_the_limit_no_card_lapses(hanamaki, kitakami, family, clock, move_keys, jlis_config):
    from backoffice.extensions import db
    from bridge.peers.jlis.service import open_simulator

    today = clock_module.today_jst()
    destination, in_case = _ready_move_in(hanamaki, kitakami, family, clock, move_keys, MOVERS[:1],
                                          moveDate=(today - dt.timedelta(days=3)).isoformat())
    _complete(kitakami, destination, in_case, today - dt.timedelta(days=3))
    with kitakami.app_context():
        assert db.session.execute(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "card.lapsed")).scalar_one() == 0
    # Only the signature certificate goes (the address changed); the card is not 廃止, its authentication stays.
    assert deliver_card_revocations(kitakami) == [str(_serial(family["card"]))]
    assert open_simulator(jlis_config).certificate_record(_serial(family["card"], "auth")).revocation_reason is None


def test_a_lapsed_certificate_naming_a_card_this_city_keeps_does_not_revoke_it(
        hanamaki, kitakami, family, clock, move_keys, jlis_config):
    """The attack: past the limit, the origin names as the mover's card a card Kitakami keeps for its own resident."""
    from backoffice.extensions import db
    from backoffice.services import cards
    from bridge.peers.jlis.service import open_simulator
    from tests.factories import make_resident

    with kitakami.test_request_context("/"):
        neighbour = make_resident(db.session, kitakami.config, name="高橋　ミツ", name_kana="タカハシ　ミツ")
        local, _file = cards.issue_card(db.session, resident_code=neighbour.juminhyo_code, pin="1234",
                                        password="ABC123", issued_by="clerk0", iterations=1000)
        db.session.commit()
        local_auth = local.auth_cert_serial
    with hanamaki.app_context():
        head_card = db.session.execute(select(CardRecord).where(CardRecord.resident_id == family["head"])).scalar_one()
        head_card.auth_cert_serial = local_auth  # what the 転出証明書情報 will claim as the head's card
        db.session.commit()
    today = clock_module.today_jst()
    destination, in_case = _ready_move_in(hanamaki, kitakami, family, clock, move_keys, MOVERS,
                                          moveDate=(today - dt.timedelta(days=3)).isoformat())
    _complete(kitakami, destination, in_case, today - dt.timedelta(days=16), paper=("花巻-2026-0042", "岩手県花巻市"))
    # Only the signature certificate the origin reported goes to J-LIS; the neighbour's card stays valid.
    assert deliver_card_revocations(kitakami) == [str(_serial(family["card"]))]
    assert open_simulator(jlis_config).certificate_record(int(local_auth)).revocation_reason is None
    with kitakami.app_context():
        [denied] = db.session.execute(select(AuditLog).where(AuditLog.action == "card.revoke",
                                                             AuditLog.outcome == "denied")).scalars()
        assert json.loads(denied.detail)["refused"] == "card_of_this_city"
