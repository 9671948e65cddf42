"""End to end: a 転居予約 filed on the portal, approved by two people, completed at the counter with the card.

The portal and the back office are the real apps on their own PostgreSQL databases; messages travel
sealed through both outboxes and are opened by the bridge's delivery job; the card is one the back
office issued from the simulated J-LIS. At the end only the address (and its dates) changed, the
prefecture got the update, J-LIS revoked the signature certificate (the portal then refuses it), and
the resident's application shows every step.
"""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select

from backoffice.models import Case, CaseStatus, ProvisionRecord, Resident, ResidentHistory, Staff
from bridge.peers.jlis.cardclient import build_auth_token, build_signed_application, sign_challenge
from core import clock
from portal.services.applications import next_business_day
from tests.backoffice.test_counter import (
    PASSWORD,
    PIN,
    drop_counter_keys,
    make_counter_city,
    make_counter_keys,
    new_address,
    prepare_counter_app,
)
from tests.conftest import csrf_from
from tests.pki_fixtures import deliver_card_revocations


def _deliver_pending(sender_app, sender_models, receiver_app) -> int:
    """Hand every pending outbox row of ``sender_app`` for ``receiver_app`` to the delivery job, as a worker would."""
    from bridge.jobs.deliver import deliver

    party = receiver_app.extensions["bridge"].party
    with sender_app.app_context():
        session = sender_app.extensions["bridge"].session
        rows = [(r.id, r.envelope) for r in session.execute(
            select(sender_models).where(sender_models.recipient == party).order_by(sender_models.created_at)
        ).scalars()]
        session.rollback()
    for message_id, envelope in rows:
        with receiver_app.app_context():
            deliver(message_id, envelope)
    return len(rows)


def _bearer(portal_app, card):
    origin = portal_app.config["SITE_ORIGIN"]
    client = portal_app.test_client()
    nonce = client.post("/api/v1/auth/challenge").json["nonce"]
    token = build_auth_token(card, PIN, origin=origin, nonce=nonce)
    access = client.post("/api/v1/auth/token", json={"authToken": token, "nonce": nonce}).json["access_token"]
    headers = {"Authorization": f"Bearer {access}"}
    challenge = client.post("/api/v1/identity/challenge", headers=headers).json
    jws = build_signed_application(card, PASSWORD, aud=challenge["aud"], nonce=challenge["nonce"],
                                   application=challenge["application"])
    assert client.post("/api/v1/identity", headers=headers,
                       json={"signedApplication": jws, "nonce": challenge["nonce"]}).status_code == 200
    return client, headers


def _submit(client, headers, card, application):
    challenge = client.post("/api/v1/applications/challenge", headers=headers, json={"application": application}).json
    jws = sign_challenge(card, PASSWORD, challenge, application)
    return client.post("/api/v1/applications", headers=headers,
                       json={"signed_application": jws, "nonce": challenge["nonce"]})


