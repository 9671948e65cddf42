"""Screen hygiene (R15, R19) in real Chromium: the page goes blank after five idle minutes; prints say 取扱注意."""

from __future__ import annotations

import datetime as dt
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server

from tests.conftest import sign_in_browser
from tests.factories import make_household, make_resident


@pytest.fixture
def live_backoffice(bo_app: Any) -> Iterator[str]:
    """The back office served over HTTP on a free loopback port; yields its origin."""
    server = make_server("127.0.0.1", 0, bo_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def record(bo_app: Any) -> int:
    """One resident whose record page shows personal data."""
    from backoffice.extensions import db

    with bo_app.test_request_context("/"):
        household = make_household(db.session, householder_name="宮沢　賢")
        resident = make_resident(db.session, bo_app.config, household=household, name="宮沢　賢",
                                 name_kana="ミヤザワ　ケン", birth_date=dt.date(1990, 8, 27))
        db.session.commit()
        return resident.id


def _sign_in(page: Any, backoffice: Any, origin: str, login_id: str) -> None:
    sign_in_browser(page, backoffice, origin, login_id, "clerk")


def test_the_record_page_goes_blank_after_five_idle_minutes_and_a_fresh_code_brings_it_back(
        live_backoffice, backoffice, record, page, artifacts):
    _sign_in(page, backoffice, live_backoffice, "lock1")
    page.clock.install()
    page.goto(f"{live_backoffice}/ledger/residents/{record}")
    name = page.get_by_text("宮沢　賢").first
    assert name.is_visible()
    page.clock.fast_forward("04:50")
    assert name.is_visible() and page.locator("#screen-lock").is_hidden()
    page.clock.fast_forward("00:15")
    page.locator("#screen-lock").wait_for(state="visible")
    assert not name.is_visible()
    assert page.locator("#main").is_hidden()
    assert "宮沢" not in page.locator("body").inner_text()  # nothing of the person is on the screen
    page.screenshot(path=str(artifacts / "screen-lock.png"))
    page.fill("#screen-lock-totp", backoffice.totp("lock1"))
    page.locator("#screen-lock button[type=submit]").click()
    page.wait_for_url(f"{live_backoffice}/ledger/residents/{record}")
    assert page.get_by_text("宮沢　賢").first.is_visible() and page.locator("#screen-lock").is_hidden()


def test_a_reload_or_a_new_tab_of_a_locked_page_shows_the_lock_not_the_record(
        live_backoffice, backoffice, record, page):
    # The attack: whoever walks up to the locked terminal presses F5, or opens the address in a new tab.
    _sign_in(page, backoffice, live_backoffice, "lock4")
    page.clock.install()
    address = f"{live_backoffice}/ledger/residents/{record}"
    page.goto(address)
    page.clock.fast_forward("05:05")
    page.locator("#screen-lock").wait_for(state="visible")
    backoffice.clock.advance(minutes=6)  # the server's time: no request came for six minutes either
    page.reload()
    assert "宮沢" not in page.locator("body").inner_text() and page.locator("#screen-lock-totp").is_visible()
    tab = page.context.new_page()
    tab.goto(address)
    assert "宮沢" not in tab.locator("body").inner_text()
    tab.close()
    page.fill("#screen-lock-totp", backoffice.totp("lock4"))
    page.locator("form[action$='/screen/unlock'] button[type=submit]").first.click()
    page.wait_for_url(address)
    assert page.get_by_text("宮沢　賢").first.is_visible()


def test_input_keeps_the_screen_open(live_backoffice, backoffice, record, page):
    _sign_in(page, backoffice, live_backoffice, "lock2")
    page.clock.install()
    page.goto(f"{live_backoffice}/ledger/residents/{record}")
    for _ in range(3):
        page.clock.fast_forward("04:00")
        page.mouse.move(100, 200)
        page.keyboard.press("Shift")
    page.clock.fast_forward("00:30")
    assert page.locator("#screen-lock").is_hidden() and page.get_by_text("宮沢　賢").first.is_visible()


def test_a_wrong_code_on_the_lock_signs_the_person_out(live_backoffice, backoffice, record, page):
    _sign_in(page, backoffice, live_backoffice, "lock3")
    page.clock.install()
    page.goto(f"{live_backoffice}/ledger/residents/{record}")
    page.clock.fast_forward("05:05")
    page.fill("#screen-lock-totp", "000000")
    page.locator("#screen-lock button[type=submit]").click()
    page.wait_for_url(f"{live_backoffice}/sign-in")
    page.goto(f"{live_backoffice}/ledger/residents/{record}")
    assert page.url.endswith("/sign-in")  # the server session is gone, not only the screen


def test_a_printed_page_is_marked_for_careful_handling(live_backoffice, backoffice, record, page, tmp_path):
    _sign_in(page, backoffice, live_backoffice, "print1")
    page.goto(f"{live_backoffice}/ledger/residents/{record}")
    assert page.locator(".handling-mark").is_hidden()  # on screen the page itself is enough
    page.emulate_media(media="print")
    assert page.locator(".handling-mark").is_visible()
    path = tmp_path / "printed.pdf"
    page.pdf(path=str(path))
    text = subprocess.run(["pdftotext", str(path), "-"], check=True, capture_output=True, text=True).stdout
    assert "取扱注意" in text and "宮沢" in text
