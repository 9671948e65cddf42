"""pytest plugin: every log record of the run goes to a file, scanned for personal data when the run ends.

Each test process (each xdist worker) writes its records and its registry of test data into one
directory; the process that ends the run (the xdist controller, or the only process) scans every
log against every registry and fails the run with a report if anything is found.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pytest

from tests.leakscan import REGISTRY, Registry, Scanner, report

ENV = "JUKI_LEAKSCAN_DIR"
_handler: logging.Handler | None = None


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
    registry = Registry()
    for path in sorted(directory.glob("registry-*.json")):
        registry.update(Registry.load(path))
    scanner = Scanner(registry)
    findings = [f for path in sorted(directory.glob("log-*.log")) for f in scanner.file(path)]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if findings:
        message = f"LEAK SCAN FAILED ({directory}): " + report(findings)
        if reporter is not None:
            reporter.write_line(message, red=True, bold=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif reporter is not None:
        size = sum(p.stat().st_size for p in directory.glob("log-*.log"))
        reporter.write_line(f"leak scan: {size // 1024} KiB of log lines, {len(registry.names)} names, "
                            f"{len(registry.addresses)} addresses, {len(registry.codes)} 住民票コード: nothing found")
