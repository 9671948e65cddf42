"""The counter in real headless Chromium: a clerk on a registered terminal, the resident's card and PIN, the 転居."""

from __future__ import annotations

import threading

import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from werkzeug.serving import make_server

from backoffice.models import Case, CaseStatus, CounterVisit, Resident, VisitResult
from core import clock
from tests.backoffice.test_counter import (
    HEAD,
    PIN,
    WIFE,
    approved_case,
    drop_counter_keys,
    in_city_application,
    make_counter_city,
    make_counter_keys,
    new_address,
    prepare_counter_app,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def live_backoffice(bo_app, clock, tmp_path):
    """The back office over HTTP on a free loopback port; the counter's card origin is that address."""
    keys = tmp_path / "keys"
    keys.mkdir()
    app = prepare_counter_app(bo_app, make_counter_keys(keys))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    origin = f"http://127.0.0.1:{server.server_port}"
    app.config["COUNTER_ORIGIN"] = origin
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, origin
    server.shutdown()
    drop_counter_keys(app)


def test_the_residents_card_signs_in_at_the_counter_and_the_clerk_completes_the_move(
        live_backoffice, backoffice, page, tmp_path, artifacts):
    app, origin = live_backoffice
    city = make_counter_city(app, tmp_path)
    case_id = approved_case(app, city["cards"]["head"], in_city_application(app, [HEAD, WIFE]))
    backoffice.add_staff("clerk9", "clerk")
    code = backoffice.add_terminal("counter-browser")

    page.goto(origin + "/terminal/enroll")
    page.fill("input[name=code]", code)
    page.locator("form button[type=submit]").click()
    page.goto(origin + "/sign-in")
    page.fill("input[name=login_id]", "clerk9")
    page.fill("input[name=password]", "correct horse battery")
    page.fill("input[name=totp]", backoffice.totp("clerk9"))
    page.locator("form button[type=submit]").click()
    page.wait_for_url(origin + "/")

    page.goto(f"{origin}/counter/{case_id}")
    # A neighbour's card signs in correctly but is not a mover's: refused, with a message for the clerk.
    page.get_by_label("カード", exact=True).set_input_files(str(city["cards"]["neighbour"]))
    page.get_by_label("暗証番号（数字4桁）").fill(PIN)
    page.get_by_role("button", name="カードを確認する").click()
    expect(page.locator("#card-status")).to_contain_text("申請者でも異動者でもありません", timeout=30_000)
    assert "未確認" in page.locator("#visit").inner_text()

    page.get_by_label("カード", exact=True).set_input_files(str(city["cards"]["head"]))
    page.get_by_label("暗証番号（数字4桁）").fill(PIN)
    page.get_by_role("button", name="カードを確認する").click()
    expect(page.locator("#visit")).to_contain_text("確認しました", timeout=30_000)
    # The shared terminal kept nothing of the resident's card for the next person.
    assert page.evaluate("sessionStorage.getItem('jpki-sim-card')") is None
    page.screenshot(path=str(artifacts / "counter-card-checked.png"), full_page=True)

    page.locator("#moved_on").fill(clock.today_jst().isoformat())  # the day the resident states they moved
    page.get_by_role("button", name="転居を完了する").click()
    expect(page.locator("div.notice-success[role=status]")).to_contain_text("転居が完了しました")
    expect(page.get_by_role("button", name="転居を完了する")).to_have_count(0)  # nothing left to complete
    from backoffice.extensions import db

    with app.app_context():
        assert db.session.get(Case, case_id).status is CaseStatus.COMPLETED
        assert db.session.get(Resident, city["head"]).banchi == new_address(app)["banchi"]
        results = db.session.execute(select(CounterVisit.result).order_by(CounterVisit.id)).scalars().all()
        assert results == [VisitResult.REFUSED, VisitResult.VERIFIED]
