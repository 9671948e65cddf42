"""The baselines every figure of ``make bench`` is divided by, measured in the same run, and the shared machinery.

- ``echo_rate``: a bare Flask JSON echo (``bench/echo.py``) under the shipped gunicorn config
  (``deploy/gunicorn.conf.py``), hit by ``post_rate``, the same client the portal figure uses.
- ``rq_noop_rate``: no-op jobs per second through rq's forking ``Worker`` as the bridge subclasses it
  (``BridgeWorker``: the same fork per job, JSON serializer, refusal check before the fork). The
  bridge's job allow-list admits the delivery function only; here a bench-only ``BridgeJob``
  subclass admits the no-op instead, in this process only: no worker of the apps runs it.

Also: ``Gunicorn`` (a process of the bench's own on a spare loopback port) and ``scratch_database``;
the private redis-server and the scratch databases are the test suite's (``tests/bridge/conftest.py``,
``tests/conftest.py``). Every process is started and stopped here; every address is 127.0.0.1.
"""

from __future__ import annotations

import http.client
import multiprocessing
import os
import queue
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.bridge.conftest import RedisServer, free_port
from tests.conftest import create_pg_database, drop_pg_database

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONFIG = ROOT / "deploy" / "gunicorn.conf.py"
NOOP = "bench.baselines.noop"


def module_main(module: Any, argv: list[str], *, runs: int = 1) -> None:
    """``python -m bench.<name>``: the module's own options and ``--runs``, then its rows, one JSON object a line."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=(module.__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=runs)
    module.add_arguments(parser)
    for row in module.run(parser.parse_args(argv)):
        print(json.dumps(row, ensure_ascii=False))


def median(values: list[float]) -> float:
    """The median, or 0.0 for no values."""
    return float(statistics.median(values)) if values else 0.0


# --- processes --------------------------------------------------------------------------------------------------


class Gunicorn:
    """One gunicorn master with the shipped config serving ``app`` on a spare loopback port."""

    def __init__(self, app: str, env: dict[str, str], log: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._output = open(log, "ab")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-c", str(GUNICORN_CONFIG), app],
            cwd=ROOT, stdout=self._output, stderr=subprocess.STDOUT,
            env={**env, "GUNICORN_BIND": f"127.0.0.1:{self.port}"})

    def wait_ready(self, path: str, timeout: float = 90) -> None:
        """Wait until ``path`` answers at all (any status)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.log}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
                conn.request("GET", path)
                conn.getresponse().read()
                conn.close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within {timeout:.0f} s; see {self.log}")

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL after the graceful timeout."""
        _stop(self.process, timeout=40)
        self._output.close()


def _stop(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """An empty PostgreSQL database (the test suite's, on ``TEST_PG_URL``), dropped afterwards whatever happened."""
    url = create_pg_database(prefix)
    try:
        yield url
    finally:
        drop_pg_database(url)


# --- CPU accounting -----------------------------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int | str) -> tuple[str, list[str]] | None:
    """The command name in ``/proc/<pid>/stat`` and the fields after it, or None for a process gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()


def process_cpu(pid: int | str) -> float:
    """CPU seconds (user + system) ``pid`` has used so far, 0.0 for a process gone."""
    stat = _stat(pid)
    return (int(stat[1][11]) + int(stat[1][12])) / _TICKS if stat else 0.0


def _processes(wanted: Callable[[str, int], bool]) -> list[int]:
    """The pids of the processes whose command name and parent pid ``wanted`` accepts."""
    found = []
    for entry in Path("/proc").iterdir():
        stat = _stat(entry.name) if entry.name.isdigit() else None
        if stat and wanted(stat[0], int(stat[1][1])):
            found.append(int(entry.name))
    return found


def children(pid: int) -> list[int]:
    """The pids of ``pid``'s children (a gunicorn master's workers)."""
    return _processes(lambda _name, parent: parent == pid)


def postgres_processes() -> list[int]:
    """The pids of the machine's PostgreSQL processes: backends, WAL writer, checkpointer and the rest."""
    return _processes(lambda name, _parent: name.startswith("postgres"))


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy so far (``/proc/stat``: user, nice, system, irq, softirq).

    Time the hypervisor gave to other machines (steal) is not this machine's work and is left out.
    """
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[:7])
    return (user + nice + system + irq + softirq) / _TICKS


class CpuMeter:
    """CPU used between ``start`` and ``stop``: by some processes (listed at the start), and by the machine."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self._pids = pids
        self.processes = self.machine = 0.0

    def start(self) -> None:
        """Take the processes and read their CPU and the machine's."""
        self._started = {pid: process_cpu(pid) for pid in self._pids()}
        self._machine = machine_busy()

    def stop(self) -> None:
        """CPU seconds used since ``start`` by the processes still there, and by the machine."""
        self.processes = sum(max(0.0, process_cpu(pid) - cpu) for pid, cpu in self._started.items())
        self.machine = machine_busy() - self._machine


