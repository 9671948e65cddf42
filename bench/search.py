"""Ledger search at 300,000 residents: p50 and p95 of every search shape the rule accepts, before and after.

    .venv/bin/python -m bench.search                          # 300,000 residents, 100 searches per shape
    .venv/bin/python -m bench.search --residents 50000 --n 50 --explain

One scratch PostgreSQL database on 127.0.0.1, dropped at the end: migrated to the revision before
``0014_search_prefix_indexes``, seeded with ``flask seed`` (the same command and code as
``bench/seed.sh``) and ``VACUUM ANALYZE``d as autovacuum would. Then ``--rounds`` times, each on its share
of the drawn searches:

- "before": the schema without the revision (a real downgrade from the second round on), each shape
  searched the way the service searched until then (count every match, then the page);
- "after": upgraded to head (the migration's time is reported) and analysed, each shape searched
  through ``ledger.search`` as it is now.

Alternating the two puts a change of the shared machine's load on both sides alike.

The criteria are drawn from the data (a random resident's first two folded name or kana characters, the
whole name of their 町字, their birth date, sex and code), so common surnames and large 町字 come up as
often as they do in the ledger. Each figure is reported next to the same shape's "before" from the same
run; the load average is printed because the machine is shared. ``--explain`` prints ``EXPLAIN (ANALYZE,
BUFFERS)`` of the count and the page of each shape's widest drawn search, after the indexes.
"""

from __future__ import annotations

import argparse
import enum
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("INSTANCE_PATH", tempfile.mkdtemp(prefix="bench-instance-"))
os.environ["APP_ENV"] = "test"

INDEX_REVISION = "0014_search_prefix_indexes"
GOAL_MS = 20.0
SHAPES = ("name+birth_date", "kana+birth_date", "address+birth_date", "name+address", "kana+address",
          "kana+address+sex", "name+address+birth_date", "juminhyo_code")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This module's options under ``make bench`` (``--residents`` there is the portal's card count)."""
    group = parser.add_argument_group("search")
    group.add_argument("--search-residents", type=int, default=300_000, help="residents seeded for the search bench")
    group.add_argument("--search-n", type=int, default=100, help="searches per shape and phase")
    group.add_argument("--search-seconds", type=float, default=60.0, help="most time per shape and phase")
    group.add_argument("--search-rounds", type=int, default=5, help="alternations of the schema before and after")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The bench's options (also what ``run`` expects)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=300_000)
    parser.add_argument("--n", type=int, default=100, help="searches per shape and phase")
    parser.add_argument("--seconds", type=float, default=60.0, help="most time per shape and phase")
    parser.add_argument("--rounds", type=int, default=5, help="alternations of the schema before and after")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN (ANALYZE, BUFFERS) after")
    return parser.parse_args(argv)


def _criteria(row: Any, machiaza_name: str, shape: str) -> Any:
    from backoffice.models import Sex
    from backoffice.services.ledger import SearchCriteria

    name, kana = row.name_search[:2], row.kana_search[:2]
    return {
        "name+birth_date": SearchCriteria(name=name, birth_date=row.birth_date),
        "kana+birth_date": SearchCriteria(name=kana, birth_date=row.birth_date),
        "address+birth_date": SearchCriteria(address=machiaza_name, birth_date=row.birth_date),
        "name+address": SearchCriteria(name=name, address=machiaza_name),
        "kana+address": SearchCriteria(name=kana, address=machiaza_name),
        "kana+address+sex": SearchCriteria(name=kana, address=machiaza_name, sex=Sex(row.sex)),
        "name+address+birth_date": SearchCriteria(name=name, address=machiaza_name, birth_date=row.birth_date),
        "juminhyo_code": SearchCriteria(juminhyo_code=row.juminhyo_code),
    }[shape]


def _draw(session: Any, municipality_code: str, n: int, rng: random.Random) -> list[Any]:
    """``n`` residents picked at random (by id), with the name of their 町字."""
    from sqlalchemy import func, select

    from backoffice.models import Resident
    from core.addressmaster import machiaza_by_code

    top = session.execute(select(func.max(Resident.id))).scalar_one()
    ids = rng.sample(range(1, top + 1), min(n, top))
    rows = session.execute(select(Resident.name_search, Resident.kana_search, Resident.birth_date, Resident.sex,
                                  Resident.juminhyo_code, Resident.machiaza_code).where(Resident.id.in_(ids))).all()
    return [(r, machiaza_by_code(municipality_code, r.machiaza_code).name) for r in rows]


def _old_search(session: Any, criteria: Any, size: int) -> int:
    """The search as the service ran it before issue 11: count every match, then read the first page."""
    from sqlalchemy import func, select

    from backoffice.services import ledger

    stmt = ledger._query(criteria)
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    session.execute(ledger.page_statement(stmt, 1, size)).scalars().all()
    return int(total)


def _new_search(session: Any, criteria: Any, size: int) -> int:
    from backoffice.services import ledger

    return ledger.search(session, criteria, audited=False).total


def _measure(session: Any, searches: list[Any], fn: Callable[[Any, Any, int], int], size: int,
             budget: float) -> tuple[list[float], list[tuple[int, Any]]]:
    """Milliseconds per search (after two untimed warm-up searches), and each search's count."""
    for criteria in searches[:2]:
        fn(session, criteria, size)
    times, counts = [], []
    deadline = time.monotonic() + budget
    for criteria in searches:
        started = time.perf_counter()
        counted = fn(session, criteria, size)
        times.append((time.perf_counter() - started) * 1000)
        counts.append((counted, criteria))
        session.rollback()
        if time.monotonic() > deadline:
            break
    return times, counts


