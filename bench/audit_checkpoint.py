"""What a signed checkpoint after every commit costs: N operation-log appends, each in its own commit.

    .venv/bin/python -m bench.audit_checkpoint            # 500 commits, 3 runs, PostgreSQL on 127.0.0.1
    N=2000 RUNS=5 .venv/bin/python -m bench.audit_checkpoint

Each run appends and commits N rows on a fresh, migrated database twice: with the checkpoint
(sign with Ed25519, append a line, fsync) and with the checkpoint listeners removed. Prints the
median per commit of both and the difference.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("INSTANCE_PATH", tempfile.mkdtemp(prefix="bench-instance-"))
os.environ["APP_ENV"] = "test"


def _run(n: int, with_checkpoints: bool, workdir: Path) -> float:
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from backoffice import create_app
    from backoffice.extensions import db
    from backoffice.services import audit
    from core import audit as core_audit
    from core.audit import generate_checkpoint_keys
    from tests.conftest import SECRETS, create_pg_database, drop_pg_database, migrate

    url = create_pg_database("audit_bench")
    key = workdir / f"key-{time.monotonic_ns()}.pem"
    generate_checkpoint_keys(key, key.with_suffix(".pub.pem"))
    config = {"APP_ENV": "test", "BACKOFFICE_DATABASE_URL": url, **SECRETS,
              "AUDIT_CHECKPOINT_PATH": str(workdir / f"cp-{time.monotonic_ns()}.jsonl"),
              "AUDIT_CHECKPOINT_KEY_PATH": str(key), "AUDIT_CHECKPOINT_PUBLIC_KEY": str(key.with_suffix(".pub.pem"))}
    listeners = [("before_commit", core_audit._refuse_without_checkpoint),
                 ("after_commit", core_audit._checkpoint_after_commit)]
    try:
        migrate(create_app, config)
        app = create_app(config)
        if not with_checkpoints:
            for name, fn in listeners:
                event.remove(Session, name, fn)
        with app.test_request_context("/"):
            started = time.perf_counter()
            for i in range(n):
                audit.record("bench.append", target_type="thing", target_id=i, detail={"i": i})
                db.session.commit()
            elapsed = time.perf_counter() - started
            if with_checkpoints:
                assert audit.chain().verify(db.session).checkpoint_seq == n
        app.extensions["engine"].dispose()
        return elapsed
    finally:
        if not with_checkpoints:
            for name, fn in listeners:
                event.listen(Session, name, fn)
        drop_pg_database(url)


def main() -> None:
    """Print the medians."""
    n = int(os.environ.get("N", "500"))
    runs = int(os.environ.get("RUNS", "3"))
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as d:
        workdir = Path(d)
        with_cp = [_run(n, True, workdir) for _ in range(runs)]
        without = [_run(n, False, workdir) for _ in range(runs)]
    a, b = statistics.median(with_cp), statistics.median(without)
    print(f"{n} appends+commits, median of {runs}: with a checkpoint after each commit {a:.2f} s "
          f"({a / n * 1000:.2f} ms/commit), without {b:.2f} s ({b / n * 1000:.2f} ms/commit): "
          f"+{(a - b) / n * 1000:.2f} ms per commit")


if __name__ == "__main__":
    main()
