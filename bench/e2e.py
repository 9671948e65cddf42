"""End-to-end latency: a signed submission answered 202 by the portal → the case in the back office's inbox.

Everything production runs on the path is running, each the production command in its own process:
the portal under gunicorn with the shipped ``deploy/gunicorn.conf.py`` (``bench/portal.py``
``portal_stack``), the portal's relay (``flask --app wsgi:portal_app relay``), the intake workers
(``flask --app wsgi:backoffice_app worker --queue intake:<code>``, two by default: what
``docs/operations.md`` names per queue), and what carries the intake's answers back, so nothing is
republished for want of an ack: the back office's relay and the portal's workers on ``ack:portal`` and
``status``. One relay per app by default (``make relay``; ``--e2e-relays``). A private redis-server
and two scratch PostgreSQL databases (portal, back office), migrated as production does; real card
files of residents signed in through the API.

Per offered rate (5, 15, 30 applications/s by default, for ``--e2e-seconds`` each: 20, 20 and 60 s by
default, 60 s at 30/s being how long the goal asks that rate to hold): the
challenges are fetched and the certificate requests signed before the clock; then client processes
send the POSTs on a fixed schedule (request ``i`` is due at ``start + i / rate``, whatever the answers
before it: an open loop, so a slow portal delays no later send). The latency of one application is
from its *due* time (so a client that fell behind counts against the figure) to the moment the bench
first sees its case (``application_case`` row with the receipt number the 202 gave) in the back
office's database, which it polls every 25 ms over one connection: the moment the intake's commit
is visible, what a clerk's inbox would show, late by at most the polling interval. A case is looked
for from the moment its 202 reaches the client, which passes the receipt number on at once. All times are
``time.monotonic()`` of this machine, shared by the client processes and the poller. After the
window the bench waits at most ``--e2e-drain`` seconds for the last cases; a case not seen by then
counts with the time waited (a lower bound) and the row says how many. A fourth row per rate is the
p95 of the POST alone (due time to its answer), the portal's share of the latency; the next window starts
only when every earlier case is in (or after another ``--e2e-drain`` seconds).

``python -m bench.e2e --e2e-rates 5 --e2e-seconds 10`` prints the rows.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.baselines import ROOT, RedisServer, _stop, median, module_main, scratch_database
from bench.portal import CODE, Resident, _run, portal_stack

GOAL_SECONDS = 2.0
POLL_SECONDS = 0.025
MAX_APPLICATIONS = 3000  # per rate: rate × seconds is capped here


class Fleet:
    """The relays and workers of both apps, each the production ``flask`` command in its own process."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.processes: list[tuple[str, subprocess.Popen[bytes], Any]] = []

    def start(self, name: str, env: dict[str, str], *args: str) -> None:
        """Start ``flask <args>`` with its output in ``<name>.log``."""
        log = open(self.directory / f"{name}.log", "ab")
        process = subprocess.Popen([sys.executable, "-m", "flask", *args], cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        self.processes.append((name, process, log))

    def check(self) -> None:
        """Every process is still running (a relay or worker that exited would stall the pipeline)."""
        for name, process, _ in self.processes:
            if process.poll() is not None:
                tail = (self.directory / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {process.returncode}; its log ends:\n{tail}")

    def stop(self) -> None:
        """SIGTERM each (a worker finishes its job), SIGKILL after 15 s."""
        for _, process, log in reversed(self.processes):
            _stop(process, timeout=15)
            log.close()
        self.processes.clear()


def _paced_client(port: int, start: float, due: list[tuple[int, float, tuple[str, bytes, dict[str, str]]]],
                  answered: Any, out: Any) -> None:
    """Send each request at ``start + offset``; each receipt number to ``answered`` at once, then every result
    (index, status, receipt number, when the answer arrived)."""
    results = []
    for index, offset, (path, body, headers) in due:
        pause = start + offset - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        receipt = None
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
            response = conn.getresponse()
            data = response.read()
            status = response.status
            if status == 202:
                receipt = json.loads(data)["receipt_number"]
                answered.put(receipt)
        except OSError:
            status = 0
        finally:
            conn.close()
        results.append((index, status, receipt, time.monotonic()))
    out.put(results)


class Inbox:
    """Polls the back office's ``application_case`` for the receipt numbers awaited; notes when each is first seen."""

    def __init__(self, database_url: str) -> None:
        from sqlalchemy import create_engine

        self.engine = create_engine(database_url, pool_size=1)
        self.seen: dict[str, float] = {}
        self._awaited: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def await_receipts(self, receipts: list[str]) -> None:
        """Watch for these receipt numbers from now on."""
        with self._lock:
            self._awaited.update(r for r in receipts if r not in self.seen)

    def missing(self, receipts: list[str]) -> list[str]:
        """The receipt numbers whose case has not been seen yet."""
        with self._lock:
            return [r for r in receipts if r not in self.seen]

    def settle(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until every case awaited so far is in: a window starts on an empty pipeline."""
        deadline = time.monotonic() + timeout
        while self._awaited and time.monotonic() < deadline:
            time.sleep(0.1)

    def _poll(self) -> None:
        from sqlalchemy import text

        query = text("SELECT receipt_number FROM application_case WHERE receipt_number = ANY(:r)")
        with self.engine.connect() as conn:
            while not self._stop.wait(POLL_SECONDS):
                with self._lock:
                    awaited = list(self._awaited)
                if not awaited:
                    continue
                found = conn.execute(query, {"r": awaited}).scalars().all()
                conn.rollback()
                now = time.monotonic()
                with self._lock:
                    for receipt in found:
                        self.seen.setdefault(receipt, now)
                        self._awaited.discard(receipt)

    def close(self) -> None:
        """Stop polling and close the connection."""
        self._stop.set()
        self._thread.join(10)
        self.engine.dispose()


def _forward(answered: Any, inbox: Inbox) -> None:
    while (receipt := answered.get(timeout=600)) is not None:
        inbox.await_receipts([receipt])


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def offered_load(port: int, requests: list[tuple[str, bytes, dict[str, str]]], rate: float, inbox: Inbox, *,
                 clients: int, drain: float) -> dict[str, Any]:
    """Send ``requests`` at ``rate``/s (open loop) and time each from its due time to its case in the inbox."""
    ctx = multiprocessing.get_context("fork")
    out, answered = ctx.Queue(), ctx.Queue()
    due = [(i, i / rate, request) for i, request in enumerate(requests)]
    start = time.monotonic() + 1.0  # every client is forked and waiting before the first is due
    workers = [ctx.Process(target=_paced_client, args=(port, start, due[k::clients], answered, out), daemon=True)
               for k in range(clients) if due[k::clients]]
    # Each case is watched for from the moment its 202 arrives, while the others are still being sent.
    forwarder = threading.Thread(target=_forward, args=(answered, inbox), daemon=True)
    forwarder.start()
    for w in workers:
        w.start()
    results: list[tuple[int, int, str | None, float]] = []
    for _ in workers:
        results.extend(out.get(timeout=len(requests) / rate + 120))
    for w in workers:
        w.join(timeout=10)
    answered.put(None)
    forwarder.join(10)
    accepted = {receipt: start + i / rate for i, status, receipt, _ in results if status == 202 and receipt}
    inbox.await_receipts(list(accepted))
    deadline = time.monotonic() + drain
    while inbox.missing(list(accepted)) and time.monotonic() < deadline:
        time.sleep(0.1)
    waited = time.monotonic()
    latencies = [inbox.seen.get(receipt, waited) - due_at for receipt, due_at in accepted.items()]
    answers = [at - (start + i / rate) for i, _, _, at in results]
    return {"p50": _quantile(latencies, 0.5) if latencies else None, "answer_p95": _quantile(answers, 0.95),
            "p95": _quantile(latencies, 0.95) if latencies else None,
            "max": max(latencies) if latencies else None, "refused": len(requests) - len(accepted),
            "missing": len(inbox.missing(list(accepted)))}


def _start_pipeline(fleet: Fleet, portal_env: dict[str, str], bo_env: dict[str, str], *, relays: int,
                    intake_workers: int) -> None:
    for i in range(relays):
        fleet.start(f"portal-relay-{i}", portal_env, "--app", "wsgi:portal_app", "relay")
        fleet.start(f"backoffice-relay-{i}", bo_env, "--app", "wsgi:backoffice_app", "relay")
    for i in range(intake_workers):
        fleet.start(f"intake-worker-{i}", bo_env, "--app", "wsgi:backoffice_app", "worker", "--queue",
                    f"intake:{CODE}")
    for queue in ("ack:portal", "status"):
        fleet.start(f"portal-worker-{queue.replace(':', '-')}", portal_env, "--app", "wsgi:portal_app", "worker",
                    "--queue", queue)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {"rates": [float(r) for r in str(getattr(args, "e2e_rates", "5,15,30")).split(",")],
            "seconds": _per_rate(str(getattr(args, "e2e_seconds", DEFAULT_SECONDS)),
                                 str(getattr(args, "e2e_rates", "5,15,30")).split(",")),
            "drain": float(getattr(args, "e2e_drain", 60.0)),
            "intake_workers": int(getattr(args, "e2e_intake_workers", 2)),
            "relays": int(getattr(args, "e2e_relays", 1)),
            "clients": int(getattr(args, "e2e_clients", 16)),
            "residents": int(getattr(args, "e2e_residents", 8)),
            "runs": int(getattr(args, "runs", 3))}


DEFAULT_SECONDS = "20,20,60"  # per rate of the default rates


def _per_rate(seconds: str, rates: list[str]) -> dict[float, float]:
    """How long each rate is offered: one figure for all, or one per rate in the order of the rates."""
    values = [float(s) for s in seconds.split(",")]
    if len(values) == 1:
        values = values * len(rates)
    if len(values) != len(rates):
        raise ValueError(f"--e2e-seconds: one figure, or one per rate ({len(rates)}), not {len(values)}")
    return {float(rate): value for rate, value in zip(rates, values, strict=True)}


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """p50, p95 and max of the end-to-end latency per offered rate, medians over ``args.runs`` repetitions."""
    opts = _options(args)
    figures: dict[float, list[dict[str, Any]]] = {rate: [] for rate in opts["rates"]}
    with (tempfile.TemporaryDirectory(prefix="juki-bench-e2e-") as tmp, scratch_database("bench_portal") as portal_url,
          scratch_database("bench_backoffice") as bo_url):
        directory = Path(tmp)
        redis_server = RedisServer(directory)
        redis_server.start()
        fleet = Fleet(directory)
        inbox: Inbox | None = None
        try:
            with portal_stack(directory, portal_url, redis_server.url,
                              residents=opts["residents"]) as (server, env, cards):
                bo_env = {**env, "BACKOFFICE_DATABASE_URL": bo_url}
                _run(bo_env, "flask", "--app", "wsgi:backoffice_app", "db", "upgrade")
                _start_pipeline(fleet, env, bo_env, relays=opts["relays"], intake_workers=opts["intake_workers"])
                inbox = Inbox(bo_url)
                residents = [Resident(server.origin, card) for card in cards]
                # Untimed: every gunicorn worker, relay and intake worker loads its keys, anchors and CRLs.
                warm = [residents[i % len(residents)].signed_request() for i in range(20)]
                offered_load(server.port, warm, 5.0, inbox, clients=opts["clients"], drain=opts["drain"])
                for _ in range(opts["runs"]):
                    for rate in opts["rates"]:
                        fleet.check()
                        inbox.settle(opts["drain"])
                        count = max(1, min(MAX_APPLICATIONS, round(rate * opts["seconds"][rate])))
                        # A new sign-in per window: an access token lives 15 minutes, a run may be longer.
                        residents = [Resident(server.origin, card) for card in cards]
                        requests = [residents[i % len(residents)].signed_request() for i in range(count)]
                        figures[rate].append(offered_load(server.port, requests, rate, inbox,
                                                          clients=opts["clients"], drain=opts["drain"]))
                fleet.check()
        finally:
            if inbox is not None:
                inbox.close()
            fleet.stop()
            redis_server.stop()
    return rows(figures, opts)


def rows(figures: dict[float, list[dict[str, Any]]], opts: dict[str, Any]) -> list[dict[str, Any]]:
    """Per rate: the p95 row (goal ≤ 2 s), p50, max, and the p95 of the POST alone; medians over repetitions."""
    out = []
    setup = f"{opts['intake_workers']} intake worker(s)"
    for rate, reps in figures.items():
        refused = sum(r["refused"] for r in reps)
        missing = sum(r["missing"] for r in reps)
        trouble = "".join([f"; {refused} not answered 202" if refused else "",
                           f"; {missing} not in the inbox after the drain" if missing else ""])
        for stat in ("p95", "p50", "max"):
            values = [r[stat] for r in reps if r[stat] is not None]
            row = {"figure": f"e2e: submission -> case in the inbox, {stat}, {rate:g}/s offered for "
                             f"{opts['seconds'][rate]:g} s ({setup}){trouble}",
                   "value": round(median(values), 3) if values else None, "unit": "s", "baseline": None,
                   "baseline_value": None, "values": values,
                   "goal": f"value <= {GOAL_SECONDS:g}" if stat == "p95" else "informative"}
            if stat == "p95" and (refused or missing):
                row["holds"] = False
            out.append(row)
        answers = [r["answer_p95"] for r in reps]
        out.append({"figure": f"e2e: of which the POST answered (202 or not), p95, {rate:g}/s offered",
                    "value": round(median(answers), 3), "unit": "s", "baseline": None, "baseline_value": None,
                    "values": answers, "goal": "informative"})
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This module's options under ``make bench``."""
    group = parser.add_argument_group("e2e")
    group.add_argument("--e2e-rates", default="5,15,30", help="offered applications/s, comma separated")
    group.add_argument("--e2e-seconds", default=DEFAULT_SECONDS,
                       help="how long each rate is offered: one figure, or one per rate")
    group.add_argument("--e2e-drain", type=float, default=60.0, help="most seconds to wait for the last cases")
    group.add_argument("--e2e-intake-workers", type=int, default=2, help="intake worker processes")
    group.add_argument("--e2e-relays", type=int, default=1, help="relay processes of each app")
    group.add_argument("--e2e-clients", type=int, default=16, help="client processes sending on the schedule")
    group.add_argument("--e2e-residents", type=int, default=8, help="residents (cards) submitting")


if __name__ == "__main__":
    module_main(sys.modules[__name__], sys.argv[1:])