def _p(times: list[float], q: int) -> float:
    return statistics.quantiles(times, n=100, method="inclusive")[q - 1] if len(times) > 1 else times[0]


def _explain(session: Any, statement: Any) -> str:
    compiled = statement.compile(dialect=session.bind.dialect)
    params = {k: v.value if isinstance(v, enum.Enum) else v for k, v in compiled.params.items()}  # as stored
    rows = session.connection().exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + str(compiled), params)
    return "\n".join(r[0] for r in rows)


def run(args: argparse.Namespace | None = None) -> list[dict[str, Any]]:
    """Seed, search before and after the prefix indexes, drop the database; rows for the bench table."""
    from core.audit import generate_checkpoint_keys
    from tests.conftest import SECRETS, create_pg_database, drop_pg_database

    args = args or parse_args([])
    if hasattr(args, "search_residents"):  # under ``make bench``: the harness's options, named for this module
        args = argparse.Namespace(residents=args.search_residents, n=args.search_n, seconds=args.search_seconds,
                                  rounds=args.search_rounds, explain=False)
    url = create_pg_database("searchbench")
    with tempfile.TemporaryDirectory(prefix="search-bench-") as d:
        key = Path(d) / "checkpoint-key.pem"
        generate_checkpoint_keys(key, key.with_suffix(".pub.pem"))
        config = {"APP_ENV": "test", "BACKOFFICE_DATABASE_URL": url, **SECRETS,
                  "AUDIT_CHECKPOINT_PATH": str(Path(d) / "checkpoints.jsonl"), "AUDIT_CHECKPOINT_KEY_PATH": str(key),
                  "AUDIT_CHECKPOINT_PUBLIC_KEY": str(key.with_suffix(".pub.pem"))}
        try:
            return _run(args, url, config)
        finally:
            drop_pg_database(url)


def _settle(admin: Any, text: Any) -> None:
    """After a schema change: fresh statistics, and the new index pages written out before anything is timed."""
    with admin.connect() as conn:
        conn.execute(text("ANALYZE resident"))
        if conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar():
            conn.execute(text("CHECKPOINT"))


