"""Card sign-in in real headless Chromium: card file, PIN, WebCrypto, the lock after three wrong PINs."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.portal_fixtures import PASSWORD, PIN

pytestmark = pytest.mark.browser


def _pick(page, origin, card):
    page.goto(origin + "/auth/sign-in")
    page.get_by_label("カード").set_input_files(str(card))


def test_a_resident_signs_in_with_card_file_and_pin_and_links_the_card(live_portal, cards, page, artifacts):
    origin = live_portal.config["SITE_ORIGIN"]
    card = cards.issue(name="宮沢　賢治")
    _pick(page, origin, card)
    page.get_by_label("暗証番号（数字4桁）").fill(PIN)
    page.get_by_role("button", name="サインイン").click()
    page.wait_for_url(origin + "/auth/link")
    # The card file is kept for this tab, so only the signature password is asked.
    page.get_by_label("署名用パスワード（英数字6〜16文字）").fill(PASSWORD.lower())
    page.get_by_role("button", name="署名して続ける").click()
    page.wait_for_url(origin + "/mypage/")
    assert "宮沢　賢治" in page.locator("#identity").inner_text()
    page.screenshot(path=str(artifacts / "portal-mypage.png"), full_page=True)


def test_wrong_pins_show_the_tries_left_and_the_third_locks_the_card_even_after_a_reload(live_portal, cards, page):
    origin = live_portal.config["SITE_ORIGIN"]
    card = cards.issue()
    status = page.locator("#card-status")
    _pick(page, origin, card)
    for left in (2, 1):
        page.get_by_label("暗証番号（数字4桁）").fill("9999")
        page.get_by_role("button", name="サインイン").click()
        expect(page.locator("#card-status")).to_contain_text("回")
        assert f"あと{left}回" in status.inner_text()
        page.evaluate("document.getElementById('card-status').textContent = ''")
    page.reload()  # the counter lives in the browser's storage, not in the page
    page.get_by_label("カード").set_input_files(str(card))
    page.get_by_label("暗証番号（数字4桁）").fill("0000")
    page.get_by_role("button", name="サインイン").click()
    expect(page.locator("#card-status")).to_contain_text("ロック")
    page.reload()
    page.get_by_label("カード").set_input_files(str(card))
    page.get_by_label("暗証番号（数字4桁）").fill(PIN)  # even the right PIN: the card is locked
    page.get_by_role("button", name="サインイン").click()
    expect(page.locator("#card-status")).to_contain_text("市役所")
    assert page.url == origin + "/auth/sign-in"


def test_a_correct_pin_resets_the_count(live_portal, cards, page):
    origin = live_portal.config["SITE_ORIGIN"]
    card = cards.issue()
    _pick(page, origin, card)
    for _ in range(2):
        page.get_by_label("暗証番号（数字4桁）").fill("9999")
        page.get_by_role("button", name="サインイン").click()
        expect(page.locator("#card-status")).to_contain_text("回")
        page.evaluate("document.getElementById('card-status').textContent = ''")
    page.get_by_label("暗証番号（数字4桁）").fill(PIN)
    page.get_by_role("button", name="サインイン").click()
    page.wait_for_url(origin + "/auth/link")
    page.goto(origin + "/auth/sign-in?lang=en")  # signed in: sent on to the link page, now in English
    assert page.locator("h1").inner_text() == "Confirm who you are"


def test_the_sign_in_page_works_by_keyboard_alone(live_portal, cards, page):
    origin = live_portal.config["SITE_ORIGIN"]
    card = cards.issue()
    page.goto(origin + "/auth/sign-in?lang=en")
    page.get_by_label("Card").set_input_files(str(card))
    page.get_by_label("Card").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "pin"
    page.keyboard.type(PIN)
    page.keyboard.press("Enter")
    page.wait_for_url(origin + "/auth/link")
