"""The handler registry: which function applies a message type in which zone, and from which senders.

Each zone registers its handlers in its factory; only a type with a schema in ``bridge.messages``
can be registered. A handler runs inside the delivery transaction, after the payload was validated
against that schema and the message id was recorded as processed: it changes the database through
the session it is given (flush, never commit) and raises ``PermanentFailure`` for a message that
can never be applied (an unknown case, a sender that may not change it), which dead-letters it at
once instead of retrying. It checks no shapes: the schema did.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from flask import current_app
from sqlalchemy.orm import Session

from bridge import messages
from core.envelope import Opened

Handler = Callable[[Session, Opened], None]
ZONES = ("portal", "backoffice", "peer")


class PermanentFailure(Exception):
    """A message that no retry can apply; ``reason`` goes to the dead-letter table (no personal data)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Registration:
    """One handler and the senders it takes messages from (None: any known party)."""

    handler: Handler
    senders: frozenset[str] | None

    def accepts(self, sender: str) -> bool:
        """Whether ``sender`` may send this type: a party, or a kind such as ``muni:*``."""
        if self.senders is None:
            return True
        kind = sender.split(":", 1)[0] + ":*"
        return sender in self.senders or kind in self.senders


_registry: dict[tuple[str, str], Registration] = {}


def register(message_type: str, handler: Handler, *, zone: str, senders: Collection[str] | None = None) -> None:
    """Register ``handler`` for ``message_type`` in ``zone``; registering the same handler again changes nothing."""
    if zone not in ZONES:
        raise ValueError(f"zone must be one of {ZONES}")
    if not messages.is_defined(message_type):
        raise ValueError(f"{message_type} has no schema in bridge.messages: define it there first")
    registration = Registration(handler, None if senders is None else frozenset(senders))
    existing = _registry.get((zone, message_type))
    if existing is not None and existing != registration:
        raise ValueError(f"{message_type} already has another handler in {zone}")
    _registry[(zone, message_type)] = registration


def registration_for(message_type: str, *, zone: str | None = None) -> Registration:
    """The registration of ``message_type`` in ``zone`` (default: the current app's); KeyError if none."""
    return _registry[(zone or _current_zone(), message_type)]


def accepted_types(zone: str | None = None) -> frozenset[str]:
    """Every message type ``zone`` (default: the current app's) has a handler for."""
    zone = zone or _current_zone()
    return frozenset(t for (z, t) in _registry if z == zone)


def registered() -> frozenset[tuple[str, str]]:
    """Every (zone, message type) a handler is registered for in this process."""
    return frozenset(_registry)


def _current_zone() -> str:
    zone: str = current_app.extensions["bridge"].zone
    return zone
