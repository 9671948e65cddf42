"""The database connection a worker parent lends to its work-horses (bridge.lending), with real forks and PostgreSQL.

Each "horse" here is a real ``os.fork`` child doing what a work-horse does with the engine: the fork hooks
the lender installs run as in the worker, and the parent follows the worker's steps (``before_fork``,
``after_fork_in_parent``, reap, ``after_horse``).
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from bridge.lending import ConnectionLender
from core.db import make_engine
from tests.conftest import create_pg_database, drop_pg_database


@pytest.fixture
def database() -> Iterator[str]:
    url = create_pg_database("lending")
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE seen (horse int, backend int)"))
        connection.execute(text("CREATE TABLE counter (id int PRIMARY KEY, n int)"))
        connection.execute(text("INSERT INTO counter VALUES (1, 0)"))
    engine.dispose()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture
def lent(database: str) -> Iterator[tuple[Engine, ConnectionLender]]:
    engine = make_engine(database, pool_pre_ping=True)
    lender = ConnectionLender(engine)
    try:
        yield engine, lender
    finally:
        lender.give_up()
        engine.dispose()


def _horse(engine: Engine, lender: ConnectionLender, job: Callable[[Engine], Any], *, report: bool = True) -> int:
    """Fork a work-horse that runs ``job`` and (like BridgeWorker.perform_job) reports; the parent reaps it."""
    lender.before_fork()
    pid = os.fork()
    if pid == 0:  # the horse
        code = 0
        try:
            job(engine)
        except BaseException:
            code = 1
        finally:
            if report:
                lender.report()
            os._exit(code)
    lender.after_fork_in_parent()
    _, status = os.waitpid(pid, 0)
    lender.after_horse()
    return status


def _record_backend(n: int) -> Callable[[Engine], None]:
    def job(engine: Engine) -> None:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO seen VALUES (:n, pg_backend_pid())"), {"n": n})
    return job


def _column(url: str, sql: str) -> list[int]:
    """The first column of ``sql``'s rows, read on a connection of its own."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return [int(row[0]) for row in connection.execute(text(sql))]
    finally:
        engine.dispose()


def _backends(url: str) -> list[int]:
    return _column(url, "SELECT backend FROM seen ORDER BY horse")


def _count(url: str) -> int:
    [n] = _column(url, "SELECT n FROM counter")
    return n


def _lock_is_free(url: str) -> bool:
    """Whether another session can update the counter row within 2 s (a dead horse's transaction would hold it)."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("SET LOCAL lock_timeout = '2s'"))
            connection.execute(text("UPDATE counter SET n = n + 1 WHERE id = 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


def test_every_horse_works_on_the_one_backend_the_parent_lends(lent, database):
    engine, lender = lent
    for n in range(3):
        assert _horse(engine, lender, _record_backend(n)) == 0
    parent_backend = lender.connection.execute("SELECT pg_backend_pid()").fetchone()[0]
    lender.connection.rollback()
    assert _backends(database) == [parent_backend] * 3  # not three new connections


def test_a_horse_killed_inside_a_transaction_lets_go_of_its_locks_at_once(lent, database):
    engine, lender = lent

    def killed_holding_a_lock(engine: Engine) -> None:
        connection = engine.connect()
        connection.execute(text("UPDATE counter SET n = n + 1 WHERE id = 1"))  # row locked, never committed
        os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would

    status = _horse(engine, lender, killed_holding_a_lock)
    assert os.WIFSIGNALED(status)
    assert lender.connection is None  # given up, not lent again
    assert _lock_is_free(database)  # its backend ended with it: the row is free for the next job
    assert _horse(engine, lender, _record_backend(1)) == 0  # the next horse works, on a new connection
    assert len(_backends(database)) == 1


def test_a_horse_killed_halfway_through_sending_a_statement_ends_its_backend_though_another_process_holds_it(
        lent, database):
    """Killed between two writes of one message, a horse leaves the server waiting for the rest of it: a goodbye
    written after that is read as part of the message. rq's scheduler, also forked from the parent, holds the
    same socket, so closing the parent's descriptor would not end the connection either."""
    engine, lender = lent
    lender.before_fork()
    bystander = os.fork()  # like rq's scheduler process: forked from the parent, holding every descriptor
    if bystander == 0:
        time.sleep(30)
        os._exit(0)
    lender.after_fork_in_parent()
    try:
        def killed_mid_message(engine: Engine) -> None:
            connection = engine.connect()
            connection.execute(text("UPDATE counter SET n = n + 1 WHERE id = 1"))  # the row lock is held
            raw = connection.connection.dbapi_connection
            sock = socket.socket(fileno=os.dup(raw.pgconn.socket))
            sock.sendall(b"Q" + (4096).to_bytes(4, "big") + b"SELECT ")  # a Query message, cut short
            os.kill(os.getpid(), signal.SIGKILL)

        assert os.WIFSIGNALED(_horse(engine, lender, killed_mid_message))
        assert _lock_is_free(database)
    finally:
        os.kill(bystander, signal.SIGKILL)
        os.waitpid(bystander, 0)


def test_a_horse_that_ends_with_a_transaction_open_does_not_hand_it_on(lent, database):
    """A job that returned without committing or rolling back: the parent must not lend that transaction on."""
    engine, lender = lent

    def left_open(engine: Engine) -> None:
        connection = engine.connect()
        connection.execute(text("UPDATE counter SET n = n + 100 WHERE id = 1"))
        connection.detach()  # out of the pool's reach: nothing rolls it back before the horse ends

    assert _horse(engine, lender, left_open) == 0
    assert lender.connection is None
    assert _lock_is_free(database)
    assert _horse(engine, lender, _record_backend(1)) == 0
    assert _count(database) == 1  # the +100 never committed: only _lock_is_free's update


def test_a_horse_that_never_reports_is_not_trusted(lent, database):
    """A horse that died before its report (e.g. rq's own code failing after the job) leaves an unknown state."""
    engine, lender = lent
    assert _horse(engine, lender, _record_backend(0), report=False) == 0
    assert lender.connection is None
    assert _horse(engine, lender, _record_backend(1)) == 0
    first, second = _backends(database)
    assert first != second


def test_statements_a_horse_runs_many_times_do_not_collide_with_the_next_horses(lent, database):
    """psycopg prepares a statement on the server after its fifth use; the next horse's copy would prepare it
    again under the same name. Every horse runs the same statement ten times."""
    engine, lender = lent

    def often(engine: Engine) -> None:
        with engine.begin() as connection:
            for _ in range(10):
                connection.execute(text("UPDATE counter SET n = n + 1 WHERE id = :id"), {"id": 1})

    assert [_horse(engine, lender, often) for _ in range(3)] == [0, 0, 0]
    assert _count(database) == 30


def test_a_lent_connection_the_server_ended_is_replaced_without_failing_the_job(lent, database):
    engine, lender = lent
    assert _horse(engine, lender, _record_backend(0)) == 0
    backend = _backends(database)[0]
    admin = make_engine(database)
    with admin.begin() as connection:  # e.g. an administrator, or the server restarting
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
    admin.dispose()
    assert _horse(engine, lender, _record_backend(1)) == 0  # connected anew instead of failing
    assert lender.connection is None  # the dead one is given up
    assert _horse(engine, lender, _record_backend(2)) == 0
    assert _horse(engine, lender, _record_backend(3)) == 0
    first, second, third, fourth = _backends(database)
    assert len({first, second, third}) == 3 and fourth == third  # a new one is lent from then on
