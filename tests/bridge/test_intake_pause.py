"""Pausing one kind's intake: the portal keeps accepting, the back office holds them, resuming drains them in order.

The count oracle: every application the portal accepted becomes exactly one case, none twice, and
the cases are made in the order the applications were sent.
"""

from __future__ import annotations

import secrets

from bs4 import BeautifulSoup
from sqlalchemy import text

from tests.bridge.conftest import BO_PARTY, INTAKE
from tests.bridge.pipeline import _scalar_rows, all_delivered, consistency, oracle, submit_many
from tests.bridge.test_dead_letter_admin import RealClock
from tests.conftest import Backoffice
from tests.portal.test_applications import Resident

APPLICATIONS = 12


def _held(bridged) -> int:
    return int(_scalar_rows(bridged.bo_app, "SELECT count(*) FROM held_message")[0][0])


def _post(client, path, data):
    page = BeautifulSoup(client.get("/admin/bridge").text, "html.parser")
    return client.post(path, data={"csrf_token": page.select_one("input[name=csrf_token]")["value"], **data})


def _notices(bridged):
    return [tuple(r) for r in _scalar_rows(bridged.portal_app,
                                           "SELECT municipality_code, kind, paused FROM intake_notice")]


def test_a_paused_kind_accumulates_and_drains_in_order_on_resume_one_case_per_application(bridged, card_pool, cards):
    office = bridged.bo_app
    admin = Backoffice(office, RealClock()).client_for("admin1", "admin")

    # A pause without a reason is refused, naming the field, and changes nothing.
    refused = _post(admin, "/admin/bridge/intake/pause", {"kind": "certificate", "reason": " "})
    assert refused.status_code == 302
    page = BeautifulSoup(admin.get("/admin/bridge").text, "html.parser")
    assert "理由" in page.select_one(".notice-error").text
    assert page.select("tr.paused") == []
    assert _post(admin, "/admin/bridge/intake/pause",
                 {"kind": "certificate", "reason": "窓口システム更新のため"}).status_code == 302
    page = BeautifulSoup(admin.get("/admin/bridge").text, "html.parser")
    assert [r["data-kind"] for r in page.select("tr.paused")] == ["certificate"]

    worker = bridged.start_worker("backoffice", INTAKE, cli=True)
    # The portal keeps accepting: every resident gets a receipt.
    receipts = submit_many(bridged, card_pool, APPLICATIONS, per_resident=4)
    assert len(receipts) == APPLICATIONS
    assert bridged.relay(bridged.portal_app) == APPLICATIONS
    bridged.wait_for(lambda: _held(bridged) == APPLICATIONS, timeout=90)

    # Held, not applied, not failed, not dead-lettered; acknowledged, so the portal does not republish.
    assert oracle(bridged) == (APPLICATIONS, 0, 0)
    assert consistency(bridged)["dead_letters"] == 0
    failed = bridged.redis.client().zcard(f"rq:failed:{INTAKE}")
    assert failed == 0
    assert worker.poll() is None, bridged.worker_log(worker)
    bridged.relay(office)  # the acks and the word to the portal
    bridged.run_burst("portal", "ack:portal", cli=True)
    bridged.run_burst("portal", "status", cli=True)
    states = {r[0] for r in _scalar_rows(bridged.portal_app,
                                         "SELECT state FROM outbox WHERE message_type = 'application.submitted'")}
    assert states == {"acknowledged"}
    assert _notices(bridged) == [("032051", "certificate", True)]

    # A resident applying now is accepted and told that processing is delayed.
    web = Resident(bridged.portal_app, cards)
    assert web.post("/apply/certificate", {"kind": "juminhyo", "persons": "self", "copies": "1",
                                           "purpose": "勤務先への提出"}).status_code == 302
    assert web.sign("/apply/certificate/sign/challenge", "/apply/certificate/submit").status_code == 200
    listing = BeautifulSoup(web.client.get("/mypage/applications").text, "html.parser")
    assert listing.select_one("tr.application .tag.delayed").text == "処理が遅れています"
    assert "一時的に停止" in listing.select_one("p.delayed").text
    receipts.append(listing.select("tr.application td")[1].text)
    detail = BeautifulSoup(web.client.get(f"/mypage/applications/{receipts[-1]}").text, "html.parser")
    assert detail.select_one("#status .tag.delayed").text == "処理が遅れています"
    assert bridged.relay(bridged.portal_app) == 2  # the application, and the ack of the back office's word
    total = APPLICATIONS + 1
    bridged.wait_for(lambda: _held(bridged) == total, timeout=60)

    # On the page and in the metrics.
    page = BeautifulSoup(admin.get("/admin/bridge").text, "html.parser")
    assert page.select_one("tr.paused[data-kind=certificate] td.held").text == str(total)
    office.config["METRICS_TOKEN"] = token = secrets.token_urlsafe(16)
    scraped = office.test_client().get("/metrics", headers={"Authorization": f"Bearer {token}"}).text
    assert f'bridge_intake_paused{{kind="certificate",party="{BO_PARTY}"}} 1.0' in scraped
    assert f'bridge_intake_held{{kind="certificate",party="{BO_PARTY}"}} {float(total)}' in scraped

    # Resume: drained in the order sent, one case per application, none twice.
    assert _post(admin, "/admin/bridge/intake/certificate/resume", {}).status_code == 302
    bridged.wait_for(lambda: all_delivered(bridged, total), timeout=120)
    assert oracle(bridged) == (total, total, total)
    in_order = [r[0] for r in _scalar_rows(office, "SELECT receipt_number FROM application_case ORDER BY id")]
    assert in_order == receipts
    assert _held(bridged) == 0
    assert {k: v for k, v in consistency(bridged).items() if v} == {}
    bridged.relay(office)
    bridged.run_burst("portal", "status", cli=True)
    assert _notices(bridged) == [("032051", "certificate", False)]

    with office.app_context():
        session = office.extensions["bridge"].session
        logged = session.execute(text(
            "SELECT action, target_id, actor, detail FROM audit_log WHERE action LIKE 'intake.pause' "
            "OR action LIKE 'intake.resume' ORDER BY seq")).all()
        session.rollback()
    assert [(a, t, who) for a, t, who, _ in logged] == [("intake.pause", "certificate", "admin1"),
                                                        ("intake.resume", "certificate", "admin1")]
    assert "窓口システム更新のため" in str(logged[0][3]) and f'"released": {total}' in str(logged[1][3])
