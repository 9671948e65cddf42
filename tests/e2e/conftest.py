"""Browser fixtures for end-to-end tests (the browser itself comes from tests/conftest.py)."""

from __future__ import annotations

import os
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
