"""A reason the back office gives travels as a code and reads in the page's language on "My applications".

A real 転居予約 signed with a card goes through the bridge to the back office's intake, which returns
it (nobody it names is recorded in this city's ledger); the status comes back through the bridge
and the resident reads why, in Japanese on the Japanese page and in English on the English page.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup

from tests.bridge.conftest import INTAKE
from tests.bridge.pipeline import _scalar_rows
from tests.portal.test_applications import Resident, move_within_the_city

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def _in_city_reservation(resident: Resident) -> str:
    move_within_the_city(resident)
    response = resident.sign("/apply/move/sign/challenge", "/apply/move/submit")
    assert response.status_code == 200, response.json
    return str(_scalar_rows(resident.app, "SELECT receipt_number FROM application")[0][0])


def _reason(resident: Resident, receipt: str, lang: str) -> tuple[str, str]:
    page = BeautifulSoup(resident.client.get(f"/mypage/applications/{receipt}?lang={lang}").text, "html.parser")
    return page.select_one("#status").text, page.select_one("#status-reason").text


def test_a_returned_application_reads_its_reason_in_the_pages_language_only(bridged, cards):
    resident = Resident(bridged.portal_app, cards)
    receipt = _in_city_reservation(resident)
    assert bridged.relay(bridged.portal_app) == 1
    bridged.run_burst("backoffice", INTAKE, cli=True)
    assert bridged.relay(bridged.bo_app) >= 1  # the ack and the status
    bridged.run_burst("portal", "status", cli=True)

    status, reason = _reason(resident, receipt, "ja")
    assert "差戻し" in status, status
    assert "この市の住民として記録されていない方がいます" in reason
    assert not re.search(r"[A-Za-z]", reason), reason  # no English beside the Japanese
    status, reason = _reason(resident, receipt, "en")
    assert "Returned" in status
    assert reason == "Someone in this in-city move reservation is not recorded as a resident here. Please check " \
                     "and send it again."
    assert not JAPANESE.search(reason), reason
