"""R20 in real Chromium: a disclosure request chosen, checked and signed with the card, then its answer read.

axe-core runs on every page of the journey (the request form, its check page, signing, the receipt,
My applications and the answer), in Japanese and in English.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_resident_journeys import T, Visit, _sign_and_send, _sign_in
from tests.portal.test_resident_requests import ANSWER, _status

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_a_resident_signs_a_disclosure_request_in_the_browser_and_reads_the_answer(live_portal, cards, browser,
                                                                                   artifacts, lang):
    v = Visit(browser, live_portal.config["SITE_ORIGIN"], artifacts, lang=lang)
    t = T[lang]
    _sign_in(v, cards.issue(name="宮沢　賢"), t)
    v.go("/apply/request", "request")
    v.page.locator("#kind-0").check()
    v.click(t["continue"], "request-check")
    [receipt] = _sign_and_send(v, t)

    _status(live_portal, receipt, "completed", "全部開示", ANSWER)
    v.go(f"/mypage/applications/{receipt}", "answer")
    assert "ミヤザワ　ケン" in v.page.locator("#answer-record").inner_text()
    role = v.page.locator("#answer-accesses tr.access td").nth(1).inner_text()
    assert role == ("住民記録担当職員、個人番号取扱職員" if lang == "ja"
                    else "Resident registration clerk, Staff handling My Numbers")
    assert v.violations() == {}, json.dumps(v.violations(), ensure_ascii=False, indent=1)
    v.context.close()
