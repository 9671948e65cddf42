"""Production serving: both apps under gunicorn with the shipped config, as `make serve` starts them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from core import certcode
from tests.conftest import SECRETS
from tests.e2e.conftest import free_port
from tests.leakscan_plugin import keep_log

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "deploy" / "gunicorn.conf.py"
GUNICORN = Path(sys.executable).parent / "gunicorn"
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Served:
    """One gunicorn master serving one app on a spare loopback port, its output in a file."""

    def __init__(self, app: str, port: int, env: dict[str, str], log: Path) -> None:
        self.origin = f"http://127.0.0.1:{port}"
        self.log = log
        self.output = open(log, "wb")
        self.process = subprocess.Popen(
            [str(GUNICORN), "-c", str(CONFIG), app], cwd=ROOT, stdout=self.output, stderr=subprocess.STDOUT,
            env={**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2"})

    def wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text(errors="replace")
            try:
                requests.get(self.origin + path, timeout=15)
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise AssertionError(f"{self.origin} did not answer: {self.log.read_text(errors='replace')}")

    def stop(self) -> float:
        """SIGTERM, as a supervisor stops it; returns how long the master took to exit."""
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.output.close()
        return time.monotonic() - started


@pytest.fixture
def served(portal_db_url: str, backoffice_db_url: str, jlis_config: dict[str, str], session_dir: Path,
           tmp_path: Path) -> Iterator[tuple[Served, Served]]:
    """The portal and the back office, each its own gunicorn on its own port, with the counter's own origin."""
    portal_port, backoffice_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN", "WEB_CONCURRENCY", "FORWARDED"))}
    env.update({
        **jlis_config, **SECRETS,
        "APP_ENV": "test",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "PORTAL_DATABASE_URL": portal_db_url,
        "BACKOFFICE_DATABASE_URL": backoffice_db_url,
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        "REDIS_KEY_PREFIX": f"test-serve-{portal_port}",
        "AUDIT_CHECKPOINT_PATH": str(tmp_path / "checkpoints.jsonl"),
        "AUDIT_CHECKPOINT_KEY_PATH": str(session_dir / "checkpoint-key.pem"),
        "SITE_ORIGIN": f"http://127.0.0.1:{portal_port}",
        "COUNTER_ORIGIN": f"http://localhost:{backoffice_port}",
        "TRUSTED_PROXIES": "127.0.0.1",  # a TLS proxy on this host: the case where trust matters
    })
    portal = Served("wsgi:portal_app", portal_port, env, tmp_path / "portal.log")
    backoffice = Served("wsgi:backoffice_app", backoffice_port, env, tmp_path / "backoffice.log")
    try:
        portal.wait_ready("/")
        backoffice.wait_ready("/terminal/enroll")
        yield portal, backoffice
    finally:
        for server in (portal, backoffice):
            server.stop()
            keep_log(server.log, f"gunicorn-{server.log.stem}")


def _check_headers(response: requests.Response) -> None:
    assert response.status_code == 200, response.text[:500]
    for name, value in HEADERS.items():
        assert response.headers.get(name) == value, (name, response.headers.get(name))
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_both_apps_serve_under_gunicorn_log_no_query_and_stop_cleanly_on_sigterm(served):
    portal, backoffice = served
    home = requests.get(portal.origin + "/?q=secret-marker", timeout=10)
    _check_headers(home)
    enroll = requests.get(backoffice.origin + "/terminal/enroll?code=secret-marker", timeout=10)
    _check_headers(enroll)

    for server in (portal, backoffice):
        took = server.stop()
        assert server.process.returncode == 0, server.log.read_text(errors="replace")
        assert took < 35, f"{server.origin} took {took:.1f} s to stop"
    portal_log = portal.log.read_text(errors="replace")
    backoffice_log = backoffice.log.read_text(errors="replace")
    # Each request was logged, by path alone: what a resident typed into a query string is not kept.
    assert re.search(r'"GET / HTTP/1\.1" 200 ', portal_log), portal_log
    assert re.search(r'"GET /terminal/enroll HTTP/1\.1" 200 ', backoffice_log), backoffice_log
    assert "secret-marker" not in portal_log + backoffice_log
    # No runtime control interface besides signals (gunicorn would open one at a path shared by both masters).
    assert "Control socket" not in portal_log + backoffice_log
    assert "Shutting down" in portal_log or "Goodbye" in portal_log or "Handling signal" in portal_log, portal_log


def test_a_forwarded_https_header_does_not_turn_on_the_strict_referer_check_of_forms(served):
    """Only the apps' TrustedProxyFix reads forwarded headers: gunicorn applies no X-Forwarded-Proto.

    Were the scheme taken as https, Flask-WTF would refuse every form posted without a Referer,
    which is every form of these pages (Referrer-Policy: no-referrer).
    """
    portal, _ = served
    client = requests.Session()
    page = client.get(portal.origin + "/certificates/verify", timeout=10)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
    assert token, page.text[:500]
    forged = {"X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "on", "X-Forwarded-Protocol": "ssl"}
    response = client.post(portal.origin + "/certificates/verify", headers=forged, timeout=10,
                           data={"csrf_token": token.group(1), "code": certcode.new_code()})
    assert response.status_code == 200, response.text[:800]