@contextmanager
def metered(*meters: CpuMeter) -> Iterator[None]:
    """Run the block between the meters' ``start`` and ``stop``."""
    for meter in meters:
        meter.start()
    yield
    for meter in meters:
        meter.stop()


# --- the HTTP client ----------------------------------------------------------------------------------------------

Request = tuple[str, bytes, dict[str, str]]  # path, JSON body, headers


def _client(port: int, requests: list[Request], go: Any, out: Any) -> None:
    statuses: dict[int, int] = {}
    go.wait()
    for path, body, headers in requests:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
            response = conn.getresponse()
            response.read()
            statuses[response.status] = statuses.get(response.status, 0) + 1
        except OSError:
            statuses[0] = statuses.get(0, 0) + 1
        finally:
            conn.close()
    out.put((time.monotonic(), statuses))


def post_rate(port: int, requests: list[Request], *, concurrency: int = 8, threads: bool = False,
              ok: Callable[[int], bool] = lambda status: status < 300) -> tuple[float, dict[int, int]]:
    """POST every request to 127.0.0.1:``port`` from ``concurrency`` client processes; (successes/s, statuses).

    Processes, not threads, so the client's own Python does not cap the rate of a fast server;
    ``threads`` sends from as many threads of this process instead (the client the speed issue's
    first figures were taken with, kept to compare). A new connection per request, as the sync
    workers close each one. Everything to send (signed bodies included) is prepared before the clock
    starts.
    """
    go: Any
    out: Any
    workers: list[Any]
    slices = [requests[i::concurrency] for i in range(concurrency)]
    if threads:
        go, out = threading.Event(), queue.Queue()
        workers = [threading.Thread(target=_client, args=(port, s, go, out), daemon=True) for s in slices if s]
    else:
        ctx = multiprocessing.get_context("fork")
        go, out = ctx.Event(), ctx.Queue()
        workers = [ctx.Process(target=_client, args=(port, s, go, out), daemon=True) for s in slices if s]
    for w in workers:
        w.start()
    time.sleep(0.2)  # every client is waiting at the start line
    started = time.monotonic()
    go.set()
    ends, statuses = [], {}
    for _ in workers:
        end, counted = out.get(timeout=600)
        ends.append(end)
        for status, n in counted.items():
            statuses[status] = statuses.get(status, 0) + n
    for w in workers:
        w.join(timeout=10)
    elapsed = max(ends) - started
    good = sum(n for status, n in statuses.items() if ok(status))
    return good / elapsed if elapsed > 0 else 0.0, statuses


# --- baseline A: the echo -----------------------------------------------------------------------------------------


@contextmanager
def echo_server(directory: Path, env: dict[str, str] | None = None) -> Iterator[Gunicorn]:
    """``bench.echo:app`` under the shipped gunicorn config (the same worker count as the app it is compared to)."""
    server = Gunicorn("bench.echo:app", {**os.environ, **(env or {})}, directory / "echo.log")
    try:
        server.wait_ready("/")
        yield server
    finally:
        server.stop()


