"""How an app takes part in the bridge: its party, its database and bridge tables, its audit writer.

Each factory calls ``init_bridge`` with its own models, so nothing in ``bridge`` imports a zone:
the jobs, the relay and the commands find the app's tables through ``current_bridge()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import redis
from flask import Flask, current_app
from sqlalchemy.orm import Session

from bridge import acks, handlers
from bridge.outbox import add_message, sealed_row
from bridge.queues import QueueNames
from bridge.settings import BridgeSettings
from core.db import Database
from core.envelope import KeyRegistry, validate_party
from core.redisconn import connect

ZONES = ("portal", "backoffice")


def party_for(zone: str, config: Mapping[str, Any]) -> str:
    """The party an app of ``zone`` is: ``portal``, or ``muni:<MUNICIPALITY_CODE>`` for a back office."""
    if zone == "portal":
        return "portal"
    if zone == "backoffice":
        return validate_party(f"muni:{config['MUNICIPALITY_CODE']}")
    raise ValueError(f"zone must be one of {ZONES}")


class Auditor(Protocol):
    """Writes one operation-log row in the given session (the zone's own log)."""

    def __call__(self, session: Session, action: str, /, *, outcome: str, target_type: str, target_id: str,
                 detail: dict[str, Any]) -> Any: ...


@dataclass(frozen=True)
class Bridge:
    """One app's part in the bridge."""

    zone: str
    party: str
    database: Database
    outbox: type[Any]
    processed: type[Any]
    dead_letters: type[Any]
    audit: Auditor
    alerts: type[Any] | None = None  # the bridge_alert table (the relay writes what an operator must know)

    @property
    def session(self) -> Session:
        """The session of the current request, job or command."""
        return self.database.session

    def keys(self) -> KeyRegistry:
        """This party's keys, read from the key directory (so a newly imported public key counts at once)."""
        return KeyRegistry.from_config(current_app.config, party=self.party)

    def send(self, session: Session, *, message_type: str, recipient: str, payload: dict[str, Any],
             keys: KeyRegistry | None = None) -> Any:
        """Write one message from this app to ``recipient`` in the caller's transaction; returns the outbox row.

        The payload is validated against its schema (``bridge.messages``: ``MessageInvalid`` naming
        the path, and nothing is written), sealed with this party's keys and added to this app's
        outbox with the queue the route from this party to ``recipient`` takes (ValueError where no
        route exists). The relay publishes it once the caller commits. ``keys``: this party's keys
        when the caller has just read them.
        """
        return add_message(session, self.outbox, message_type=message_type, recipient=recipient, payload=payload,
                           keys=keys or self.keys(), **self._addressing(session, recipient, message_type))

    def outbox_row(self, session: Session, *, message_type: str, recipient: str,
                   payload: dict[str, Any]) -> dict[str, Any]:
        """The column values of the row ``send`` would add, validated and sealed the same way, for a caller
        that inserts it in a statement of its own (in the same transaction); nothing is written here."""
        return sealed_row(message_type=message_type, recipient=recipient, payload=payload, keys=self.keys(),
                          **self._addressing(session, recipient, message_type))

    def _addressing(self, session: Session, recipient: str, message_type: str) -> dict[str, Any]:
        """Sender, queue and the ack this message carries, if it is the first reply to the message being applied."""
        reply = session.info.get(acks.REPLY)
        return {"sender": self.party,
                "queue": QueueNames.for_message(sender=self.party, recipient=recipient, message_type=message_type),
                "acknowledges": reply.take(recipient, message_type) if reply is not None else None}

    def settings(self) -> BridgeSettings:
        """The bridge settings of the current app."""
        return BridgeSettings.from_config(current_app.config)

    def redis(self) -> redis.Redis:
        """A new connection to the app's Redis (or its Sentinel master) for the relay or a worker."""
        return connect(current_app.config, socket_connect_timeout=5, socket_timeout=10)


def init_bridge(
    app: Flask,
    *,
    zone: str,
    database: Database,
    outbox: type[Any],
    processed: type[Any],
    dead_letters: type[Any],
    audit: Auditor,
    alerts: type[Any] | None = None,
) -> Bridge:
    """Attach the bridge to ``app``: its party, the ``ack`` handler, and the keys, relay and worker commands."""
    from bridge.cli import register_commands

    party = party_for(zone, app.config)
    app.config["BRIDGE_PARTY"] = party
    BridgeSettings.from_config(app.config)  # a bad setting stops the start, not the first job
    binding = Bridge(zone=zone, party=party, database=database, outbox=outbox, processed=processed,
                     dead_letters=dead_letters, audit=audit, alerts=alerts)
    app.extensions["bridge"] = binding
    handlers.register(acks.ACK, acks.handle_ack, zone=zone)
    register_commands(app)
    from bridge import metrics

    metrics.install(app)  # GET /metrics, with METRICS_TOKEN only
    return binding


def current_bridge() -> Bridge:
    """The bridge binding of the current app."""
    binding: Bridge = current_app.extensions["bridge"]
    return binding


def send(session: Session, *, message_type: str, recipient: str, payload: dict[str, Any]) -> Any:
    """``Bridge.send`` of the current app: the one call every sender makes."""
    return current_bridge().send(session, message_type=message_type, recipient=recipient, payload=payload)
