"""pytest plugin: every log record of the run goes to a file, scanned for personal data when the run ends.

Each test process (each xdist worker) writes its records and its registry of test data into one
directory; tests that start processes of their own outside the bridge harness (``make run``, the
CLI, the peers) hand in those processes' output there too (``keep_log``). The process that ends
the run (the xdist controller, or the only process) scans every log against every registry and
fails the run with a report if anything is found.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.leakscan import REGISTRY, Finding, Registry, Scanner, report

ENV = "JUKI_LEAKSCAN_DIR"
_handler: logging.Handler | None = None
_kept = itertools.count(1)


def _worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def pytest_configure(config: pytest.Config) -> None:
    """Open this process's log file (the controller creates the run's directory; workers inherit it)."""
    global _handler
    if not hasattr(config, "workerinput") or ENV not in os.environ:
        os.environ[ENV] = tempfile.mkdtemp(prefix="juki-leakscan-")
    directory = Path(os.environ[ENV])
    _handler = logging.FileHandler(directory / f"log-{_worker_id()}.log", encoding="utf-8")
    _handler.setLevel(logging.DEBUG)
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(_handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    # The bridge's own logger stops propagating once a relay or worker configures it in this process.
    logging.getLogger("bridge").addHandler(_handler)


def keep_log(source: Path | str | bytes, label: str, directory: Path | None = None) -> Path:
    """Hand in a subprocess's output (its log file, or what was captured) for the scan at the end of the run."""
    directory = directory or Path(os.environ[ENV])
    target = directory / f"proc-{_worker_id()}-{next(_kept):04d}-{re.sub(r'[^A-Za-z0-9_.-]', '-', label)}.log"
    if isinstance(source, Path):
        if source.exists():
            shutil.copyfile(source, target)
        else:
            target.write_bytes(b"")
    else:
        target.write_bytes(source.encode() if isinstance(source, str) else source)
    return target


@dataclass
class RunScan:
    """What the scan at the end of the run looked at and found."""

    findings: list[Finding]
    registry: Registry
    log_bytes: int
    process_logs: int
    process_bytes: int
    redis_keys: int = 0

    def summary(self) -> str:
        """The line printed when nothing was found."""
        return (f"leak scan: {self.log_bytes // 1024} KiB of log lines, {self.process_logs} subprocess logs "
                f"({self.process_bytes // 1024} KiB), {self.redis_keys} keys of the test Redis, "
                f"{len(self.registry.names)} names, "
                f"{len(self.registry.addresses)} addresses, {len(self.registry.codes)} 住民票コード: nothing found")


def scan_run(directory: Path, redis_url: str | None = None) -> RunScan:
    """Scan every in-process and subprocess log in ``directory`` against every registry handed in there.

    With ``redis_url``, also whatever the tests left in the shared test Redis database.
    """
    registry = Registry()
    for path in sorted(directory.glob("registry-*.json")):
        registry.update(Registry.load(path))
    scanner = Scanner(registry)
    logs, processes = sorted(directory.glob("log-*.log")), sorted(directory.glob("proc-*.log"))
    findings = [f for path in logs + processes for f in scanner.file(path)]
    keys = 0
    if redis_url:
        import redis

        client = redis.Redis.from_url(redis_url, socket_timeout=10)
        try:
            keys = int(client.dbsize())
            findings += scanner.redis(client, "test redis")
        finally:
            client.close()
    return RunScan(findings, registry, sum(p.stat().st_size for p in logs), len(processes),
                   sum(p.stat().st_size for p in processes), keys)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Workers hand in their registry; the last process scans every log and fails the run on a finding."""
    if _handler is None:
        return
    directory = Path(os.environ[ENV])
    _handler.flush()
    REGISTRY.dump(directory / f"registry-{_worker_id()}.json")
    if hasattr(session.config, "workerinput"):
        return
    scan = scan_run(directory, os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if scan.findings:
        message = f"LEAK SCAN FAILED ({directory}): " + report(scan.findings)
        if reporter is not None:
            reporter.write_line(message, red=True, bold=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif reporter is not None:
        reporter.write_line(scan.summary())
