"""Bridge fixtures: a private redis-server per test, both apps on real PostgreSQL, shared keys, worker processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from core.envelope import KeyRegistry
from tests.conftest import SECRETS, _clean
from tests.leakscan import report
from tests.portal_fixtures import _portal, bridge_key_directory

ROOT = Path(__file__).resolve().parent.parent.parent
CODE = "032051"
BO_PARTY = f"muni:{CODE}"
INTAKE = f"intake:{CODE}"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server of the test's own on a spare loopback port, keeping nothing on disk."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """The redis-server command line: loopback only, nothing kept on disk."""
        return [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.directory), "--maxmemory-policy", "noeviction"]

    def start(self) -> None:
        """Start the server and wait until it answers; a server that exits at once (a bad config) is an error."""
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited at start: {self.command()[1:]}")
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def client(self) -> redis.Redis:
        """A new client."""
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def shutdown_nosave(self) -> None:
        """Stop the server losing everything it held, as after a crash without persistence."""
        try:
            self.client().shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # the server closes the connection as it goes
        assert self.process is not None
        self.process.wait(10)

    def shutdown_save(self) -> None:
        """Stop the server as an operator would for maintenance: it writes its data, and a restart loads it."""
        try:
            self.client().shutdown(save=True)
        except redis.ConnectionError:
            pass
        assert self.process is not None
        self.process.wait(10)

    def stop(self) -> None:
        """Stop the server if it runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server for one test (127.0.0.1 only), stopped afterwards."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


class RedisNode(RedisServer):
    """A redis-server of a Sentinel group: its own directory, optionally a replica of another, or a sentinel."""

    def __init__(self, directory: Path, *, replica_of: RedisServer | None = None,
                 sentinel_config: str | None = None, extra_args: tuple[str, ...] = (),
                 credentials: str = "") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        super().__init__(directory)
        self.replica_of = replica_of
        self.sentinel_config = sentinel_config
        self.extra_args = extra_args
        self.url = f"redis://{credentials}127.0.0.1:{self.port}/0"  # ``user:password@`` for the test's own client

    def command(self) -> list[str]:
        """A sentinel from its config file (which it rewrites), or a data node, a replica if it has a master."""
        if self.sentinel_config is not None:
            config = self.directory / "sentinel.conf"
            config.write_text(f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n{self.sentinel_config}")
            return [REDIS_SERVER, str(config), "--sentinel"]
        command = super().command()
        if self.replica_of is not None:
            command += ["--replicaof", "127.0.0.1", str(self.replica_of.port)]
        return command + list(self.extra_args)


class SentinelGroup:
    """A master, its replica and three sentinels (quorum 2, down after 1 s) on spare loopback ports."""

    SERVICE = "bridge"

    def __init__(self, directory: Path, *, data_args: tuple[str, ...] = (), data_credentials: str = "",
                 sentinel_settings: str = "", sentinel_credentials: str = "") -> None:
        """``data_args``: more redis-server arguments of the master and the replica (an ACL file, the replica's
        login to its master); ``sentinel_settings``: more sentinel configuration lines (users, logins)."""
        self.master = RedisNode(directory / "master", extra_args=data_args, credentials=data_credentials)
        self.replica = RedisNode(directory / "replica", replica_of=self.master, extra_args=data_args,
                                 credentials=data_credentials)
        settings = (f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.master.port} 2\n"
                    f"sentinel down-after-milliseconds {self.SERVICE} 1000\n"
                    f"sentinel failover-timeout {self.SERVICE} 5000\n"
                    f"sentinel parallel-syncs {self.SERVICE} 1\n{sentinel_settings}")
        self.sentinels = [RedisNode(directory / f"sentinel-{i}", sentinel_config=settings,
                                    credentials=sentinel_credentials) for i in range(3)]

    @property
    def addresses(self) -> str:
        """``REDIS_SENTINELS`` for the apps."""
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def start(self) -> None:
        """Start every node and wait until the replica is in sync and each sentinel knows the whole group."""
        for node in (self.master, self.replica, *self.sentinels):
            node.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.replica.client().info("replication").get("master_link_status") == "up" and all(
                    self._sees_group(s.client()) for s in self.sentinels):
                return
            time.sleep(0.2)
        raise RuntimeError("the Sentinel group did not form within 30 s")

    def _sees_group(self, sentinel: redis.Redis) -> bool:
        state = sentinel.sentinel_master(self.SERVICE)
        return int(state["num-other-sentinels"]) == 2 and int(state["num-slaves"]) == 1

    def master_port(self) -> int:
        """The port of the server the sentinels name as master now."""
        _, port = self.sentinels[0].client().sentinel_get_master_addr_by_name(self.SERVICE)
        return int(port)

    def node_at(self, port: int) -> RedisNode:
        """The data node listening on ``port``."""
        return next(node for node in (self.master, self.replica) if node.port == port)

    def stop(self) -> None:
        """Stop every node still running."""
        for node in (*self.sentinels, self.replica, self.master):
            if node.process is not None and node.process.poll() is None:
                os.kill(node.process.pid, signal.SIGCONT)  # a node a test stopped cannot be killed while stopped
            node.stop()


