"""The shipped Redis ACL (deploy/redis/users.acl) loaded into a real redis-server: each party's user can do its part of
the bridge and nothing an attacker holding its password would want (CONFIG, FLUSHALL, scripts, another party's queues).

The file is rendered as the deploy step does (``${NAME}`` placeholders: SHA-256 of each password, each app's key
prefix); the apps' relays and workers then run as separate processes, each with its own ``REDIS_URL`` credentials.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Callback, Retry

from bridge.queues import get_queue
from bridge.relay import DELIVER, ON_FAILURE
from tests.bridge.conftest import CODE, INTAKE, ROOT, RedisServer

ACL_FILE = ROOT / "deploy" / "redis" / "users.acl"
OTHER = "032069"


class AclRedisServer(RedisServer):
    """A private redis-server with the shipped ACL file loaded; ``url`` is the operator's (admin) user."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.passwords = {user: secrets.token_urlsafe(24) for user in ("admin", "portal", f"muni-{CODE}",
                                                                       f"muni-{OTHER}")}
        self.prefixes = {"portal": "juki-portal", f"muni-{CODE}": f"juki-{CODE}", f"muni-{OTHER}": f"juki-{OTHER}"}
        values = {f"{user.upper().replace('-', '_')}_REDIS_PASSWORD_SHA256": hashlib.sha256(pw.encode()).hexdigest()
                  for user, pw in self.passwords.items()}
        values.update({f"{user.upper().replace('-', '_')}_KEY_PREFIX": p for user, p in self.prefixes.items()})
        self.acl_file = directory / "users.acl"
        self.acl_file.write_text(string.Template(ACL_FILE.read_text()).substitute(values))
        self.url = self.url_for("admin")

    def url_for(self, user: str) -> str:
        """``redis://user:password@127.0.0.1:port/0`` for one of the file's users."""
        return f"redis://{user}:{self.passwords[user]}@127.0.0.1:{self.port}/0"

    def client_for(self, user: str) -> redis.Redis:
        """A client logged in as ``user``."""
        return redis.Redis.from_url(self.url_for(user), socket_timeout=5)

    def command(self) -> list[str]:
        """The server with the ACL file (it refuses to start if the file does not parse)."""
        return [*super().command(), "--aclfile", str(self.acl_file)]

    def denials(self) -> list[dict[str, Any]]:
        """What the ACL refused so far (``ACL LOG``), as the operator sees it."""
        return [dict(entry) for entry in self.client().acl_log()]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[AclRedisServer]:
    """This module's private redis-server runs with the shipped ACL (the ``bridged`` fixture uses it)."""
    server = AclRedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def _flask(bridged: Any, zone: str, *args: str, user: str) -> subprocess.CompletedProcess[str]:
    app = "wsgi:portal_app" if zone == "portal" else "wsgi:backoffice_app"
    env = {**bridged.env, "REDIS_URL": bridged.redis.url_for(user),
           "REDIS_KEY_PREFIX": bridged.redis.prefixes[user]}
    return subprocess.run([sys.executable, "-m", "flask", "--app", app, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_acl_file_has_a_user_per_party_and_the_default_user_off(redis_server):
    users = set(redis_server.client().acl_users())
    assert {"default", "admin", "portal", f"muni-{CODE}", f"muni-{OTHER}"} <= users
    assert "off" in redis_server.client().acl_getuser("default")["flags"]
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=redis_server.port, socket_timeout=5).ping()


def test_the_portals_user_can_enqueue_on_an_intake_queue_and_cannot_configure_flush_or_script(redis_server):
    portal = redis_server.client_for("portal")
    job_id = str(uuid.uuid4())
    get_queue(INTAKE, portal).enqueue_call(
        DELIVER, args=(job_id, "not.an.envelope"), job_id=job_id, description=f"deliver {job_id}", ttl=None,
        retry=Retry(max=1, interval=[5]), on_failure=Callback(ON_FAILURE), unique=True)
    assert redis_server.client().lrange(f"rq:queue:{INTAKE}", 0, -1) == [job_id.encode()]

    for command in (("CONFIG", "GET", "*"), ("FLUSHALL",), ("FLUSHDB",), ("EVAL", "return 1", "0"), ("KEYS", "*"),
                    ("SHUTDOWN", "NOSAVE"), ("ACL", "LIST"), ("FUNCTION", "LIST"),
                    ("MONITOR",), ("SCAN", "0"), ("RANDOMKEY",), ("PUBSUB", "CHANNELS"), ("CLIENT", "LIST")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            portal.execute_command(*command)
    # Another party's queues and keys: a back office's inbox from other cities, the queue to J-LIS, its nonces.
    for key in (f"rq:queue:muni:{CODE}", "rq:queue:outbound:jlis", f"juki-{CODE}:nonce:counter:x",
                f"rq:failed:{INTAKE}", f"rq:queue:{INTAKE}:intermediate", "bridge:epoch:muni:032051"):
        with pytest.raises(redis.exceptions.NoPermissionError):
            portal.rpush(key, "x")
    with pytest.raises(redis.exceptions.NoPermissionError):
        portal.publish(f"rq:pubsub:muni-{CODE}.intake-{CODE}.host.1", '{"command": "shutdown"}')
    assert redis_server.client().get("bridge:epoch:muni:032051") is None


def test_a_back_offices_user_cannot_take_another_citys_queue(redis_server):
    hanamaki = redis_server.client_for(f"muni-{CODE}")
    get_queue(f"muni:{OTHER}", hanamaki).enqueue_call(DELIVER, args=("m", "e"), job_id=str(uuid.uuid4()))
    for key in (f"rq:queue:intake:{OTHER}", f"rq:queue:muni:{OTHER}:intermediate", f"rq:wip:muni:{OTHER}",
                "rq:queue:status:intermediate", f"juki-{OTHER}:nonce:counter:x", "juki-portal:rl:login-ip:x"):
        with pytest.raises(redis.exceptions.NoPermissionError):
            hanamaki.lpop(key)
    with pytest.raises(redis.exceptions.NoPermissionError):
        hanamaki.execute_command("CONFIG", "SET", "appendonly", "no")


def test_one_delivery_and_its_ack_through_the_relays_and_workers_each_with_its_own_user(bridged):
    server: AclRedisServer = bridged.redis
    [message_id] = bridged.send("test.note", [{"n": 1}])
    # A worker that keeps running: its scheduler (a process of its own, Lua locks) brings a retried job back.
    # Each process as deployed: its party's Redis user and key prefix (the workers count their jobs under it).
    worker = bridged.start_worker("backoffice", INTAKE, env={"REDIS_URL": server.url_for(f"muni-{CODE}"),
                                                             "REDIS_KEY_PREFIX": server.prefixes[f"muni-{CODE}"]})
    retried = str(uuid.uuid4())
    get_queue(INTAKE, server.client_for("portal")).enqueue_call(
        DELIVER, args=[], job_id=retried, retry=Retry(max=1, interval=[1]), on_failure=Callback(ON_FAILURE))

    relay = _flask(bridged, "portal", "relay", "--once", user="portal")
    assert relay.returncode == 0 and "Published 1 message(s)." in relay.stdout, relay.stderr
    bridged.wait_for(lambda: bridged.effects() == (1, 1), timeout=30)
    # Failed, retried by the scheduler a second later, failed again: dead-lettered by the failure callback.
    bridged.wait_for(lambda: [d.message_id for d in bridged.rows(bridged.bo_app, "dead")] == [retried], timeout=30)
    assert worker.poll() is None, bridged.worker_log(worker)

    relay = _flask(bridged, "backoffice", "relay", "--once", user=f"muni-{CODE}")
    assert relay.returncode == 0 and "Published 1 message(s)." in relay.stdout, relay.stderr
    acks = bridged.start_worker("portal", "ack:portal", burst=True, cli=True,
                                env={"REDIS_URL": server.url_for("portal"),
                                     "REDIS_KEY_PREFIX": server.prefixes["portal"]})
    assert acks.wait(60) == 0, bridged.worker_log(acks)
    [row] = bridged.rows(bridged.portal_app, "outbox")
    assert (row.id, row.state) == (message_id, "acknowledged")
    assert server.denials() == [], "the ACL refused something the bridge needs"


def test_the_portals_rate_limits_and_nonces_work_under_its_user(bridged):
    from core.redisconn import within_limit
    from portal.services.cardauth import nonces

    server: AclRedisServer = bridged.redis
    app = bridged.portal_app
    app.config.update(REDIS_URL=server.url_for("portal"), REDIS_KEY_PREFIX=server.prefixes["portal"])
    app.extensions.pop("redis", None)
    with app.app_context():
        assert [within_limit("test", "subject", limit=2) for _ in range(3)] == [True, True, False]
        store = nonces("login")
        issued = store.issue()
        assert store.consume(issued.nonce)
    app.extensions.pop("redis", None)
    assert server.denials() == []


def test_redis_url_credentials_and_tls_reach_every_connection_the_apps_make(bridged):
    from core.redisconn import get_redis

    url = "rediss://portal:s3cret%2Fpw@redis.city.example:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/etc/ca.pem"
    app = bridged.portal_app
    app.config["REDIS_URL"] = url
    app.extensions.pop("redis", None)
    with app.app_context():
        clients = [get_redis(), app.extensions["bridge"].redis()]
    app.extensions.pop("redis", None)
    for client in clients:
        pool = client.connection_pool
        assert pool.connection_class is redis.SSLConnection
        assert (pool.connection_kwargs["username"], pool.connection_kwargs["password"]) == ("portal", "s3cret/pw")
        assert pool.connection_kwargs["ssl_ca_certs"] == "/etc/ca.pem"
        assert (pool.connection_kwargs["host"], pool.connection_kwargs["port"]) == ("redis.city.example", 6380)
