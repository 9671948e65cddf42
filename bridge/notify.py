"""A committed outbox row wakes the relays at once: PostgreSQL's LISTEN/NOTIFY on the channel ``bridge_outbox``.

A trigger on each app's outbox (revisions ``0072_outbox_notify`` and ``0081_outbox_notify``) notifies the
channel once per inserting statement. PostgreSQL delivers a notification when its transaction commits
and drops it on rollback, so a relay woken by one finds the rows committed. A relay that polled every
``BRIDGE_RELAY_INTERVAL_SECONDS`` left a message waiting half that interval on average before it was
published; it now waits on the channel instead, and still makes a pass at least every interval (for
messages due again, and for a notification missed while its listening connection was down). A
notification carries nothing: the relay reads the rows. On SQLite there is no channel, and the relay
polls as before.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy import Engine

from core.db import dbapi_connection

CHANNEL = "bridge_outbox"
log = logging.getLogger("bridge.relay")

_FUNCTION = f"""
CREATE OR REPLACE FUNCTION bridge_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', '');
    RETURN NULL;
END
$$
"""


def outbox_notify_upgrade(op: Any) -> None:
    """The migration step: the trigger that notifies the channel after each statement inserting outbox rows."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_FUNCTION)
    op.execute("CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT "
               "EXECUTE FUNCTION bridge_outbox_notify()")


def outbox_notify_downgrade(op: Any) -> None:
    """Undo ``outbox_notify_upgrade``."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
    op.execute("DROP FUNCTION IF EXISTS bridge_outbox_notify()")


class OutboxListener:
    """A relay's wait: until a notification on the channel, ``stop``, or ``seconds``, whichever comes first.

    Listens on a connection of its own (autocommit, outside the relay's sessions). If it cannot listen
    (SQLite, or the database is down), ``wait`` is ``stop.wait``; it tries to listen again at the
    next wait.
    """

    def __init__(self, engine: Engine, stop: threading.Event) -> None:
        self.engine = engine
        self.stop = stop
        self.enabled = engine.dialect.name == "postgresql"
        self._connection: Any | None = None

    def start(self) -> None:
        """Listen from now on (else from the first ``wait``)."""
        self._listening()

    def wait(self, seconds: float) -> bool:
        """Wait; True if woken by a notification (or stop), False if the time ran out."""
        connection = self._listening()
        if connection is None:
            return self.stop.wait(seconds)
        deadline = time.monotonic() + seconds
        try:
            while not self.stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                # In slices, so that a stop is seen within a quarter second.
                if list(connection.notifies(timeout=min(left, 0.25), stop_after=1)):
                    self._drain(connection)
                    return True
            return True
        except Exception as exc:  # the listening connection broke: poll until it listens again
            log.warning("relay stopped listening for outbox rows (%s); polling meanwhile", type(exc).__name__)
            self.close()
            return self.stop.wait(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception as exc:  # already gone
                log.debug("closing the listening connection: %s", type(exc).__name__)

    def _listening(self) -> Any | None:
        if not self.enabled:
            return None
        if self._connection is None:
            try:
                self._connection = dbapi_connection(self.engine)
                self._connection.autocommit = True
                self._connection.execute(f"LISTEN {CHANNEL}")
            except Exception as exc:
                self.close()
                log.warning("relay cannot listen for outbox rows (%s); polling", type(exc).__name__)
                return None
        return self._connection

    @staticmethod
    def _drain(connection: Any) -> None:
        """Take the notifications already queued too: one pass publishes every row they announce."""
        for _ in connection.notifies(timeout=0):
            pass
