"""gunicorn settings for the portal and the back office in production (``make serve``; docs/operations.md, "Serving").

One file for both apps; each app is its own gunicorn master on its own address::

    GUNICORN_BIND=127.0.0.1:8000 gunicorn -c deploy/gunicorn.conf.py wsgi:portal_app
    GUNICORN_BIND=127.0.0.1:8001 gunicorn -c deploy/gunicorn.conf.py wsgi:backoffice_app

Environment: ``GUNICORN_BIND`` (default 127.0.0.1:8000; the TLS proxy connects here),
``WEB_CONCURRENCY`` (workers; default 2 × cores + 1), ``GUNICORN_TIMEOUT`` (30 s),
``GUNICORN_GRACEFUL_TIMEOUT`` (30 s), ``TRUSTED_PROXIES`` (the same list the apps read).
"""

from __future__ import annotations

import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"{name} must be a whole number of at least 1, got {value!r}")
    return int(value)


def _cores() -> int:
    # The cores this process may run on (a container's or cgroup's share), not the machine's count.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


bind = [b.strip() for b in os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",") if b.strip()]

# Sync workers, 2 × cores + 1 (5 on 2 cores). A request's time is mostly CPU in this process (RSA
# verification of card signatures, JSON schemas, envelope sealing, PDF drawing), which threads under
# the GIL would not overlap; the extra worker covers the waits on PostgreSQL and Redis. A sync worker
# serves one request at a time, so no code path needs to be thread-safe and a worker killed at the
# timeout takes only its own request down. Slow clients cannot hold workers: the TLS proxy in front
# buffers requests and responses (docs/operations.md, "Serving").
worker_class = "sync"
workers = _int("WEB_CONCURRENCY", 2 * _cores() + 1)

# Each worker builds its own app after the fork: no database pool or Redis connection is shared
# between processes (a socket used by two processes mixes their replies).
preload_app = False

# A worker silent this long is killed and replaced (its request gets a 502 from the proxy); the
# slowest legitimate request (a certificate PDF, a 100-row ledger export) takes well under a second.
timeout = _int("GUNICORN_TIMEOUT", 30)
# On SIGTERM the master stops accepting, lets requests in flight finish for this long, then kills.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = 2  # seconds; sync workers close after each response anyway

# Forwarded headers. The apps' own TrustedProxyFix (core/app.py) takes the client address from
# X-Forwarded-For, and only when the TCP peer is in TRUSTED_PROXIES; gunicorn never rewrites
# REMOTE_ADDR, so it must keep the peer's address for that check. gunicorn is given the same list
# (rather than its default "127.0.0.1,::1", which would trust any local process), but nothing to
# apply from it: no scheme header (the apps keep the scheme as the proxy connected, and SITE_ORIGIN
# never comes from a request; an https scheme would also turn on Flask-WTF's strict Referer check,
# which pages sent with Referrer-Policy: no-referrer cannot pass) and no SCRIPT_NAME/PATH_INFO
# rewrite (the back office's paths are its own). Headers whose names hold "_" are dropped.
forwarded_allow_ips = os.environ.get("TRUSTED_PROXIES", "").strip()  # empty: no peer is trusted
secure_scheme_headers: dict[str, str] = {}
forwarder_headers = ""
header_map = "drop"

# Logs to stdout/stderr for the supervisor (journald). The access log holds the peer, the time, the
# method, the PATH WITHOUT ITS QUERY STRING, the status, the size and the duration in microseconds:
# no query string, Referer, User-Agent, cookie or body, as a query string may carry what a resident
# typed (a search term, a name) and nothing personal may be logged (README, "leak scan").
accesslog = "-"
errorlog = "-"
loglevel = "info"
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(D)s'

# No runtime control socket (gunicorn >= 25 opens one at ~/.gunicorn/gunicorn.ctl unless told not to): the
# supervisor manages the masters by signals, a local interface that can change the worker count or stop the
# server is one more thing to guard, and the two apps' masters on one host would share its default path.
control_socket_disable = True

# The heartbeat file of each worker in memory, not on a disk that may stall under load.
# gunicorn makes each file there with mkstemp (private, unpredictable name).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