@pytest.fixture
def redis_sentinels(tmp_path: Path) -> Iterator[SentinelGroup]:
    """A Redis master, its replica and three sentinels of the test's own (127.0.0.1 only), stopped afterwards."""
    group = SentinelGroup(tmp_path / "sentinel-group")
    group.start()
    yield group
    group.stop()


@dataclass(frozen=True)
class Keys:
    """This run's key directory and the registries of the parties in it."""

    directory: Path
    portal: KeyRegistry
    backoffice: KeyRegistry


@pytest.fixture(scope="session")
def bridge_keys(session_dir: Path) -> Keys:
    """Keys of the portal and the back office, each registered with the other (the run's one key directory)."""
    directory = bridge_key_directory(session_dir)
    config = {"BRIDGE_KEY_DIRECTORY": str(directory)}
    return Keys(directory, KeyRegistry.from_config(config, party="portal"),
                KeyRegistry.from_config(config, party=BO_PARTY))


def _process_children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def kill_tree(process: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> None:
    """Signal a worker, its work-horse (which rq puts in a process group of its own) and their groups."""
    pids = [process.pid, *_process_children(process.pid)]
    for pid in pids:
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


class Bridged:
    """Both apps wired to one private Redis, with helpers to send, relay, run workers and count effects."""

    def __init__(self, portal_app: Any, bo_app: Any, redis_server: RedisServer, env: dict[str, str],
                 logs: Path) -> None:
        self.portal_app = portal_app
        self.bo_app = bo_app
        self.redis = redis_server
        self.env = env
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []

    # -- sending and relaying ----------------------------------------------------------------------

    def send(self, message_type: str, payloads: list[dict[str, Any]]) -> list[str]:
        """Write messages from the portal to the back office's intake, committed; returns their ids."""
        from bridge.outbox import add_message
        from portal.extensions import db
        from portal.models import Outbox

        with self.portal_app.app_context():
            binding = self.portal_app.extensions["bridge"]
            keys = binding.keys()
            ids = [add_message(db.session, Outbox, message_type=message_type, recipient=BO_PARTY, payload=payload,
                               keys=keys, sender="portal", queue=INTAKE).id for payload in payloads]
            db.session.commit()
        return ids

    def relay(self, app: Any, **kwargs: Any) -> int:
        """One relay pass over ``app``'s outbox (now = the real clock unless given), committed."""
        from bridge.relay import DeliveryPolicy, relay_once
        from core import clock

        with app.app_context():
            binding = app.extensions["bridge"]
            kwargs.setdefault("now", clock.utcnow())
            kwargs.setdefault("policy", DeliveryPolicy.from_settings(binding.settings()))
            connection = self.redis.client()
            try:
                count = relay_once(binding.session, binding.outbox, connection, **kwargs)
                binding.session.commit()
            finally:
                connection.close()
        return count

    def rows(self, app: Any, model_name: str) -> list[Any]:
        """Every row of one bridge table of ``app``."""
        with app.app_context():
            binding = app.extensions["bridge"]
            model = {"outbox": binding.outbox, "processed": binding.processed, "dead": binding.dead_letters}[model_name]
            rows = list(binding.session.execute(select(model)).scalars())
            binding.session.expunge_all()  # detached as loaded, so the values stay readable
            binding.session.rollback()
        return rows

    def effects(self) -> tuple[int, int]:
        """(rows, distinct messages) of the test effect in the back office: the count oracle."""
        from backoffice.extensions import db
        from backoffice.models import AuditLog

        with self.bo_app.app_context():
            total, distinct = db.session.execute(
                select(func.count(), func.count(func.distinct(AuditLog.target_id)))
                .where(AuditLog.action == "test.effect")
            ).one()
            db.session.rollback()
        return int(total), int(distinct)

    def audit_actions(self, app: Any, action: str) -> list[Any]:
        """Operation-log rows of ``action`` in ``app``'s database."""
        from sqlalchemy import text

        with app.app_context():
            binding = app.extensions["bridge"]
            rows = list(binding.session.execute(
                text("SELECT target_id, outcome, detail FROM audit_log WHERE action = :a ORDER BY seq"), {"a": action}))
            binding.session.rollback()
        return rows

    # -- processes ---------------------------------------------------------------------------------

    def start_worker(self, zone: str, queue: str, *, burst: bool = False, cli: bool = False,
                     env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a real worker process (test handlers registered, or the plain ``flask worker`` command).

        ``env`` overrides variables of this worker only (e.g. a database URL through a proxy).
        """
        if cli:
            app = "wsgi:portal_app" if zone == "portal" else "wsgi:backoffice_app"
            command = [sys.executable, "-m", "flask", "--app", app, "worker", "--queue", queue]
        else:
            command = [sys.executable, "-m", "tests.bridge.worker_main", zone, queue]
        if burst:
            command.append("--burst")
        log = open(self.logs / f"worker-{zone}-{queue.replace(':', '-')}-{len(self.processes)}.log", "wb")
        process = subprocess.Popen(command, cwd=ROOT, env={**self.env, **(env or {})}, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.processes.append(process)
        return process

    def run_burst(self, zone: str, queue: str, *, cli: bool = False, timeout: float = 60) -> None:
        """Run a burst worker until the queue is empty."""
        process = self.start_worker(zone, queue, burst=True, cli=cli)
        assert process.wait(timeout) == 0, self.worker_log(process)

    def worker_log(self, process: subprocess.Popen[bytes]) -> str:
        """The output of a worker started by ``start_worker``."""
        index = self.processes.index(process)
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob(f"worker-*-{index}.log")))

    def stop_all(self) -> None:
        """Kill every process this test started."""
        for process in self.processes:
            if process.poll() is None:
                kill_tree(process)
                process.wait(10)

    def wait_for(self, predicate: Any, *, timeout: float, interval: float = 0.25) -> float:
        """Poll ``predicate`` until true; returns the seconds it took, fails after ``timeout``."""
        started = time.monotonic()
        while not predicate():
            if time.monotonic() - started > timeout:
                logs = "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-40:])
                                 for p in sorted(self.logs.glob("*.log")))
                raise AssertionError(f"condition not met within {timeout} s; worker logs:\n{logs}")
            time.sleep(interval)
        return time.monotonic() - started


def _backoffice(url: str, jlis_config: dict[str, str], tmp_path: Path, session_dir: Path, **extra: Any) -> Any:
    from backoffice import create_app
    from backoffice.models import Base

    app = create_app({
        **jlis_config,
        "BACKOFFICE_DATABASE_URL": url,
        "AUDIT_CHECKPOINT_PATH": str(tmp_path / "bo-checkpoints.jsonl"),
        "AUDIT_CHECKPOINT_KEY_PATH": str(session_dir / "checkpoint-key.pem"),
        **SECRETS,
        **extra,
    })
    _clean(app.extensions["engine"], Base.metadata)
    return app


def queued_messages(client: Any, queue: str) -> list[str]:
    """The message ids the jobs waiting on ``queue`` carry, in order (a batch job's several, in its order)."""
    from rq.job import Job
    from rq.serializers import JSONSerializer

    ids: list[str] = []
    for job_id in client.lrange(f"rq:queue:{queue}", 0, -1):
        job = Job.fetch(job_id.decode(), connection=client, serializer=JSONSerializer)
        ids += [m for m, _ in job.args[0]] if job.func_name.endswith("deliver_batch") else [job.args[0]]
    return ids


BATCHES = {"BRIDGE_DELIVERY_BATCH": "10"}  # the production default: first publications share a job


@pytest.fixture
def bridge_settings(request: pytest.FixtureRequest) -> dict[str, str]:
    """Bridge settings for this test's apps and workers (``parametrize(..., indirect=True)`` to change them).

    One message per job unless a test asks for batches (``BATCHES``): most tests here follow one
    message's job by its id. The tests of batches, and the fault tests that kill what runs them, ask.
    """
    return {"BRIDGE_DELIVERY_BATCH": "1", **dict(getattr(request, "param", {}))}


@pytest.fixture
def bridged(portal_db_url: str, backoffice_db_url: str, jlis_config: dict[str, str], tmp_path: Path,
            session_dir: Path, bridge_keys: Keys, redis_server: RedisServer,
            bridge_settings: dict[str, str]) -> Iterator[Bridged]:
    """The portal and the back office on clean databases, one private Redis, and the env for worker processes."""
    from tests.bridge.handlers import register_test_handlers

    common = {"REDIS_URL": redis_server.url, "BRIDGE_KEY_DIRECTORY": str(bridge_keys.directory), **bridge_settings}
    portal_app = _portal(portal_db_url, jlis_config, tmp_path, session_dir, **common)
    bo_app = _backoffice(backoffice_db_url, jlis_config, tmp_path, session_dir, **common)
    register_test_handlers("portal")
    register_test_handlers("backoffice")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "BRIDGE_"))}
    env.update(SECRETS)
    env.update({k: v for k, v in jlis_config.items()})
    env.update(common)
    env.update(APP_ENV="test", PORTAL_DATABASE_URL=portal_db_url, BACKOFFICE_DATABASE_URL=backoffice_db_url,
               MUNICIPALITY_CODE=CODE, PYTHONUNBUFFERED="1")
    logs = tmp_path / "logs"
    logs.mkdir()
    harness = Bridged(portal_app, bo_app, redis_server, env, logs)
    yield harness
    harness.stop_all()
    try:
        findings = leak_scan(harness)
    finally:
        for app in (portal_app, bo_app):
            app.extensions["engine"].dispose()
    assert not findings, report(findings)


