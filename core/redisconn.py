"""One Redis client per app, from REDIS_URL; keys carry the app's prefix and never personal data."""

from __future__ import annotations

from typing import Any

import redis
from flask import Flask, current_app


def get_redis(app: Flask | None = None) -> redis.Redis:
    """The app's Redis client (created on first use)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    client: redis.Redis | None = app.extensions.get("redis")
    if client is None:
        url = app.config.get("REDIS_URL")
        if not url:
            raise RuntimeError("REDIS_URL is not configured")
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        app.extensions["redis"] = client
    return client


def key(*parts: Any) -> str:
    """A Redis key under this app's prefix."""
    return ":".join([current_app.config.get("REDIS_KEY_PREFIX", "juki"), *map(str, parts)])


def within_limit(scope: str, subject: str, *, limit: int, window_seconds: int = 60) -> bool:
    """Count one request of ``subject`` in a fixed window; False once ``limit`` is exceeded."""
    client = get_redis()
    name = key("rl", scope, subject)
    count = int(client.incr(name))
    if count == 1:
        # The window starts with the first request (EXPIRE NX would need Redis 7; the embedded one is 6.2).
        client.expire(name, window_seconds)
    return count <= limit



GLOBAL_SUBJECT = "*all*"  # never an address nor a certificate key


def within_global_limit(scope: str, *, limit: int, window_seconds: int = 60) -> bool:
    """The backstop of ``scope`` over all clients together: a botnet over many addresses is still bounded.

    Callers count it after the per-client limits, so a client refused for itself spends none of it.
    """
    return within_limit(scope, GLOBAL_SUBJECT, limit=limit, window_seconds=window_seconds)
