"""The database connection a forking worker's parent lends to each of its work-horses in turn.

rq's forking worker runs every job in a new process, and a horse that opened its own connection paid,
for every job, for the connection (TCP, a new PostgreSQL backend process, the start-up exchange) and
for that backend's empty caches: a new backend reads the system catalogs again for every table and
index it touches. That was about a third of an intake job. Lent, one backend serves every job of the
worker, its caches warm from the parent's rehearsal on.

What keeps a lent connection as safe as a horse's own:

- The parent never runs a statement on it while it is lent, nor at all except its rehearsal before the
  first fork (``lend_to_parent``); rq's maintenance and the failure callbacks the parent runs connect
  as before.
- A horse takes it for its first connection only, after one empty query showing the server still
  answers (else the horse connects as before). When its job is over, the horse reports it back clean
  only if it is open and idle: no transaction begun, none left open (``report``).
- The moment the horse is reaped, the parent keeps the connection only if the horse reported it clean.
  Otherwise (a horse killed in the middle of a statement or a transaction, a timeout, a crash) the
  parent shuts the socket down at once, which ends the backend and rolls its transaction back: the
  locks a killed horse held are let go as promptly as when the horse's death closed its own
  connection. ``shutdown`` rather than ``close``: another process forked from the parent (rq's
  scheduler) also holds the descriptor, and a socket is only closed with its last descriptor.
- psycopg prepares a statement on the server after its fifth use on a connection. A statement one
  horse prepared would be unknown to the next horse's copy of the connection, which would prepare it
  again under the same name and fail; a lent connection never prepares automatically.
- Only PostgreSQL over a connection without TLS is lent: a TLS session cannot be continued by two
  processes in turn (each horse would go on from the parent's copy of its state, out of step with the
  server). With TLS to the database each horse connects itself, as before (``docs/operations.md``:
  put a local connection pooler in between to keep the backends warm).
"""

from __future__ import annotations

import logging
import mmap
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from sqlalchemy import Engine, event

from core.db import dbapi_connection

log = logging.getLogger("bridge.worker")
_CLEAN = 1


class ConnectionLender:
    """One lent PostgreSQL connection per worker parent; see the module's text for the rules."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.enabled = engine.dialect.name == "postgresql"
        self.connection: Any | None = None  # the psycopg connection, owned by the parent
        self._report = mmap.mmap(-1, 1)  # shared with every horse: what its job left the connection in
        self._borrowing = False  # in a horse (or the parent's rehearsal): the first connect takes the lent one
        self._taken = False
        self._forking = False
        if self.enabled:
            event.listen(engine, "do_connect", self._do_connect)
        os.register_at_fork(after_in_child=self._in_child)

    def _in_child(self) -> None:
        """In every forked process: a horse may borrow the lent connection (not rq's scheduler, nor any other
        process forked outside ``before_fork``); none reuses the parent's pool."""
        self._borrowing, self._taken, self._forking = self._forking, False, False
        self.engine.dispose(close=False)  # SQLAlchemy's rule for a forked process: forget, never close

    # -- the parent ----------------------------------------------------------------------------------

    def before_fork(self) -> None:
        """Have a connection ready to lend (a new one if the last was given up); mark its report unclean."""
        self._report[0] = 0
        if not self.enabled:
            return
        if self.connection is None:
            self.connection = self._open()
        self._forking = self.connection is not None

    def after_fork_in_parent(self) -> None:
        self._forking = False

    def after_horse(self) -> None:
        """The horse is gone: keep the connection if it reported it clean, else end it at once."""
        if self.connection is not None and self._report[0] != _CLEAN:
            self.give_up()

    def give_up(self) -> None:
        """End the lent connection's backend now (its open transaction, if any, is rolled back), and forget it."""
        connection, self.connection = self.connection, None
        if connection is None:
            return
        with suppress(Exception):  # already closed or broken: nothing left to end
            with socket.socket(fileno=os.dup(connection.pgconn.socket)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        with suppress(Exception):
            connection.close()

    @contextmanager
    def lend_to_parent(self) -> Iterator[None]:
        """The parent borrows the connection itself (its rehearsal before the first fork), then takes it back."""
        if not self.enabled:
            yield
            return
        if self.connection is None:
            self.connection = self._open()
        self.engine.dispose()  # whatever the parent's pool held before is closed: only the lent one is kept
        self._borrowing, self._taken = True, False
        try:
            yield
        finally:
            self._borrowing = False
            # The pool forgets its connections; the lent one is still held here (any other is closed when freed).
            self.engine.dispose(close=False)
            if not self._clean():
                self.give_up()

    # -- the horse -----------------------------------------------------------------------------------

    def report(self) -> None:
        """At the end of a horse's job: tell the parent whether the connection may be lent again."""
        if not self._borrowing:
            return
        if not self._taken or self._clean():
            self._report[0] = _CLEAN

    # -- both ----------------------------------------------------------------------------------------

    def _clean(self) -> bool:
        from psycopg.pq import TransactionStatus

        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        return bool(connection.info.transaction_status == TransactionStatus.IDLE)

    def _open(self) -> Any | None:
        """A new connection to lend, or None where none can be lent (TLS, or the database is not reachable)."""
        try:
            connection = dbapi_connection(self.engine)
        except Exception as exc:  # the horses connect themselves meanwhile
            log.warning("could not open the connection lent to work-horses (%s)", type(exc).__name__)
            return None
        if connection.pgconn.ssl_in_use:
            connection.close()
            self.enabled = False
            log.info("the database connection uses TLS: each work-horse opens its own")
            return None
        connection.prepare_threshold = None
        return connection

    def _do_connect(self, dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any | None:
        """SQLAlchemy's connect: the lent connection for the first connect of a borrower, else None (a new one)."""
        if not self._borrowing or self._taken or self.connection is None:
            return None
        self._taken = True
        connection = self.connection
        try:
            connection.autocommit = True  # the empty query below must not begin a transaction
            try:
                connection.execute("")
            finally:
                connection.autocommit = False
        except Exception:  # the server went away (restart, idle timeout): connect anew; the parent gives it up
            log.warning("the lent database connection no longer answers; this job connects anew")
            return None
        return connection
