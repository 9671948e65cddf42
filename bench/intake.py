"""Intake rate: sealed ``application.submitted`` envelopes turned into cases by the production ``flask worker``.

Before anything is timed: scratch PostgreSQL databases (portal and back office) built by the
migrations, a private ``redis-server`` on a spare loopback port, simulated J-LIS cards, and N
applications (certificate requests and move-outs, alternating) signed by those cards and sealed by
the portal's bridge keys exactly as the portal's outbox does, then enqueued exactly as the relay
does with a backlog (``fill``: its passes of ``BRIDGE_RELAY_BATCH`` rows, ``BRIDGE_DELIVERY_BATCH``
applications to a job; set it to 1 for a job per application). Timed:
``flask --app wsgi:backoffice_app worker --queue intake:<code> --burst`` draining the backlog,
with 1, 2 and then 4 workers (the back office is emptied and the same envelopes enqueued again
between runs). Each worker process reports its peak RSS and its largest work-horse's
(``getrusage``; ``_rss_worker_main``), shown as two rows: the largest over all the runs.

The baseline, in the same run: rq no-op jobs/s through rq's plain forking ``Worker`` with the
bridge's fork and heartbeat settings and serializer. ``BridgeWorker`` itself cannot be the
baseline: its job allow-list runs only the bridge's delivery function, so a no-op job is refused
before it forks. A rate is the jobs divided by the time from the first job's start to the last
job's end (rq's own timestamps), so process start-up counts in neither figure; the intake rate counts
applications (cases), the no-op rate jobs.

``BENCH_PROFILE_DIR``: each intake work-horse dumps a cProfile of its job there (``bridge.worker``).

Run: ``.venv/bin/python -m bench.intake [--count 300] [--workers 1,2,4] [--runs 1] [--profile DIR]``.
Traffic goes to 127.0.0.1 only; every count and wait is bounded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CODE = "032051"
BO_PARTY = f"muni:{CODE}"
INTAKE = f"intake:{CODE}"
NOOP_QUEUE = "bench-noop"
GOAL = "ratio >= 0.5"  # of the rq no-op rate, same worker class family, same run


def noop() -> None:
    """The baseline job: nothing."""


def _rate(connection: Any, jobs: list[tuple[str, int]]) -> tuple[float, int]:
    """Messages/s from the first job's start to the last one's end (rq's timestamps), and how many finished.

    ``jobs``: each job's id and how many messages it carries (1 but for a batch of the relay's).
    """
    from rq.job import Job, JobStatus
    from rq.serializers import JSONSerializer

    carried = dict(jobs)
    fetched = [j for j in Job.fetch_many(list(carried), connection=connection, serializer=JSONSerializer)
               if j is not None]
    done = [j for j in fetched if j.get_status() == JobStatus.FINISHED and j.started_at and j.ended_at]
    messages = sum(carried[j.id] for j in done)
    if len(done) < 2:
        return 0.0, messages
    span = (max(j.ended_at for j in done) - min(j.started_at for j in done)).total_seconds()
    return messages / span, messages


def _noop_worker_main(redis_url: str, queue: str) -> None:
    """A burst worker of rq's plain forking class, with the bridge's fork and heartbeat settings."""
    from redis import Redis
    from rq import Worker
    from rq.serializers import JSONSerializer

    from bridge.settings import BridgeSettings

    settings = BridgeSettings.from_config({})
    Worker([queue], connection=Redis.from_url(redis_url), serializer=JSONSerializer,
           worker_ttl=settings.worker_ttl, job_monitoring_interval=settings.job_monitoring_interval,
           maintenance_interval=settings.maintenance_interval).work(burst=True, logging_level="WARNING")


def _rss_worker_main(out: str, flask_args: list[str]) -> None:
    """``flask <flask_args>`` in this very process, then its peak RSS and its largest child's, as JSON in ``out``.

    The production worker command, run by flask's own entry point (``python -m flask`` does the same);
    the process is the worker parent, so ``RUSAGE_SELF`` is the parent's high-water mark and
    ``RUSAGE_CHILDREN`` the largest of the children it reaped: the work-horses, one forked per job (a
    burst worker runs rq's scheduler in-process, not as a child). Linux counts ``ru_maxrss`` in KiB,
    pages shared with the parent (copy-on-write) included.
    """
    import resource

    from flask.cli import main as flask_main

    sys.argv = ["flask", *flask_args]
    try:
        flask_main()
    finally:
        Path(out).write_text(json.dumps({"parent_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                                         "horse_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))


def rq_noop_rate(redis_url: str, *, count: int = 300, workers: int = 1, timeout: float = 120) -> float:
    """No-op jobs/s through rq's forking ``Worker`` (``workers`` burst processes) against ``redis_url``."""
    from redis import Redis
    from rq import Queue
    from rq.serializers import JSONSerializer

    connection = Redis.from_url(redis_url)
    queue = Queue(NOOP_QUEUE, connection=connection, serializer=JSONSerializer)
    ids = [(queue.enqueue_call("bench.intake.noop", result_ttl=600).id, 1) for _ in range(count)]
    processes = [subprocess.Popen([sys.executable, "-m", "bench.intake", "--noop-worker", redis_url, NOOP_QUEUE],
                                  cwd=ROOT) for _ in range(workers)]
    for process in processes:
        process.wait(timeout)
    rate, done = _rate(connection, ids)
    connection.close()
    if done != count:
        raise RuntimeError(f"only {done} of {count} no-op jobs finished")
    return rate


class Scratch:
    """Scratch databases, a private Redis and keys; the sealed envelopes of ``count`` signed applications."""

    def __init__(self, directory: Path, count: int) -> None:
        from tests.bridge.conftest import RedisServer
        from tests.conftest import SECRETS, create_pg_database, migrate, write_checkpoint_keys
        from tests.portal_fixtures import bridge_key_directory

        self.directory = directory
        self.count = count
        write_checkpoint_keys(directory / "checkpoint-key.pem")
        self.jlis = self._jlis()
        self.redis = RedisServer(directory)
        self.redis.start()
        self.portal_url = create_pg_database("bench_portal")
        self.bo_url = create_pg_database("bench_backoffice")
        from backoffice import create_app as backoffice_app
        from portal import create_app as portal_app

        migrate(portal_app, {"APP_ENV": "test", "PORTAL_DATABASE_URL": self.portal_url, **SECRETS})
        migrate(backoffice_app, {"APP_ENV": "test", "BACKOFFICE_DATABASE_URL": self.bo_url, **SECRETS})
        keys = bridge_key_directory(directory)
        common = {**self.jlis, "REDIS_URL": self.redis.url, "BRIDGE_KEY_DIRECTORY": str(keys),
                  "AUDIT_CHECKPOINT_KEY_PATH": str(directory / "checkpoint-key.pem"), **SECRETS}
        self.portal = portal_app({**common, "PORTAL_DATABASE_URL": self.portal_url,
                                  "AUDIT_CHECKPOINT_PATH": str(directory / "portal-checkpoints.jsonl")})
        self.backoffice = backoffice_app({**common, "BACKOFFICE_DATABASE_URL": self.bo_url,
                                          "AUDIT_CHECKPOINT_PATH": str(directory / "bo-checkpoints.jsonl")})
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "BRIDGE_"))}
        self.env.update({**common, "APP_ENV": "test", "PORTAL_DATABASE_URL": self.portal_url,
                         "BACKOFFICE_DATABASE_URL": self.bo_url, "MUNICIPALITY_CODE": CODE, "PYTHONUNBUFFERED": "1",
                         "AUDIT_CHECKPOINT_PATH": str(directory / "bo-checkpoints.jsonl")})
        self.envelopes = self._seal(count)

    def _jlis(self) -> dict[str, str]:
        from bridge.peers.jlis.service import open_simulator, publish

        public = self.directory / "jlis" / "public"
        config = {"APP_ENV": "test", "JLIS_DIRECTORY": str(self.directory / "jlis"),
                  "JPKI_AUTH_ANCHORS": str(public / "jpki-sim-auth-anchors.pem"),
                  "JPKI_SIGN_ANCHORS": str(public / "jpki-sim-sign-anchors.pem"),
                  "JPKI_CRL_DIRECTORY": str(public / "crl"), "SITE_ORIGIN": "http://127.0.0.1:5000"}
        publish(config, open_simulator(config))
        return config

    def _seal(self, count: int) -> list[tuple[str, str]]:
        """(message id, envelope) of ``count`` applications: signed by real cards, sealed by the portal's outbox."""
        from bridge.outbox import add_message
        from core import clock
        from portal.extensions import db
        from portal.models import Outbox
        from tests.backoffice.case_fixtures import move, sign_part
        from tests.bridge.pipeline import CERTIFICATE as CERTIFICATE_APPLICATION
        from tests.portal_fixtures import Cards

        cards = Cards(self.jlis, self.directory / "cards")
        (self.directory / "cards").mkdir(exist_ok=True)
        people = [cards.issue(name=f"花巻　太郎{i}", birth_date=dt.date(1960 + i, 1 + i % 12, 1 + i % 28),
                              address=f"岩手県花巻市大通り一丁目{i + 1}番地") for i in range(max(1, count // 10))]
        payloads = []
        for i in range(count):
            kind = "certificate" if i % 2 == 0 else "move_out"
            card = people[i % len(people)]
            if kind == "certificate":
                application, move_id = {**CERTIFICATE_APPLICATION, "purpose": f"提出用{i}"}, None
            else:
                application, move_id = move([(f"花巻　太郎{i % len(people)}", f"{1960 + i % len(people)}-01-01")]), \
                    str(uuid.uuid4())
            jws, _ = sign_part(card, self.jlis, kind, application, move_id=move_id)
            payloads.append({"receiptNumber": f"B{secrets.token_hex(8)}", "kind": kind, "moveId": move_id,
                             "submittedAt": clock.utcnow().isoformat(), "signedApplication": jws})
        with self.portal.app_context():
            keys = self.portal.extensions["bridge"].keys()
            rows = [add_message(db.session, Outbox, message_type="application.submitted", recipient=BO_PARTY,
                                payload=p, keys=keys, sender="portal", queue=INTAKE) for p in payloads]
            sealed = [(r.id, r.envelope) for r in rows]
            db.session.rollback()
        return sealed

    def fill(self) -> list[tuple[str, int]]:
        """An empty back office and a flushed Redis, then every envelope enqueued as the relay does; (job, messages).

        As the relay's passes over a backlog: ``BRIDGE_RELAY_BATCH`` rows a pass, the first publications to the
        intake queue ``BRIDGE_DELIVERY_BATCH`` to a job (``bridge.relay.job_groups``; 1 gives a job per message).
        """
        from types import SimpleNamespace

        from backoffice.models import Base
        from bridge.outbox import PENDING
        from bridge.relay import DeliveryPolicy, job_groups, publish, publish_batch
        from bridge.settings import BridgeSettings
        from tests.conftest import _clean

        _clean(self.backoffice.extensions["engine"], Base.metadata)
        connection = self.redis.client()
        connection.flushall()
        settings = BridgeSettings.from_config({})
        policy = DeliveryPolicy.from_settings(settings)
        rows = [SimpleNamespace(id=m, envelope=e, queue=INTAKE, state=PENDING, job_id=None) for m, e in self.envelopes]
        jobs: list[tuple[str, int]] = []
        for start in range(0, len(rows), settings.relay_batch):
            for group in job_groups(rows[start:start + settings.relay_batch], policy.batch):
                if len(group) == 1:
                    publish(group[0].id, INTAKE, group[0].envelope, connection, policy)
                    jobs.append((group[0].id, 1))
                else:
                    jobs.append((publish_batch(INTAKE, [(r.id, r.envelope) for r in group], connection, policy),
                                 len(group)))
        connection.close()
        return jobs

    def drain(self, workers: int, *, timeout: float = 600,
              env: dict[str, str] | None = None) -> tuple[float, float, list[dict[str, int]]]:
        """Cases/s of ``workers`` burst ``flask worker`` processes draining the filled intake queue.

        Also the share of pg_locks samples (every 20 ms while they run) in which a worker waited for a lock
        another holds: the operation log's ``audit_head`` row, locked from a transaction's first append to
        its commit, is the one row every intake transaction updates. And each worker's peak RSS
        (``_rss_worker_main``): ``{"parent_kb", "horse_kb"}`` per worker.
        """
        import threading

        from sqlalchemy import create_engine, text

        ids = self.fill()
        logs = [open(self.directory / f"worker-{workers}-{i}.log", "wb") for i in range(workers)]
        rss = [self.directory / f"worker-{workers}-{i}.rss.json" for i in range(workers)]
        command = ["--app", "wsgi:backoffice_app", "worker", "--queue", INTAKE, "--burst"]
        processes = [subprocess.Popen([sys.executable, "-m", "bench.intake", "--rss-worker", str(out), *command],
                                      cwd=ROOT, env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT)
                     for log, out in zip(logs, rss, strict=True)]
        samples: list[int] = []
        done_event = threading.Event()

        def sample() -> None:
            engine = create_engine(self.bo_url)
            with engine.connect() as conn:
                while not done_event.wait(0.02):
                    samples.append(int(conn.execute(text(
                        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                        "WHERE NOT l.granted AND a.datname = current_database()")).scalar_one()))
                    conn.rollback()
            engine.dispose()

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        for process, log in zip(processes, logs, strict=True):
            process.wait(timeout)
            log.close()
        done_event.set()
        sampler.join(10)
        connection = self.redis.client()
        rate, done = _rate(connection, ids)
        connection.close()
        with self.backoffice.extensions["engine"].connect() as conn:
            cases = conn.execute(text("SELECT count(*) FROM application_case")).scalar_one()
        if done != self.count or cases != self.count:
            tail = (self.directory / f"worker-{workers}-0.log").read_text(errors="replace")[:4000]
            raise RuntimeError(f"{done} jobs finished and {cases} cases made of {self.count}; a worker's log:\n{tail}")
        peaks = [json.loads(out.read_text()) for out in rss]
        return rate, (sum(1 for n in samples if n) / len(samples) if samples else 0.0), peaks

    def close(self) -> None:
        """Stop the private Redis and drop the scratch databases."""
        from tests.conftest import drop_pg_database

        for app in (self.portal, self.backoffice):
            app.extensions["engine"].dispose()
        self.redis.stop()
        drop_pg_database(self.portal_url)
        drop_pg_database(self.bo_url)


def run(args: argparse.Namespace | None = None) -> list[dict[str, Any]]:
    """The intake rate with 1, 2 and 4 workers, each next to the rq no-op rate with as many workers; peak RSS.

    ``runs`` repetitions (the harness's ``--runs``), each measuring every worker count once, no-op first:
    the rows give the medians.
    """
    args = args or parse([])
    if hasattr(args, "intake_count"):  # under ``make bench``: the harness's options, named for this module
        args = argparse.Namespace(count=max(2, min(args.intake_count, 2000)), workers=args.intake_workers,
                                  profile=None, runs=getattr(args, "runs", 3))
    count = int(args.count)
    worker_counts = [int(w) for w in str(args.workers).split(",")]
    profile = args.profile
    measured: dict[int, dict[str, list[float]]] = {w: {"rate": [], "noop": [], "waiting": []} for w in worker_counts}
    peaks: list[dict[str, int]] = []
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as directory:
        scratch = Scratch(Path(directory), count)
        try:
            for _ in range(max(1, int(getattr(args, "runs", 1)))):
                for workers in worker_counts:
                    env = {"BENCH_PROFILE_DIR": str(Path(profile).resolve())} if profile and workers == 1 else None
                    measured[workers]["noop"].append(rq_noop_rate(scratch.redis.url, count=count, workers=workers))
                    rate, waiting, worker_peaks = scratch.drain(workers, env=env)
                    measured[workers]["rate"].append(rate)
                    measured[workers]["waiting"].append(waiting)
                    peaks.extend(worker_peaks)
        finally:
            scratch.close()
    rows: list[dict[str, Any]] = []
    for workers, m in measured.items():
        rows.append({"figure": f"intake: applications -> cases, {workers} worker(s)",
                     "value": round(statistics.median(m["rate"]), 1), "unit": "cases/s",
                     "baseline": f"rq no-op, {workers} forking worker(s)", "baseline_unit": "jobs/s",
                     "baseline_value": round(statistics.median(m["noop"]), 1), "goal": GOAL,
                     "values": m["rate"], "baseline_values": m["noop"]})
        rows.append({"figure": f"intake: time a worker waited for a row lock, {workers} worker(s)",
                     "value": round(100 * statistics.median(m["waiting"]), 1), "unit": "% of samples",
                     "baseline": None, "baseline_value": None, "goal": "informative (audit_head serialization)"})
    counts = ",".join(str(w) for w in worker_counts)
    for key, what in (("parent_kb", "worker parent"), ("horse_kb", "work-horse (one job)")):
        rows.append({"figure": f"intake: peak RSS of a {what}, largest of the runs with {counts} worker(s)",
                     "value": round(max(p[key] for p in peaks) / 1024, 1), "unit": "MiB", "baseline": None,
                     "baseline_value": None, "goal": "informative (ru_maxrss, shared pages included)"})
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This module's options under ``make bench`` (``--workers`` there is gunicorn's)."""
    group = parser.add_argument_group("intake")
    group.add_argument("--intake-count", type=int, default=300, help="applications in the backlog (at most 2000)")
    group.add_argument("--intake-workers", default="1,2,4", help="intake worker counts to measure, comma separated")


def parse(argv: list[str]) -> argparse.Namespace:
    """Options of the intake bench."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="applications in the backlog (at most 2000)")
    parser.add_argument("--workers", default="1,2,4", help="worker counts to measure, comma separated")
    parser.add_argument("--profile", help="a directory for cProfile dumps of the 1-worker run's jobs")
    parser.add_argument("--runs", type=int, default=1, help="repetitions (medians)")
    args = parser.parse_args(argv)
    args.count = max(2, min(args.count, 2000))
    return args


def main(argv: list[str]) -> None:
    """Print the rows (or run a no-op worker for the baseline)."""
    if argv[:1] == ["--noop-worker"]:
        _noop_worker_main(argv[1], argv[2])
        return
    if argv[:1] == ["--rss-worker"]:
        _rss_worker_main(argv[1], argv[2:])
        return
    load = os.getloadavg()
    for row in run(parse(argv)):
        if not row["baseline_value"]:
            print(f"{row['figure']}: {row['value']} {row['unit']}")
            continue
        ratio = row["value"] / row["baseline_value"]
        print(f"{row['figure']}: {row['value']} {row['unit']}; {row['baseline']}: {row['baseline_value']} jobs/s; "
              f"ratio {ratio:.2f} (goal {row['goal']})")
    print(f"load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    started = time.monotonic()
    main(sys.argv[1:])
    if sys.argv[1:2] not in (["--noop-worker"], ["--rss-worker"]):
        print(f"bench took {time.monotonic() - started:.0f} s")
