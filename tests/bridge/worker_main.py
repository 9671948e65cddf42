"""A real bridge worker for the process tests: the app built from the environment, plus the test handlers.

``python -m tests.bridge.worker_main portal|backoffice QUEUE [--burst]``
"""

from __future__ import annotations

import sys

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
    register_test_handlers(zone)
    with app.app_context():
        run_worker(app, queue, burst="--burst" in sys.argv[3:])


if __name__ == "__main__":
    main()