def echo_rate(server: Gunicorn, bodies: list[Request], *, concurrency: int = 8, threads: bool = False) -> float:
    """Echoed requests/s: the same bodies and headers as the figure it is compared to, sent to ``/echo``."""
    rate, statuses = post_rate(server.port, [("/echo", body, headers) for _, body, headers in bodies],
                               concurrency=concurrency, threads=threads)
    if set(statuses) != {200}:
        raise RuntimeError(f"the echo answered {statuses}")
    return rate


# --- baseline B: rq no-op jobs ------------------------------------------------------------------------------------


def noop() -> None:
    """The job of the rq baseline: nothing."""


def _noop_classes() -> tuple[type, type]:
    from bridge.worker import BridgeJob, BridgeWorker

    class NoopJob(BridgeJob):
        """A bridge job whose one allowed function is the no-op (bench only; the apps' workers refuse it)."""

        def refusal(self) -> str | None:
            return None if self.func_name == NOOP and not self._dependency_ids else "not the bench's no-op"

        def delivery_function(self) -> Callable[..., Any]:
            return noop

        def bridge_failure_callback(self) -> Callable[..., Any]:
            return lambda *args: None

    class NoopWorker(BridgeWorker):
        """The bridge's worker class, unchanged: fork per job, refusal check before the fork."""

    return NoopJob, NoopWorker


def rq_noop_rate(redis_url: str, jobs: int = 200, *, queue: str | None = None) -> float:
    """No-op jobs/s: ``jobs`` enqueued first, then one ``BridgeWorker``-class worker drains them with ``burst``.

    Timed from the start of ``work(burst=True)`` to its return, so the rate includes the worker's
    registration and one fork per job, as a real bridge worker pays.
    """
    import logging

    from redis import Redis
    from rq import Queue
    from rq.serializers import JSONSerializer

    job_class, worker_class = _noop_classes()
    connection = Redis.from_url(redis_url)
    name = queue or f"bench-noop-{secrets.token_hex(4)}"
    q = Queue(name, connection=connection, serializer=JSONSerializer, job_class=job_class)
    with connection.pipeline() as pipe:
        for _ in range(jobs):
            q.enqueue(NOOP, pipeline=pipe)
        pipe.execute()
    worker = worker_class([q], connection=connection, job_class=job_class, serializer=JSONSerializer,
                          name=f"{name}-worker")
    logging.getLogger("rq.worker").setLevel(logging.WARNING)
    started = time.monotonic()
    worker.work(burst=True, logging_level="WARNING")
    elapsed = time.monotonic() - started
    done = len(q.finished_job_registry)
    q.delete(delete_jobs=True)
    connection.close()
    if done != jobs:
        raise RuntimeError(f"the rq baseline finished {done} of {jobs} no-op jobs")
    return jobs / elapsed


def run(args: Any) -> list[dict[str, Any]]:
    """Baseline B on its own row, beside the intake figures (which divide by their own no-op rate with as many
    workers, ``bench/intake.py``): median no-op jobs/s over ``args.runs``."""
    import tempfile

    jobs = int(getattr(args, "noop_jobs", 200))
    with tempfile.TemporaryDirectory(prefix="juki-bench-rq-") as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            rates = [rq_noop_rate(server.url, jobs) for _ in range(int(getattr(args, "runs", 3)))]
        finally:
            server.stop()
    return [{"figure": f"baseline B: rq no-op jobs/s, BridgeWorker class, --burst over {jobs}", "value": median(rates),
             "unit": "jobs/s", "baseline": None, "baseline_value": None, "goal": "reference for the intake figures",
             "values": rates}]


def add_arguments(parser: Any) -> None:
    """The option of baseline B's own row."""
    parser.add_argument("--noop-jobs", type=int, default=200, help="no-op jobs per repetition of baseline B")
