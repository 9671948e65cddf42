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
    return _card_at_counter(kitakami, client, f"/counter/{case_id}", "card", card)


def _card_at_counter(app, client, page, submit, card):
    """The card signs the counter's challenge of ``page`` with its PIN; the token is posted to ``page/submit``."""
    from backoffice.services import counter

    token = csrf_from(client, page)
    nonce = client.post(f"{page}/challenge", headers={"X-CSRFToken": token}).json["nonce"]
    with app.test_request_context("/"):
        origin = counter.trust().origin
    return client.post(f"{page}/{submit}", headers={"X-CSRFToken": token},
                       json={"authToken": build_auth_token(card, PIN, origin=origin, nonce=nonce)})


def _neighbours_card(hanamaki, tmp_path):
    """The card file of a Hanamaki neighbour (a valid card, not the mover's)."""
    from backoffice.extensions import db
    from backoffice.services import cards
    from tests.factories import make_resident

    with hanamaki.test_request_context("/"):
        neighbour = make_resident(db.session, hanamaki.config, name="高橋　ミツ", name_kana="タカハシ　ミツ")
        _record, data = cards.issue_card(db.session, resident_code=neighbour.juminhyo_code, pin=PIN,
                                         password="ABC123", issued_by="clerk0", iterations=1000)
        db.session.commit()
    path = tmp_path / "other.json"
    path.write_bytes(data)
    return path


def _residents(kitakami):
    from backoffice.extensions import db

    with kitakami.app_context():
        return db.session.execute(select(func.count()).select_from(Resident)).scalar_one()


def test_a_move_in_is_completed_at_the_counter_only_after_the_signers_card_is_checked(
        hanamaki, kitakami, family, clock, move_keys, tmp_path):
    from backoffice.extensions import db

    app = prepare_counter_app(kitakami, move_keys)
    try:
        case_id = _approved_move_in(hanamaki, kitakami, family, clock, move_keys)
        # A card of someone else (a Hanamaki neighbour) cannot stand in for the mover's.
        other_card = _neighbours_card(hanamaki, tmp_path)

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


# -- 継続利用: a card kept after the 転入, presented at the counter later ------------------------------------


def _kept_card_pending(hanamaki, kitakami, family, clock, move_keys) -> int:
    """The 転入 completed without the head's card at the counter: his card is taken over, to be presented."""
    from backoffice.extensions import db

    destination, in_case = test_moves._ready_move_in(hanamaki, kitakami, family, clock, move_keys, test_moves.MOVERS)
    test_moves._complete(kitakami, destination, in_case)
    with kitakami.app_context():
        card = db.session.execute(select(CardRecord)).scalar_one()
        assert card.continuation_due is not None and card.continued_on is None
        return int(card.id)


def _present(app, client, card_id, card):
    return _card_at_counter(app, client, f"/counter/cards/{card_id}", "present", card)


def _publish_crls_now(jlis_config) -> None:
    """J-LIS publishes its CRLs daily: after the test clock moved on, fresh ones at the clock's time."""
    from bridge.peers.jlis.service import open_simulator, publish

    publish(jlis_config, open_simulator(jlis_config))


def _publish_crls_at_the_real_time(jlis_config) -> None:
    """Put back CRLs of the real time for the tests that follow (the test clock is reset after this test)."""
    import datetime as dt
    from pathlib import Path

    from bridge.peers.jlis.service import publish
    from bridge.peers.jlis.simulator import JlisSimulator

    real_time = JlisSimulator(Path(jlis_config["JLIS_DIRECTORY"]) / "ca", clock=lambda: dt.datetime.now(dt.UTC))
    publish(jlis_config, real_time)


def _card(app, card_id) -> CardRecord:
    from backoffice.extensions import db

    with app.app_context():
        card = db.session.get(CardRecord, card_id)
        db.session.expunge(card)
        return card


def test_a_kept_card_presented_with_its_pin_at_the_counter_within_ninety_days_is_continued(
        hanamaki, kitakami, family, clock, move_keys, tmp_path, jlis_config):
    from backoffice.extensions import db

    app = prepare_counter_app(kitakami, move_keys)
    try:
        card_id = _kept_card_pending(hanamaki, kitakami, family, clock, move_keys)
        other_card = _neighbours_card(hanamaki, tmp_path)
        clock.advance(days=90)  # the 90th day after the move is still open
        _publish_crls_now(jlis_config)

        clerk = Backoffice(app, clock).client_for("clerk_c", "clerk", terminal="kitakami-counter")
        listed = clerk.get("/counter/cards?lang=ja")
        assert "宮沢　賢" in listed.text and "提示期限" in listed.text
        page = clerk.get(f"/counter/cards/{card_id}?lang=ja")
        assert "カードを確認して継続利用とする" in page.text

        # Another valid card (a Hanamaki neighbour's) cannot continue this one.
        wrong = _present(app, clerk, card_id, other_card)
        assert wrong.status_code == 409 and "このカードではありません" in wrong.json["message"]
        assert _card(app, card_id).continued_on is None

        right = _present(app, clerk, card_id, family["card"])
        assert right.status_code == 200, right.json
        assert right.json["redirect"].endswith(f"/counter/cards/{card_id}")
        card = _card(app, card_id)
        assert card.continued_on == clock_module.today_jst() and card.renewal_required_on is None
        assert "継続利用としました" in clerk.get(right.json["redirect"]).text
        assert "宮沢　賢" not in clerk.get("/counter/cards").text  # nothing left to present
        with app.app_context():
            from backoffice.models import AuditLog

            actions = db.session.execute(select(AuditLog.action, AuditLog.outcome).where(
                AuditLog.action.in_(["card.continue", "card.present"])).order_by(AuditLog.seq)).all()
            assert actions == [("card.present", "success"), ("card.continue", "denied"),
                               ("card.present", "success"), ("card.continue", "success")]
    finally:
        drop_counter_keys(app)
        _publish_crls_at_the_real_time(jlis_config)


def test_a_kept_card_presented_after_ninety_days_is_refused_with_the_reason_and_marked_for_renewal(
        hanamaki, kitakami, family, clock, move_keys, jlis_config):
    app = prepare_counter_app(kitakami, move_keys)
    try:
        card_id = _kept_card_pending(hanamaki, kitakami, family, clock, move_keys)
        due = _card(app, card_id).continuation_due
        clock.advance(days=91)
        _publish_crls_now(jlis_config)

        clerk = Backoffice(app, clock).client_for("clerk_c", "clerk", terminal="kitakami-counter")
        late = _present(app, clerk, card_id, family["card"])
        assert late.status_code == 409 and late.json["error"] == "renewal_required"
        assert "90日" in late.json["message"] and f"{due.month}月{due.day}日" in late.json["message"]
        card = _card(app, card_id)
        assert card.continued_on is None and card.renewal_required_on == clock_module.today_jst()
        page = clerk.get(f"/counter/cards/{card_id}?lang=en")
        assert "to be renewed" in page.text and "Check the card and continue it" not in page.text
    finally:
        drop_counter_keys(app)
        _publish_crls_at_the_real_time(jlis_config)


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
