"""One Redis client per app, from REDIS_URL or Redis Sentinel; keys carry the app's prefix and never personal data.

``connect`` is the one place a Redis connection is built (the apps' clients, relays, rq workers and the
simulated peers all call it). With ``REDIS_SENTINELS`` set, the connection goes to whichever server the
sentinels name as master of ``REDIS_SENTINEL_SERVICE``, asked again on every new connection, so a client
follows a failover by reconnecting. ``REDIS_URL`` then gives only the credentials, database and TLS
options (its host and port are not used), for the master and the sentinels alike.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import redis
from flask import Flask, current_app
from redis.connection import SSLConnection, parse_url
from redis.driver_info import DriverInfo
from redis.sentinel import Sentinel

from core.config import ConfigError

# What REDIS_URL may carry besides the server's address, used for the sentinels as for the master.
_SENTINEL_OPTIONS = ("username", "password", "ssl_keyfile", "ssl_certfile", "ssl_cert_reqs", "ssl_ca_certs",
                     "ssl_ca_path", "ssl_check_hostname", "ssl_min_version", "ssl_ciphers")


def sentinel_addresses(value: str) -> list[tuple[str, int]]:
    """``host:port,host:port`` as pairs; ConfigError naming REDIS_SENTINELS for anything else."""
    addresses = []
    for item in (part.strip() for part in value.split(",")):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"REDIS_SENTINELS must be host:port separated by commas, got {item!r}")
        addresses.append((host.strip("[]"), int(port)))
    return addresses


def check_sentinel_settings(config: Mapping[str, Any]) -> None:
    """ConfigError naming the setting if the Sentinel settings cannot work (checked when the configuration loads)."""
    sentinel_addresses(str(config["REDIS_SENTINELS"]))
    if not config.get("REDIS_SENTINEL_SERVICE"):
        raise ConfigError("REDIS_SENTINEL_SERVICE (the master's name) must be set with REDIS_SENTINELS")
    url = config.get("REDIS_URL")
    if url and not str(url).startswith(("redis://", "rediss://")):
        raise ConfigError("REDIS_URL must be redis:// or rediss:// with REDIS_SENTINELS, not a Unix socket")


@functools.cache
def _driver_info() -> DriverInfo:
    """What every connection tells the server of its library (CLIENT SETINFO), worked out once per process.

    redis-py otherwise reads its own version from the installed package's metadata for every new
    connection (about 2 ms), and a forked work-horse opens new connections for every job.
    """
    return DriverInfo()


def connect(config: Mapping[str, Any], *, socket_timeout: float = 5, socket_connect_timeout: float = 5) -> redis.Redis:
    """A new client of the configured Redis: REDIS_URL as given, or the master the sentinels name.

    A Sentinel client asks the sentinels for the master's address whenever it opens a connection;
    after a failover the old connections fail (ConnectionError, or ReadOnlyError from a demoted master,
    which redis-py turns into a ConnectionError), and the next attempt reaches the new master.
    """
    url = config.get("REDIS_URL")
    sentinels = config.get("REDIS_SENTINELS")
    if not sentinels:
        if not url:
            raise RuntimeError("REDIS_URL is not configured")
        return redis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=socket_connect_timeout,
                                    driver_info=_driver_info())
    check_sentinel_settings(config)
    options = parse_url(url) if url else {}
    tls = options.pop("connection_class", None) is SSLConnection
    for name in ("host", "port", "path"):
        options.pop(name, None)
    timeouts: dict[str, Any] = {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_connect_timeout}
    sentinel_options = {name: options[name] for name in _SENTINEL_OPTIONS if name in options}
    ssl = {"ssl": True} if tls else {}
    manager = Sentinel(sentinel_addresses(str(sentinels)), sentinel_kwargs={**sentinel_options, **timeouts, **ssl})
    master: redis.Redis = manager.master_for(str(config["REDIS_SENTINEL_SERVICE"]), redis_class=redis.Redis, **options,
                                             **timeouts, **ssl, driver_info=_driver_info())
    return master


def get_redis(app: Flask | None = None) -> redis.Redis:
    """The app's Redis client (created on first use)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    client: redis.Redis | None = app.extensions.get("redis")
    if client is None:
        client = connect(app.config)
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


def first_in_window(scope: str, subject: str, *, window_seconds: int = 60) -> bool:
    """True for the first call of ``subject`` in ``scope`` in a window, False for the rest of it (one SET NX EX).

    For what should happen once a window however often it is asked, such as logging a refusal of a flood.
    """
    return bool(get_redis().set(key("once", scope, subject), 1, nx=True, ex=window_seconds))


GLOBAL_SUBJECT = "*all*"  # never an address nor a certificate key


def within_global_limit(scope: str, *, limit: int, window_seconds: int = 60) -> bool:
    """The backstop of ``scope`` over all clients together: a botnet over many addresses is still bounded.

    Callers count it after the per-client limits, so a client refused for itself spends none of it.
    """
    return within_limit(scope, GLOBAL_SUBJECT, limit=limit, window_seconds=window_seconds)
