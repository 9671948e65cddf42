"""A resident's whole visit in real Chromium, with axe-core run on every page it shows.

Sign in with the card, search for the moving procedures, move from Hanamaki to Kitakami
(転出届 + 転入予約), move within Hanamaki (転居予約), request a certificate, see the receipts and
the list; then the move again in English. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

from core import clock
from portal.services.applications import next_business_day
from tests.portal_fixtures import PASSWORD, PIN

pytestmark = pytest.mark.browser
AXE = Path(__file__).resolve().parent.parent.parent / "node_modules" / "axe-core" / "axe.min.js"


class Visit:
    """A browser tab that checks accessibility on every page it reaches and keeps screenshots."""

    def __init__(self, browser, origin, artifacts, lang="ja"):
        assert AXE.exists(), "axe-core is missing: run `npm ci` (make test does)"
        # The pages forbid inline and injected scripts; only the checker is let past the CSP.
        self.context = browser.new_context(bypass_csp=True, locale="ja-JP" if lang == "ja" else "en-GB",
                                           viewport={"width": 1100, "height": 900})
        self.page = self.context.new_page()
        self.origin, self.artifacts, self.lang = origin, artifacts, lang
        self.checked: dict[str, list] = {}
        self.shots = 0

    def check(self, name):
        """Run axe-core on the current page; keep serious and critical violations; save a screenshot."""
        self.page.evaluate(AXE.read_text())
        result = self.page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]
               if v["impact"] in ("serious", "critical")]
        self.checked[f"{name} {self.page.url}"] = bad
        self.shots += 1
        self.page.screenshot(path=str(self.artifacts / f"{self.lang}-{self.shots:02d}-{name}.png"), full_page=True)

    def go(self, path, name):
        self.page.goto(self.origin + path + ("?lang=en" if self.lang == "en" and "?" not in path else ""))
        self.check(name)

    def click(self, label, name, role="button"):
        self.page.get_by_role(role, name=label).first.click()
        self.page.wait_for_load_state()
        self.check(name)

    def violations(self):
        return {page: bad for page, bad in self.checked.items() if bad}


T = {
    "ja": {"card": "カード", "pin": "暗証番号（数字4桁）", "signin": "サインイン",
           "password": "署名用パスワード（英数字6〜16文字）", "sign_continue": "署名して続ける", "continue": "続ける",
           "start": "今すぐ始める", "elsewhere": "別の市区町村へ", "in_city": "今の市区町村の中で",
           "sign_send": "署名して送信"},
    "en": {"card": "Card", "pin": "PIN (4 digits)", "signin": "Sign in",
           "password": "Signature password (6 to 16 letters and digits)", "sign_continue": "Sign and continue",
           "continue": "Continue", "start": "Start now", "elsewhere": "To another municipality in Japan",
           "in_city": "Within my current municipality", "sign_send": "Sign and send"},
}


def _sign_in(v, card, t):
    v.go("/auth/sign-in", "sign-in")
    v.page.get_by_label(t["card"]).set_input_files(str(card))
    v.page.get_by_label(t["pin"]).fill(PIN)
    v.page.get_by_role("button", name=t["signin"]).click()
    v.page.wait_for_url("**/auth/link")
    v.check("link")
    v.page.get_by_label(t["password"]).fill(PASSWORD)
    v.page.get_by_role("button", name=t["sign_continue"]).click()
    v.page.wait_for_url("**/mypage/")
    v.check("mypage")


def _sign_and_send(v, t):
    v.click(t["sign_send"], "sign")
    v.page.get_by_label(t["password"]).fill(PASSWORD)
    v.page.get_by_role("button", name=t["sign_send"]).click()
    v.page.wait_for_url("**/apply/done/**")
    v.check("done")
    return [e.inner_text() for e in v.page.locator(".receipt-number").all()]


def _move(v, t, *, in_city):
    today = clock.today_jst()
    move = today + dt.timedelta(days=6)
    visit = next_business_day(move - dt.timedelta(days=1))
    v.go("/apply/move", "move-start")
    v.click(t["start"], "where")
    v.page.get_by_label(t["in_city"] if in_city else t["elsewhere"]).check()
    v.click(t["continue"], "address")
    if in_city:
        v.page.locator("#machiaza_code").select_option(index=5)
        v.page.locator("#banchi").fill("3番地2")
    else:
        v.page.locator("#postal_code").fill("024-0061")
        v.page.locator("#prefecture").select_option("岩手県")
        v.page.locator("#municipality").fill("北上市")
        v.page.locator("#address").fill("大通り一丁目3番1号")
    v.click(t["continue"], "dates")
    v.page.locator("#move_date").fill(move.isoformat())
    v.page.locator("#visit_date").fill(visit.isoformat())
    v.click(t["continue"], "people")
    v.page.locator("#movers-0-kana").fill("ミヤザワ　ケン")
    v.click(t["continue"], "householder")
    v.page.locator("input[name=new_householder]").first.check()
    v.click(t["continue"], "contact")
    v.page.locator("#contact_phone").fill("0198-24-2111")
    v.click(t["continue"], "check")
    expect(v.page.locator(".error-summary")).to_have_count(0)
    return _sign_and_send(v, t)


def test_a_resident_searches_moves_out_moves_within_the_city_and_requests_a_certificate(live_portal, cards, browser,
                                                                                         artifacts):
    v = Visit(browser, live_portal.config["SITE_ORIGIN"], artifacts)
    t = T["ja"]
    v.go("/", "home")
    card = cards.issue(name="宮沢　賢")
    _sign_in(v, card, t)
    v.go("/services", "search")
    v.page.locator("input[name=q]").fill("引越し")
    v.page.locator("form[method=get] button[type=submit], form[method=get] input[type=submit]").first.click()
    v.page.wait_for_load_state()
    v.check("search-results")
    assert "転出届" in v.page.locator("main").inner_text()

    receipts = _move(v, t, in_city=False)
    assert len(receipts) == 2  # 転出届 to Hanamaki + 転入予約 to Kitakami
    receipts += _move(v, t, in_city=True)
    assert len(receipts) == 3

    v.go("/apply/certificate", "certificate")
    v.page.locator("#kind-0").check()
    v.page.locator("#persons-0").check()
    v.page.locator("#purpose").fill("勤務先への提出")
    v.click(t["continue"], "certificate-check")
    receipts += _sign_and_send(v, t)

    v.go("/mypage/applications", "my-applications")
    listed = v.page.locator("tr.application td:nth-child(2)").all_inner_texts()
    assert sorted(listed) == sorted(receipts)
    v.go(f"/mypage/applications/{receipts[-1]}", "application")
    v.go(f"/mypage/applications/{receipts[-1]}/withdraw", "withdraw")
    v.go("/services/move-out", "service-detail")
    v.go("/auth/sign-in", "signed-in-sign-in")
    assert v.violations() == {}, json.dumps(v.violations(), ensure_ascii=False, indent=1)
    v.context.close()


def test_the_same_move_in_english(live_portal, cards, browser, artifacts):
    v = Visit(browser, live_portal.config["SITE_ORIGIN"], artifacts, lang="en")
    t = T["en"]
    v.go("/", "home")
    card = cards.issue(name="宮沢　賢")
    _sign_in(v, card, t)
    assert v.page.locator("html").get_attribute("lang") == "en"
    receipts = _move(v, t, in_city=False)
    assert len(receipts) == 2
    assert "Receipt number" in v.page.locator("main").inner_text()
    assert v.violations() == {}, json.dumps(v.violations(), ensure_ascii=False, indent=1)
    v.context.close()
