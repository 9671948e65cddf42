"""A real SMTP server in the test process (aiosmtpd) on a spare loopback port, keeping what it receives."""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller


class Mailbox:
    """Collects every message the server accepted."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.host, self.port = "127.0.0.1", 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        self.messages.append(message)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def config(self, to: str = "bridge-admins@city.example") -> dict[str, Any]:
        """The app settings that send alert mail here."""
        return {"ALERT_MAIL_TO": to, "ALERT_MAIL_FROM": "juki-alerts@city.example", "SMTP_HOST": self.host,
                "SMTP_PORT": self.port, "SMTP_STARTTLS": False}

    def wait_for(self, count: int, timeout: float = 30) -> list[EmailMessage]:
        """Wait until ``count`` messages arrived; returns them."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(self.messages) >= count, f"{len(self.messages)} of {count} mail(s) arrived"
        return self.messages[:count]


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """A running SMTP server for one test, stopped afterwards."""
    from tests.bridge.conftest import free_port

    box = Mailbox()
    box.port = free_port()
    controller = Controller(box, hostname=box.host, port=box.port)
    controller.start()
    yield box
    controller.stop()
