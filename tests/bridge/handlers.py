"""Test-only message handlers: an effect the count oracle can see (slow if asked), poison, crash, schema error.

The effect is one operation-log row (``test.effect``, target = message id) written through the
app's own audit writer, so "applied twice" shows up as two rows for one message id.
"""

from __future__ import annotations

import os
import signal
import time

from flask import current_app
from sqlalchemy.orm import Session

from bridge import messages
from bridge.handlers import PermanentFailure, register
from core.envelope import Opened

NOTE, POISON, SCHEMA, CRASH, REPLY = "test.note", "test.poison", "test.schema", "test.crash", "test.reply"


def note(session: Session, message: Opened) -> None:
    """Sleep as long as the payload asks, then write the effect row."""
    time.sleep(float(message.payload.get("sleep", 0)))
    current_app.extensions["bridge"].audit(session, "test.effect", outcome="success", target_type="message",
                                           target_id=message.message_id, detail={"n": message.payload.get("n")})


def reply(session: Session, message: Opened) -> None:
    """Write the effect row and answer the sender with a note, as the back office answers an application."""
    note(session, message)
    current_app.extensions["bridge"].send(session, message_type=NOTE, recipient=message.sender,
                                          payload={"n": message.payload.get("n")})


def poison(session: Session, message: Opened) -> None:
    """Always fail, quoting the payload (which must never reach Redis or a log)."""
    raise RuntimeError(f"poison message {message.payload.get('marker')}")


def crash(session: Session, message: Opened) -> None:
    """Kill the process running it, as the OOM killer would, every time."""
    os.kill(os.getpid(), signal.SIGKILL)


def schema(session: Session, message: Opened) -> None:
    """A message no retry can apply."""
    raise PermanentFailure("schema_error", "payload lacks the required fields")


def define_test_messages() -> None:
    """Give the test types a schema, as every type must have (open: these tests are about delivery, not shapes)."""
    for message_type in (NOTE, POISON, SCHEMA, CRASH, REPLY):
        messages.define(message_type, {"$schema": messages.DRAFT, "type": "object"})


def register_test_handlers(zone: str) -> None:
    """Register the test handlers in ``zone`` (idempotent)."""
    define_test_messages()
    register(NOTE, note, zone=zone)
    register(POISON, poison, zone=zone)
    register(SCHEMA, schema, zone=zone)
    register(CRASH, crash, zone=zone)
    register(REPLY, reply, zone=zone)
