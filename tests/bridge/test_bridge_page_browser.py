"""The bridge page in real Chromium: a stopped intake worker turns its queue red, an alert appears and is mailed,
and the administrator who acknowledges it is named in the operation log."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from werkzeug.serving import make_server

from bridge.relay import run_relay
from tests.bridge.conftest import BO_PARTY, INTAKE, kill_tree
from tests.bridge.test_dead_letter_admin import RealClock
from tests.conftest import Backoffice, sign_in_browser
from tests.mailbox import mailbox  # noqa: F401  (the fixture)

SECRET = "秘密の申請内容"


@pytest.fixture
def served(bridged) -> Iterator[str]:
    """The back office of ``bridged`` over HTTP on a free loopback port; yields its origin."""
    server = make_server("127.0.0.1", 0, bridged.bo_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def back_office_relay(bridged) -> Iterator[None]:
    """The back office's relay running as in production (its loop also runs the alert check), stopped afterwards."""
    bridged.bo_app.config["ALERT_CHECK_SECONDS"] = 1
    stop = threading.Event()
    thread = threading.Thread(target=run_relay, args=(bridged.bo_app,), kwargs={"stop": stop}, daemon=True)
    yield thread
    stop.set()
    if thread.is_alive():
        thread.join(30)


def test_a_stopped_worker_shows_red_raises_a_mailed_alert_and_the_acknowledging_administrator_is_logged(
        bridged, served, back_office_relay, mailbox, browser):  # noqa: F811
    office = bridged.bo_app
    office.config.update(mailbox.config("admins@city.example"))
    worker = bridged.start_worker("backoffice", INTAKE)
    bridged.send("test.note", [{"marker": SECRET}])
    assert bridged.relay(bridged.portal_app) == 1
    bridged.wait_for(lambda: bridged.effects() == (1, 1), timeout=60)  # the worker runs

    context = browser.new_context(locale="ja-JP", viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        sign_in_browser(page, Backoffice(office, RealClock()), served, "watch1", "admin")
        page.goto(f"{served}/admin/bridge")
        intake = page.locator(f"tr.queue[data-queue='{INTAKE}']")
        assert "unattended" not in (intake.get_attribute("class") or "")
        assert intake.locator("td.workers").inner_text() == "1"
        assert page.locator("h1").inner_text() == "ブリッジ"  # Japanese first

        # The worker stops; four applications wait.
        kill_tree(worker, signal.SIGTERM)
        assert worker.wait(30) == 0, bridged.worker_log(worker)
        bridged.send("test.note", [{"marker": SECRET} for _ in range(4)])
        assert bridged.relay(bridged.portal_app) == 4
        back_office_relay.start()

        # Without reloading, the page shows the queue red with the right counts and the alert.
        page.locator(f"tr.queue.unattended[data-queue='{INTAKE}']").wait_for(timeout=30_000)
        page.locator("tr.alert[data-kind='queue_unattended']").wait_for(timeout=30_000)
        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # no reload happened
        assert intake.locator("td.waiting").inner_text() == "4"
        assert intake.locator("td.workers").inner_text() == "0"
        assert "稼働中のワーカーなし" in intake.inner_text()
        red = intake.locator("th").evaluate("e => getComputedStyle(e).backgroundColor")
        assert red == "rgb(246, 215, 210)"
        alert = page.locator("tr.alert[data-kind='queue_unattended']")
        assert INTAKE in alert.inner_text() and "4 job(s) waiting" in alert.inner_text()

        # The mail reached the administrators, without a word of the applications.
        [mail] = mailbox.wait_for(1)
        assert mail["To"] == "admins@city.example" and "queue_unattended" in mail["Subject"]
        assert INTAKE in mail.get_content() and SECRET not in mail.get_content()

        # The administrator acknowledges it; the page and the operation log name them.
        alert.locator("button.acknowledge").click()
        page.wait_for_url(f"{served}/admin/bridge")
        acknowledged = page.locator("tr.alert[data-kind='queue_unattended'] td.acknowledged")
        assert acknowledged.inner_text().startswith("watch1 (") and "JST" in acknowledged.inner_text()
    finally:
        context.close()

    alert_id = alert_id_of(office)
    with office.app_context():
        session = office.extensions["bridge"].session
        logged = session.execute(text(
            "SELECT a.actor, a.actor_id = s.id FROM audit_log a JOIN staff s ON s.login_id = 'watch1' "
            "WHERE a.action = 'bridge.alert.acknowledge' AND a.target_id = :id"), {"id": str(alert_id)}).all()
        session.rollback()
    assert [tuple(r) for r in logged] == [("watch1", True)]
    assert BO_PARTY in mail["Subject"]


def alert_id_of(app: Any) -> int:
    with app.app_context():
        session = app.extensions["bridge"].session
        alert_id = session.execute(text(
            "SELECT id FROM bridge_alert WHERE kind = 'queue_unattended' AND acknowledged_by = 'watch1'")).scalar_one()
        session.rollback()
    return int(alert_id)
