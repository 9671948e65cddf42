"""What one statement costs the client's CPU through each layer: the ORM, Core, and the driver alone.

A transaction that reads one row by primary key and commits, repeated in one process against a
scratch PostgreSQL database (``TEST_PG_URL``): through ``Session.get`` with and without the pool's
ping, through a Core ``select``, through psycopg alone (its statement prepared after five uses, as
the engine's are), and an empty transaction with and without the ping. Prints the CPU
(``time.process_time``) and wall time of each, per transaction. Not a figure of ``make bench``.

Run: ``.venv/bin/python -m bench.statement_cost [N]`` (2,000 transactions each, after 200 untimed).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import psycopg
from sqlalchemy import Engine, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from bench.baselines import scratch_database


class _Base(DeclarativeBase):
    pass


class Row(_Base):
    """A row of about the width of a portal account."""

    __tablename__ = "statement_cost"
    id: Mapped[int] = mapped_column(primary_key=True)
    a: Mapped[str] = mapped_column(String(100))
    b: Mapped[str] = mapped_column(String(100))
    c: Mapped[str] = mapped_column(String(100))
    d: Mapped[str] = mapped_column(String(100))
    e: Mapped[str] = mapped_column(String(100))
    f: Mapped[str] = mapped_column(String(100))
    g: Mapped[str] = mapped_column(String(100))
    h: Mapped[str] = mapped_column(String(100))


def _time(label: str, transaction: Callable[[], None], count: int) -> None:
    for _ in range(200):
        transaction()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        transaction()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"{label:48s} {1e6 * cpu / count:7.0f} µs CPU {1e6 * wall / count:7.0f} µs wall")


def main(argv: list[str]) -> None:
    """Time each way ``argv[0]`` times (2,000)."""
    count = int(argv[0]) if argv else 2000
    with scratch_database("bench_statement") as url:
        pinged, plain = create_engine(url, pool_pre_ping=True), create_engine(url)
        _Base.metadata.create_all(plain)
        with Session(plain) as session:
            session.add(Row(id=1, **{c: c * 20 for c in "abcdefgh"}))
            session.commit()
        driver = psycopg.connect(plain.url.set(drivername="postgresql").render_as_string(hide_password=False))
        table = Row.__table__

        def orm(engine: Engine) -> Callable[[], None]:
            def run() -> None:
                with Session(engine) as session:
                    session.get(Row, 1)
                    session.commit()
            return run

        def core() -> None:
            with Session(pinged) as session:
                session.connection().execute(select(table).where(table.c.id == 1)).one()
                session.commit()

        def raw() -> None:
            with driver.cursor() as cursor:
                cursor.execute("SELECT * FROM statement_cost WHERE id = %s", (1,))
                cursor.fetchone()
            driver.commit()

        def empty(engine: Engine) -> Callable[[], None]:
            def run() -> None:
                with Session(engine) as session:
                    session.connection()
                    session.commit()
            return run

        try:
            _time("ORM Session.get + commit, pool ping", orm(pinged), count)
            _time("ORM Session.get + commit, no ping", orm(plain), count)
            _time("Core select + commit, pool ping", core, count)
            _time("psycopg alone: select + commit", raw, count)
            _time("empty transaction, pool ping", empty(pinged), count)
            _time("empty transaction, no ping", empty(plain), count)
        finally:
            driver.close()
            pinged.dispose()
            plain.dispose()


if __name__ == "__main__":
    main(sys.argv[1:])