def leak_scan(harness: Bridged) -> list[Any]:
    """Personal data in plaintext in the test's Redis, the bridge tables of both apps, or the process logs."""
    from sqlalchemy import text

    from tests.leakscan import Scanner

    scanner = Scanner()
    findings = []
    process = harness.redis.process
    if process is not None and process.poll() is None:
        client = harness.redis.client()
        findings += scanner.redis(client, "redis")
        client.close()
    for name, app in (("portal", harness.portal_app), ("backoffice", harness.bo_app)):
        with app.app_context():
            session = app.extensions["bridge"].session
            for table in ("outbox", "dead_letter"):
                findings += scanner.rows(session.execute(text(f"SELECT * FROM {table}")), f"{name}.{table}")
            session.rollback()
    for path in sorted(harness.logs.glob("*.log")):
        findings += scanner.file(path)
    return findings


@pytest.fixture(scope="session")
def card_pool(jlis_config: dict[str, str], session_dir: Path) -> Any:
    """Cards of up to a few hundred residents of 花巻市, issued as the tests ask for them (once per process)."""
    from tests.bridge.pipeline import CardPool
    from tests.portal_fixtures import Cards

    directory = session_dir / "card-pool"
    directory.mkdir(exist_ok=True)
    return CardPool(Cards(jlis_config, directory))
