"""R20 end to end: a disclosure request signed on the portal, decided by two people, answered in My applications.

Real PostgreSQL for both apps, a private Redis, rq worker processes and both relays: the resident
signs the request with a card the city issued, the back office's intake makes the request case for
the signer, a clerk looks at the record, confirms the request, another person grants it, and the
answer (the record and who accessed it, by role and office) reaches the resident's page.
"""

from __future__ import annotations

from types import SimpleNamespace

from bs4 import BeautifulSoup
from sqlalchemy import select

from core import clock
from tests.backoffice.case_fixtures import make_city
from tests.bridge.conftest import INTAKE
from tests.bridge.test_dead_letter_admin import RealClock
from tests.conftest import Backoffice, csrf_from
from tests.portal.test_applications import Resident


def test_a_disclosure_request_goes_from_the_portal_to_two_people_and_its_answer_back_to_my_applications(
        bridged, tmp_path):
    office, portal = bridged.bo_app, bridged.portal_app
    city = make_city(office, tmp_path)
    resident = Resident(portal, SimpleNamespace(issue=lambda **_: city["card"]))

    # On the portal: choose, check, sign with the card.
    assert resident.post("/apply/request", {"kind": "disclosure_request"}).status_code == 302
    sent = resident.sign("/apply/request/sign/challenge", "/apply/request/submit")
    assert sent.status_code == 200, sent.json
    receipt = sent.json["redirect"].rsplit("/", 1)[-1]

    # Through the bridge to the back office's intake (an rq worker process).
    assert bridged.relay(portal) == 1
    bridged.run_burst("backoffice", INTAKE)
    from backoffice.extensions import db
    from backoffice.models import ResidentRequest

    with office.app_context():
        request = db.session.execute(select(ResidentRequest)).scalar_one()
        request_id, request_of, due_on = request.id, request.resident_id, request.due_on
        assert request.receipt_number == receipt and request.kind == "disclosure"
    assert request_of == city["head"]
    assert (due_on - clock.today_jst()).days == 30

    # A clerk views the record and confirms the request; another person grants it.
    staff = Backoffice(office, RealClock())
    clerk = staff.client_for("clerk_e2e", "clerk", terminal="t-clerk-e2e")
    assert clerk.get(f"/ledger/residents/{city['head']}").status_code == 200
    listing = clerk.get("/resident-requests/").get_data(as_text=True)
    assert receipt in listing  # the clerk sees it came from the portal, under the resident's receipt number
    token = csrf_from(clerk, "/resident-requests/")
    assert clerk.post(f"/resident-requests/{request_id}/confirm", data={"csrf_token": token}).status_code == 302
    approver = staff.client_for("approver_e2e", "approver", terminal="t-approver-e2e")
    token = csrf_from(approver, "/resident-requests/")
    assert approver.post(f"/resident-requests/{request_id}/decide", data={
        "csrf_token": token, "decision": "grant", "reason": "全部開示"}).status_code == 302

    # The status messages back to the portal (an rq worker process there).
    bridged.relay(office)
    bridged.run_burst("portal", "status", cli=True)
    page = BeautifulSoup(resident.client.get(f"/mypage/applications/{receipt}").text, "html.parser")
    assert page.select_one("#status .tag").text == "完了"
    assert "宮沢　賢" in page.select_one("#answer-record").text
    rows = [[td.text for td in tr.select("td")] for tr in page.select("#answer-accesses tr.access")]
    assert rows and rows[0][1] == "住民記録担当職員" and "住民票の照会" in rows[0][3] and "住民基本台帳法" in rows[0][4]
    answer = page.select_one("#answer").text
    for secret in ("clerk_e2e", "approver_e2e", "職員 clerk", "宮沢　トシ"):
        assert secret not in answer
