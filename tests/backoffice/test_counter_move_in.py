"""The 転入 at the counter (R9): Hanamaki's resident moves to Kitakami and shows the card at the Kitakami counter.

Kitakami keeps no record of a card Hanamaki issued, so the counter recognises the card through
J-LIS's 証明書紐付け: its authentication certificate belongs to the card whose signature
certificate signed the 転入予約.
"""

from __future__ import annotations

import json
import uuid

from sqlalchemy import func, select

from backoffice.models import (
    CardRecord,
    Case,
    CaseEvent,
    CaseStatus,
    CounterVisit,
    RecordStatus,
    Resident,
    VisitResult,
)
from bridge.peers.jlis.cardclient import build_auth_token
from core import clock as clock_module
from tests.backoffice import test_moves
from tests.backoffice.test_counter import PIN, drop_counter_keys, prepare_counter_app
from tests.conftest import Backoffice, csrf_from

# The two cities, the keys and the family of the moves tests.
move_keys = test_moves.move_keys
kitakami_db_url = test_moves.kitakami_db_url
hanamaki = test_moves.hanamaki
kitakami = test_moves.kitakami
family = test_moves.family


def _approved_move_in(hanamaki, kitakami, family, clock, move_keys):
    """転出届 approved in Hanamaki, its 転出証明書情報 matched in Kitakami, the 転入予約 approved there."""
    origin = test_moves.City(hanamaki, clock, move_keys)
    destination = test_moves.City(kitakami, clock, move_keys)
    move_id = str(uuid.uuid4())
    out_case = origin.deliver(family["card"], "move_out", test_moves._move(test_moves.MOVERS), move_id=move_id)
    in_case = destination.deliver(family["card"], "move_in_reservation", test_moves._move(test_moves.MOVERS),
                                  move_id=move_id)
    origin.confirm_and_approve(out_case)
    for message in origin.sent("moveout.certificate"):
        destination.receive(message)
    destination.confirm_and_approve(in_case)
    return in_case


def _check(kitakami, client, case_id, card):
    from backoffice.services import counter

    page = f"/counter/{case_id}"
    token = csrf_from(client, page)
    nonce = client.post(f"{page}/challenge", headers={"X-CSRFToken": token}).json["nonce"]
    with kitakami.test_request_context("/"):
        origin = counter.trust().origin
    return client.post(f"{page}/card", headers={"X-CSRFToken": token},
                       json={"authToken": build_auth_token(card, PIN, origin=origin, nonce=nonce)})


def _residents(kitakami):
    from backoffice.extensions import db

    with kitakami.app_context():
        return db.session.execute(select(func.count()).select_from(Resident)).scalar_one()


def test_a_move_in_is_completed_at_the_counter_only_after_the_signers_card_is_checked(
        hanamaki, kitakami, family, clock, move_keys, tmp_path):
    from backoffice.extensions import db
    from backoffice.services import cards

    app = prepare_counter_app(kitakami, move_keys)
    try:
        case_id = _approved_move_in(hanamaki, kitakami, family, clock, move_keys)
        # A card of someone else (a Hanamaki neighbour) cannot stand in for the mover's.
        with hanamaki.test_request_context("/"):
            from tests.factories import make_resident

            neighbour = make_resident(db.session, hanamaki.config, name="高橋　ミツ", name_kana="タカハシ　ミツ")
            _record, data = cards.issue_card(db.session, resident_code=neighbour.juminhyo_code, pin=PIN,
                                             password="ABC123", issued_by="clerk0", iterations=1000)
            db.session.commit()
        other_card = tmp_path / "other.json"
        other_card.write_bytes(data)

        clerk = Backoffice(app, clock).client_for("clerk_c", "clerk", terminal="kitakami-counter")
        page = clerk.get(f"/counter/{case_id}")
        assert "転入を完了する" in page.text

        # No card check yet: the 転入 is refused and nobody is recorded.
        form = {"csrf_token": csrf_from(clerk, f"/counter/{case_id}"), "moved_on": clock_module.today_jst().isoformat()}
        refused = clerk.post(f"/counter/{case_id}/complete", data=form, follow_redirects=True)
        assert "直近30分以内に住民の方のカードを確認していません" in refused.text
        assert _residents(app) == 0

        wrong = _check(app, clerk, case_id, other_card)
        assert wrong.status_code == 403 and "申請者でも異動者でもありません" in wrong.json["message"]
        right = _check(app, clerk, case_id, family["card"])
        assert right.status_code == 200, right.json

        form = {"csrf_token": csrf_from(clerk, f"/counter/{case_id}"), "moved_on": clock_module.today_jst().isoformat()}
        done = clerk.post(f"/counter/{case_id}/complete", data=form, follow_redirects=True)
        assert "転入が完了しました" in done.text
        with app.app_context():
            case = db.session.get(Case, case_id)
            assert case.status is CaseStatus.COMPLETED
            created = [db.session.get(Resident, i) for i in json.loads(case.mover_resident_ids)]
            assert [r.name for r in created] == ["宮沢　賢", "宮沢　トシ"]
            assert all(r.status is RecordStatus.CURRENT for r in created)
            # 継続利用: the card that signed in with its PIN here is the head's, kept in use, now in this ledger.
            kept = db.session.execute(select(CardRecord)).scalar_one()
            assert kept.resident_id == created[0].id and kept.transferred_from == test_moves.HANAMAKI
            assert kept.continued_on == clock_module.today_jst() and kept.renewal_required_on is None
            visits = db.session.execute(select(CounterVisit.result, CounterVisit.reason)
                                        .order_by(CounterVisit.id)).all()
            assert visits == [(VisitResult.REFUSED, "not_applicant"), (VisitResult.VERIFIED, None)]
            verified = db.session.execute(select(CounterVisit.id).where(
                CounterVisit.result == VisitResult.VERIFIED)).scalar_one()
            [completed] = db.session.execute(select(CaseEvent.detail).where(
                CaseEvent.case_id == case_id, CaseEvent.action == "complete")).scalars()
            assert json.loads(completed)["visit"] == verified
    finally:
        drop_counter_keys(app)


def test_a_refused_move_in_at_the_counter_reads_in_the_pages_language_only(
        hanamaki, kitakami, family, clock, move_keys):
    import datetime as dt

    from tests.test_page_language import problems

    app = prepare_counter_app(kitakami, move_keys)
    try:
        case_id = _approved_move_in(hanamaki, kitakami, family, clock, move_keys)
        clerk = Backoffice(app, clock).client_for("clerk_c", "clerk", terminal="kitakami-counter")
        assert _check(app, clerk, case_id, family["card"]).status_code == 200
        ahead = (clock_module.today_jst() + dt.timedelta(days=1)).isoformat()
        pages = {}
        for lang in ("ja", "en"):
            clerk.get(f"/counter/{case_id}?lang={lang}")  # the language switch, remembered for the next requests
            form = {"csrf_token": csrf_from(clerk, f"/counter/{case_id}"), "moved_on": ahead}
            pages[lang] = clerk.post(f"/counter/{case_id}/complete", data=form, follow_redirects=True).text
        # The clerk on the Japanese page reads the refusal in Japanese only, on the English page in English only.
        assert "住み始めた日が今日より後です" in pages["ja"] and "after today" not in pages["ja"]
        assert "after today" in pages["en"] and "住み始めた日が今日より後です" not in pages["en"]
        assert problems(pages["ja"], "ja", "counter") == [] and problems(pages["en"], "en", "counter") == []
        assert _residents(app) == 0
    finally:
        drop_counter_keys(app)
