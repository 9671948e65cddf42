"""A real bridge worker for the process tests: the app built from the environment, plus the test handlers.

``python -m tests.bridge.worker_main portal|backoffice QUEUE [--burst]``
"""

from __future__ import annotations

import os
import sys
import time

from bridge.worker import run_worker
from tests.bridge.handlers import register_test_handlers


def main() -> None:
    """Build the zone's app, register the test handlers and work the queue."""
    zone, queue = sys.argv[1], sys.argv[2]
    if zone == "portal":
        from portal import create_app
    else:
        from backoffice import create_app
    app = create_app()
    if os.environ.get("TEST_WORKER_SLOW_SCHEDULER_START"):
        _slow_scheduler_start(float(os.environ["TEST_WORKER_SLOW_SCHEDULER_START"]))
    register_test_handlers(zone)
    with app.app_context():
        run_worker(app, queue, burst="--burst" in sys.argv[3:])


def _slow_scheduler_start(seconds: float) -> None:
    """Widen the moment between rq's "Listening on" and its own signal handlers, as a loaded machine does."""
    from bridge.worker import BridgeWorker

    start = BridgeWorker._start_scheduler

    def slow(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        print("scheduler starting", flush=True)
        time.sleep(seconds)
        return start(self, *args, **kwargs)

    BridgeWorker._start_scheduler = slow  # type: ignore[method-assign]


if __name__ == "__main__":
    main()