def test_an_in_city_move_reserved_on_the_portal_is_completed_at_the_counter_changing_only_the_address(
        bo_app, portal_app, backoffice, tmp_path):
    from backoffice.extensions import db
    from backoffice.models import Outbox as BackofficeOutbox
    from backoffice.services import cases, records
    from portal.models import Outbox as PortalOutbox

    keys = make_counter_keys(tmp_path / "keys")
    app = prepare_counter_app(bo_app, keys)
    portal_app.config["BRIDGE_KEY_DIRECTORY"] = str(keys)
    try:
        card_dir = tmp_path / "cards"
        card_dir.mkdir()
        city = make_counter_city(app, card_dir)
        card = city["cards"]["head"]
        with app.app_context():
            before = {i: records.snapshot(db.session.get(Resident, i)) for i in (city["head"], city["wife"])}

        # The resident reserves the move on the portal, signing with the card.
        today = clock.today_jst()
        target = new_address(app)
        application = {
            "type": "move", "fromMunicipalityCode": app.config["MUNICIPALITY_CODE"], "moveDate": today.isoformat(),
            "destination": target,
            "movers": [{"name": "宮沢　賢", "kana": "ミヤザワ　ケン", "birthDate": "1990-08-27", "relationship": "本人",
                        "keepsCard": True},
                       {"name": "宮沢　トシ", "kana": "ミヤザワ　トシ", "birthDate": "1992-11-27", "relationship": "妻",
                        "keepsCard": True}],
            "newHouseholder": "宮沢　賢", "contactPhone": "0198-24-2111",
            "visitDate": next_business_day(today).isoformat()}
        client, headers = _bearer(portal_app, card)
        sent = _submit(client, headers, card, application)
        assert sent.status_code == 202, sent.json
        [part] = sent.json["parts"]
        assert part["kind"] == "in_city_reservation"
        receipt = part["receipt_number"]

        # The back office receives it, verifies the signature again and makes a case.
        assert _deliver_pending(portal_app, PortalOutbox, app) == 1
        with app.app_context():
            case = db.session.execute(select(Case).where(Case.receipt_number == receipt)).scalar_one()
            assert case.status is CaseStatus.RECEIVED and json.loads(case.mover_resident_ids) == [
                city["head"], city["wife"]]
            case_id = case.id

        # Clerk A confirms, approver B approves with a fresh code (R7).
        backoffice.add_staff("clerk_a", "clerk")
        backoffice.add_staff("approver_b", "approver")
        with app.test_request_context("/"):
            staff = {s.login_id: s for s in db.session.execute(select(Staff)).scalars()}
            cases.confirm(db.session, case_id, by=staff["clerk_a"])
            db.session.commit()
            cases.approve(db.session, case_id, by=staff["approver_b"], totp_code=backoffice.totp("approver_b"))
            db.session.commit()

        # At the counter: the resident's card on the counter terminal, then the clerk completes the 転居.
        counter = backoffice.client_for("clerk_c", "clerk", terminal="counter-e2e")
        page = f"/counter/{case_id}"
        assert receipt in counter.get("/counter/").text
        token = csrf_from(counter, page)
        nonce = counter.post(f"{page}/challenge", headers={"X-CSRFToken": token}).json["nonce"]
        with app.test_request_context("/"):
            from backoffice.services import counter as counter_service

            origin = counter_service.trust().origin
        checked = counter.post(f"{page}/card", headers={"X-CSRFToken": token},
                               json={"authToken": build_auth_token(card, PIN, origin=origin, nonce=nonce)})
        assert checked.status_code == 200, checked.json
        done = counter.post(f"{page}/complete", data={"csrf_token": csrf_from(counter, page),
                                                      "moved_on": clock.today_jst().isoformat()}, follow_redirects=True)
        assert "転居が完了しました" in done.text

        with app.app_context():
            for resident_id in (city["head"], city["wife"]):
                resident = db.session.get(Resident, resident_id)
                after = records.snapshot(resident)
                changed = {k for k in after if after[k] != before[resident_id][k]}
                assert changed == {"machiaza_code", "banchi", "katagaki", "previous_address", "address_set_on",
                                   "address_set_reason"}
                assert (resident.machiaza_code, resident.banchi) == (target["machiazaCode"], target["banchi"])
                reasons = db.session.execute(select(ResidentHistory.reason).where(
                    ResidentHistory.resident_id == resident_id)).scalars().all()
                assert [r.value for r in reasons] == ["転居"]
            provided = db.session.execute(select(ProvisionRecord.recipient_id, ProvisionRecord.resident_id)).all()
            assert sorted(provided) == sorted([("prefecture", city["head"]), ("prefecture", city["wife"]),
                                               ("jlis", city["head"]), ("jlis", city["wife"])])

        # The status messages reach the portal: the resident sees every step.
        assert _deliver_pending(app, BackofficeOutbox, portal_app) >= 4
        detail = client.get(f"/api/v1/applications/{receipt}", headers=headers).json
        steps = [h["status"] for h in detail["history"]]
        assert steps[0] == "submitted" and steps[-1] == "completed" and "approved" in steps, steps

        # J-LIS revoked the signature certificate with the old address (the card.revocation sent with the
        # 転居, applied as J-LIS receives it): the portal refuses a new signature.
        assert len(deliver_card_revocations(app)) == 2
        later = (today + dt.timedelta(days=1)).isoformat()
        refused = _submit(client, headers, card, {**application, "moveDate": later})
        assert refused.status_code == 400
        assert refused.json == {"error": "signature_refused", "hint": "certificate_revoked"}
    finally:
        drop_counter_keys(app)
