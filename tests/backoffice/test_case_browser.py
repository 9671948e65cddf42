"""Two people work one case in real Chromium: a clerk claims and confirms, another person approves with a new code.

axe-core runs on the inbox and the case page (no serious or critical violation); screenshots go to
test-artifacts/.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from backoffice.models import CaseStatus
from tests.backoffice.case_fixtures import (
    HEAD_NUMBER,
    deliver,
    load_case,
    make_city,
    no_effects,  # noqa: F401  (autouse: the real effects are not run here)
)

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parent.parent.parent
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts"))



@pytest.fixture
def live(backoffice: Any) -> Iterator[str]:
    """The back office served over HTTP on a free loopback port."""
    server = make_server("127.0.0.1", 0, backoffice.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


class Desk:
    """One member of staff at their own registered terminal (a browser context of its own)."""

    def __init__(self, browser: Any, origin: str, backoffice: Any, login_id: str, *roles: str) -> None:
        self.context = browser.new_context(bypass_csp=True, locale="ja-JP", viewport={"width": 1200, "height": 900})
        self.page = self.context.new_page()
        self.origin, self.backoffice, self.login_id = origin, backoffice, login_id
        self.violations: dict[str, list[Any]] = {}
        backoffice.add_staff(login_id, *roles)
        code = backoffice.add_terminal(f"desk-{login_id}")
        self.page.goto(origin + "/terminal/enroll")
        self.page.fill("input[name=code]", code)
        self.page.click("button[type=submit]")
        self.page.goto(origin + "/sign-in")
        self.page.fill("input[name=login_id]", login_id)
        self.page.fill("input[name=password]", "correct horse battery")
        self.page.fill("input[name=totp]", backoffice.totp(login_id))
        self.page.click("form button[type=submit]")
        self.page.wait_for_load_state()

    def check(self, name: str) -> None:
        """axe-core on the current page (serious and critical only), and a screenshot."""
        self.page.evaluate(AXE.read_text())
        result = self.page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        bad = [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]
               if v["impact"] in ("serious", "critical")]
        if bad:
            self.violations[name] = bad
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"case-{self.login_id}-{name}.png"), full_page=True)


def test_a_clerk_and_an_approver_work_one_case_in_the_browser(browser, backoffice, live, tmp_path):
    assert AXE.exists(), "axe-core is missing: run `npm ci` (make test does)"
    city = make_city(backoffice.app, tmp_path)
    case_id = deliver(backoffice.app, city, receipt="R-BROWSER")
    clerk = Desk(browser, live, backoffice, "clerk_e2e", "clerk")
    clerk.page.goto(live + "/cases/")
    clerk.check("inbox")
    row = clerk.page.locator(f"tr[data-case='{case_id}']")
    row.get_by_role("button", name="担当する").click()
    clerk.page.wait_for_load_state()
    assert clerk.page.locator(f"tr[data-case='{case_id}'] td.claimed").inner_text() == "clerk_e2e"
    clerk.page.get_by_role("link", name="R-BROWSER").click()
    clerk.page.wait_for_load_state()
    clerk.check("case")
    assert HEAD_NUMBER not in clerk.page.content()
    # Returning without a reason is refused next to the field; nothing changes.
    clerk.page.locator("#return-form button").click()
    clerk.page.wait_for_load_state()
    assert "理由を入力してください" in clerk.page.locator("#return-form .error-message").inner_text()
    clerk.check("case-error")
    clerk.page.locator("#confirm-form button").click()
    clerk.page.wait_for_load_state()
    assert clerk.page.locator("#case-status").get_attribute("data-status") == "confirmed"
    assert clerk.page.locator("#approve-form").count() == 0

    approver = Desk(browser, live, backoffice, "approver_e2e", "approver")
    approver.page.goto(f"{live}/cases/{case_id}")
    approver.page.fill("input[name='approve-totp_code']", backoffice.totp("approver_e2e"))
    approver.page.locator("#approve-form button").click()
    approver.page.wait_for_load_state()
    assert approver.page.locator("#case-status").get_attribute("data-status") == "approved"
    approver.check("approved")
    assert load_case(backoffice.app, case_id).status is CaseStatus.APPROVED
    assert clerk.violations == {} and approver.violations == {}
    clerk.context.close()
    approver.context.close()
