"""転出取消 at the counter through the case page: a clerk records the request, another person with the approver role
cancels with a fresh one-time code (R7, R9)."""

from __future__ import annotations

from typing import Any

import pytest
from bs4 import BeautifulSoup

from backoffice.models import CaseStatus, RecordStatus
from tests.backoffice.case_fixtures import deliver, load_case, make_city
from tests.conftest import csrf_from


@pytest.fixture
def city(bo_app: Any, tmp_path: Any) -> dict[str, Any]:
    return make_city(bo_app, tmp_path)


def _page(client: Any, path: str) -> BeautifulSoup:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return BeautifulSoup(response.text, "html.parser")


def _post(client: Any, case_id: int, step: str, **data: str) -> Any:
    return client.post(f"/cases/{case_id}/{step}", data={"csrf_token": csrf_from(client, f"/cases/{case_id}"), **data})


def _status(bo_app: Any, resident_id: int) -> RecordStatus:
    from backoffice.extensions import db
    from backoffice.models import Resident

    with bo_app.app_context():
        return db.session.get(Resident, resident_id).status


def test_a_clerk_records_the_request_and_another_person_cancels_the_move_on_the_case_page_with_a_fresh_code(
        backoffice, city):
    case_id = deliver(backoffice.app, city)
    clerk = backoffice.client_for("clerk9", "clerk")
    approver = backoffice.client_for("approver9", "approver")
    assert _post(clerk, case_id, "confirm").status_code == 302
    assert _post(approver, case_id, "approve", **{"approve-totp_code": backoffice.totp("approver9")}).status_code == 302
    assert _status(backoffice.app, city["head"]) is RecordStatus.REMOVED  # the 除票 of the 転出届
    assert _page(approver, f"/cases/{case_id}").select_one("#cancel-move-form") is None  # nobody asked yet
    alone = _post(approver, case_id, "cancel-move", **{"cancel-totp_code": backoffice.totp("approver9")})
    assert alone.status_code == 400 and _status(backoffice.app, city["head"]) is RecordStatus.REMOVED
    assert _page(clerk, f"/cases/{case_id}").select_one("#cancel-move-form") is None  # an approver's step
    assert _page(clerk, f"/cases/{case_id}").select_one("#cancel-request-form") is not None
    assert _post(clerk, case_id, "cancel-request").status_code == 302
    assert _page(clerk, f"/cases/{case_id}").select_one("#cancel-request-form") is None  # recorded once
    assert _page(approver, f"/cases/{case_id}").select_one("#cancel-move-form") is not None
    backoffice.clock.advance(seconds=30)  # a fresh one-time code
    from tests.test_page_language import problems

    for lang in ("ja", "en"):  # the form speaks the page's language
        assert problems(approver.get(f"/cases/{case_id}?lang={lang}").text, lang, "case") == []
    assert clerk.post(f"/cases/{case_id}/cancel-move", data={
        "csrf_token": csrf_from(clerk, f"/cases/{case_id}")}).status_code == 403
    refused = _post(approver, case_id, "cancel-move", **{"cancel-totp_code": "000000"})
    assert refused.status_code == 400
    error = BeautifulSoup(refused.text, "html.parser").select_one("#cancel-move-form .error-message")
    assert error is not None
    assert _status(backoffice.app, city["head"]) is RecordStatus.REMOVED
    done = _post(approver, case_id, "cancel-move", **{"cancel-totp_code": backoffice.totp("approver9")})
    assert done.status_code == 302
    assert _status(backoffice.app, city["head"]) is RecordStatus.CURRENT
    assert load_case(backoffice.app, case_id).status is CaseStatus.WITHDRAWN
    page = _page(approver, f"/cases/{case_id}")
    assert page.select_one("#cancel-move-form") is None
    assert page.select("#history tr[data-action]")[-1]["data-action"] == "moveout_cancelled"
    for lang in ("ja", "en"):  # the cancelled step is shown by its label, never as its code
        assert problems(approver.get(f"/cases/{case_id}?lang={lang}").text, lang, "case") == []