def _apply(admin: Any, step: Callable[[], None]) -> None:
    """Run one migration function (``upgrade`` or ``downgrade`` of a revision module) in its own transaction."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    with admin.connect() as conn, conn.begin():
        with Operations.context(MigrationContext.configure(conn)):
            step()


def _run(args: argparse.Namespace, url: str, config: dict[str, Any]) -> list[dict[str, Any]]:
    from alembic.script import ScriptDirectory
    from flask_migrate import upgrade
    from sqlalchemy import create_engine, text

    from backoffice import create_app
    from backoffice.extensions import db, migrate
    from backoffice.services import ledger

    rng = random.Random(11)  # which residents to search for
    app = create_app(config)
    size = app.config["SEARCH_PAGE_SIZE"]
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with app.app_context():
            script = ScriptDirectory.from_config(migrate.get_config())
            index_migration = script.get_revision(INDEX_REVISION).module
            upgrade()  # the whole schema: the seed writes every column of today's ledger
        # Only the index revision's own steps are undone and redone (later revisions change the resident table too,
        # so the chain cannot go back past them with today's seed in it).
        _apply(admin, index_migration.downgrade)
        started = time.perf_counter()
        result = app.test_cli_runner().invoke(args=["seed", "--residents", str(args.residents), "--seed", "1"])
        seed_seconds = time.perf_counter() - started
        if result.exit_code != 0:
            raise RuntimeError(f"flask seed failed: {result.output}")
        print(result.output.strip())
        with admin.connect() as conn:
            conn.execute(text("VACUUM ANALYZE resident"))
        with app.test_request_context("/"):
            drawn = _draw(db.session, app.config["MUNICIPALITY_CODE"], args.n, rng)
            db.session.rollback()
        searches = {shape: [_criteria(row, town, shape) for row, town in drawn] for shape in SHAPES}
        before: dict[str, list[float]] = {s: [] for s in SHAPES}
        after: dict[str, list[float]] = {s: [] for s in SHAPES}
        widest: dict[str, tuple[int, Any]] = {}
        migrations: list[float] = []
        # Rounds alternate the two schemas (a real downgrade and upgrade of the revision), so a change in the
        # machine's load during the run falls on both sides alike.
        for r in range(args.rounds):
            part = {s: q[r::args.rounds] for s, q in searches.items()}
            if r:
                _apply(admin, index_migration.downgrade)
            _settle(admin, text)
            with app.test_request_context("/"):
                for shape, queries in part.items():
                    before[shape] += _measure(db.session, queries, _old_search, size, args.seconds / args.rounds)[0]
            started = time.perf_counter()
            _apply(admin, index_migration.upgrade)
            migrations.append(time.perf_counter() - started)
            _settle(admin, text)
            with app.test_request_context("/"):
                for shape, queries in part.items():
                    times, counts = _measure(db.session, queries, _new_search, size, args.seconds / args.rounds)
                    after[shape] += times
                    widest[shape] = max([*counts, widest.get(shape, (0, None))], key=lambda c: c[0])
        migration_seconds = statistics.median(migrations)
        with app.test_request_context("/"):
            if args.explain:
                for shape, (counted, criteria) in widest.items():
                    stmt = ledger._query(criteria)
                    print(f"\n### {shape} (widest drawn: {counted}{'+' if counted >= ledger.SEARCH_COUNT_CAP else ''} "
                          f"matches)\ncount:\n{_explain(db.session, ledger.count_statement(stmt))}\n"
                          f"page:\n{_explain(db.session, ledger.page_statement(stmt, 1, size))}")
                    db.session.rollback()
    finally:
        admin.dispose()
        app.extensions["engine"].dispose()
    rows: list[dict[str, Any]] = []
    baseline = f"same shape, schema before {INDEX_REVISION}, every match counted (same run)"
    for shape in SHAPES:
        for q in (50, 95):
            rows.append({"figure": f"ledger search p{q}, {shape}, {args.residents:,} residents (n={len(after[shape])})",
                         "value": round(_p(after[shape], q), 2), "unit": "ms", "baseline": baseline,
                         "baseline_value": round(_p(before[shape], q), 2),
                         "goal": f"value <= {GOAL_MS:g}" if q == 95 else ""})
    rows.append({"figure": f"migration {INDEX_REVISION} (median of {args.rounds}) at {args.residents:,} residents",
                 "value": round(migration_seconds, 2), "unit": "s", "baseline": None, "baseline_value": None,
                 "goal": ""})
    rows.append({"figure": f"flask seed --residents {args.residents} (before the search indexes)",
                 "value": round(seed_seconds, 1), "unit": "s", "baseline": None, "baseline_value": None, "goal": ""})
    return rows


def main() -> None:
    """Run and print one line per figure, with the ratio to its baseline."""
    args = parse_args()
    load = os.getloadavg()
    rows = run(args)
    print(f"\nload average at start {load[0]:.2f}, at end {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")
    for r in rows:
        ratio = f"  ratio {r['value'] / r['baseline_value']:.3f} of {r['baseline_value']:g} {r['unit']} before" \
            if r["baseline_value"] else ""
        print(f"{r['figure']}: {r['value']:g} {r['unit']}{ratio}  {r['goal']}")


if __name__ == "__main__":
    main()
