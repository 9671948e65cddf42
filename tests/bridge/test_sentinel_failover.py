"""Redis Sentinel: the master is killed with -9 while residents submit, and a sentinel promotes its replica.

The group is a master, one replica and three sentinels (quorum 2, down after 1 s), each a real
redis-server on a spare loopback port; the portal (in this process), both relays and the workers
(``flask relay``, ``flask worker``: real processes) know only the sentinels (``REDIS_SENTINELS``).
Replication is asynchronous, so the new master may lack what the old one acknowledged last. The
test makes that certain: the replica is paused and cut off from the master until the portal's relay
has published a message the replica never got, and the master is killed then. The relay notices
the new master (its epoch key names another replication id) and republishes at once what waits for
an ack; the production republish timeout (300 s) is far beyond the bound.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from bridge.acks import ACK
from bridge.outbox import ACKNOWLEDGED
from bridge.relay import REDIS_MASTER_CHANGED, epoch_key, replication_id, run_relay
from core import clock
from tests.bridge.conftest import INTAKE, RedisServer, SentinelGroup, queued_messages
from tests.bridge.pipeline import all_delivered, case_receipts, consistency, oracle, residents, start_relay

RESIDENTS, EACH = 20, 4
APPLICATIONS = RESIDENTS * EACH
# docs/operations.md ("Redis Sentinel"): every application is a case within 120 s of the master's death.
BOUND_SECONDS = 120


@pytest.fixture
def redis_server(redis_sentinels: SentinelGroup) -> Iterator[RedisServer]:
    """The apps' Redis is the group's master (REDIS_URL names it, but with sentinels only its credentials count)."""
    yield redis_sentinels.master


@pytest.fixture
def bridge_settings(redis_sentinels: SentinelGroup) -> dict[str, str]:
    """Every app and process finds the master through the sentinels."""
    return {"REDIS_SENTINELS": redis_sentinels.addresses, "REDIS_SENTINEL_SERVICE": SentinelGroup.SERVICE}


def _outbox(app, since: dt.datetime | None = None) -> list:
    with app.app_context():
        binding = app.extensions["bridge"]
        query = select(binding.outbox)
        if since is not None:
            query = query.where(binding.outbox.published_at > since)
        rows = list(binding.session.execute(query).scalars())
        binding.session.expunge_all()
        binding.session.rollback()
    return rows


def _alerts(app) -> list:
    with app.app_context():
        binding = app.extensions["bridge"]
        rows = list(binding.session.execute(select(binding.alerts)).scalars())
        binding.session.expunge_all()
        binding.session.rollback()
    return rows


def test_master_killed_while_residents_submit_fails_over_and_every_application_is_one_case_within_the_bound(
        bridged, card_pool, redis_sentinels: SentinelGroup, tmp_path: Path):
    group = redis_sentinels
    people = residents(bridged, card_pool, RESIDENTS)  # signed in through the Sentinel master already
    relays = [start_relay(bridged, "portal"), start_relay(bridged, "backoffice")]
    workers = [bridged.start_worker("backoffice", INTAKE, cli=True) for _ in range(2)]
    workers += [bridged.start_worker("portal", queue, cli=True) for queue in ("status", "ack:portal")]

    statuses: list[int] = []
    lock = threading.Lock()

    deadline = time.monotonic() + 300

    def resident_submits(person) -> None:
        while len(person.receipts) < EACH:
            assert time.monotonic() < deadline, "the portal found no Redis master: residents still refused after 5 min"
            response = person.submit()
            with lock:
                statuses.append(response.status_code)
            if response.status_code == 503:  # no master for a moment: the resident tries again shortly
                time.sleep(0.5)
            elif response.status_code != 202:
                raise AssertionError(f"unexpected {response.status_code}: {response.get_data(as_text=True)[:300]}")
            time.sleep(0.1)

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(resident_submits, p) for p in people]
        bridged.wait_for(lambda: oracle(bridged)[1] >= 10, timeout=120, interval=0.1)

        # The intake workers stop taking jobs, so what the replica misses below is still waiting when the master
        # dies (taken and answered before, it would be lost to nobody, and nothing would need republishing).
        intake = workers[:2]
        for worker in intake:
            os.kill(worker.pid, signal.SIGSTOP)
        # The replica stops receiving: paused, and its replication link cut by the master.
        old_master = group.master.client()
        os.kill(group.replica.process.pid, signal.SIGSTOP)
        old_master.client_kill_filter(_type="replica")
        cut_at = clock.utcnow()
        bridged.wait_for(lambda: _outbox(bridged.portal_app, since=cut_at), timeout=30, interval=0.05)
        unreplicated = [row.id for row in _outbox(bridged.portal_app, since=cut_at)]
        # Each in its own job or in a batch's (the row names the batch).
        assert all(old_master.exists(f"rq:job:{row.job_id or row.id}")
                   for row in _outbox(bridged.portal_app, since=cut_at))
        group.master.process.kill()  # SIGKILL: whatever the replica did not get is lost
        killed_at = time.monotonic()
        group.master.process.wait(10)
        os.kill(group.replica.process.pid, signal.SIGCONT)
        for worker in intake:
            os.kill(worker.pid, signal.SIGCONT)
        applications, cases, _ = oracle(bridged)
        assert cases < APPLICATIONS, "the master was killed too late to leave anything in flight"

        bridged.wait_for(lambda: group.master_port() == group.replica.port, timeout=60, interval=0.2)
        promoted = time.monotonic() - killed_at
        bridged.redis = group.replica  # the leak scan reads the new master
        for future in futures:
            future.result(timeout=300)

    shown = [r for p in people for r in p.receipts]
    assert len(shown) == APPLICATIONS == len(set(shown))
    assert 500 not in statuses and set(statuses) <= {202, 503}

    bridged.wait_for(lambda: all_delivered(bridged, APPLICATIONS), timeout=BOUND_SECONDS + 60, interval=0.5)
    recovered = time.monotonic() - killed_at
    print(f"\nmaster killed with {cases} of {applications} applications made into cases and "
          f"{len(unreplicated)} published message(s) not replicated: replica promoted {promoted:.1f} s later, "
          f"all {APPLICATIONS} were cases {recovered:.1f} s after the kill")
    assert oracle(bridged) == (APPLICATIONS, APPLICATIONS, APPLICATIONS)  # one case per application, no extras
    assert sorted(case_receipts(bridged)) == sorted(shown)
    assert consistency(bridged) == dict.fromkeys(consistency(bridged), 0)
    assert recovered < BOUND_SECONDS

    # The lost publications were republished at once because the master changed, not after 300 s.
    [alert] = [a for a in _alerts(bridged.portal_app) if a.kind == REDIS_MASTER_CHANGED]
    assert alert.messages >= 1
    republished = {row.id: row.attempts for row in _outbox(bridged.portal_app) if row.id in unreplicated}
    print(f"unreplicated messages and their publications: {sorted(republished.values())}; alert: {alert.detail}")

    # Workers and relays went on with the new master: every application is acknowledged, no process died. An ack
    # lost with the old master comes when the job's heartbeat (or its stay in rq's intermediate list) runs out.
    bridged.wait_for(lambda: {r.state for r in _outbox(bridged.portal_app) if r.message_type != ACK} == {ACKNOWLEDGED},
                     timeout=BOUND_SECONDS + 60, interval=0.5)
    print(f"every application acknowledged {time.monotonic() - killed_at:.1f} s after the kill")
    assert all(process.poll() is None for process in relays + workers)
    new_master = group.replica.client()
    assert new_master.info("replication")["role"] == "master"
    assert new_master.llen(f"rq:queue:{INTAKE}") == 0


def test_after_a_failover_the_relay_republishes_what_waits_for_an_ack_once_and_alerts(bridged, redis_sentinels):
    group, app = redis_sentinels, bridged.portal_app
    sent = bridged.send("test.note", [{"n": i} for i in range(3)])
    assert run_relay(app, once=True) == 3
    assert run_relay(app, once=True) == 0 and _alerts(app) == []  # the same master: nothing again, no alert
    first = group.master.client()
    assert first.get(epoch_key("portal")).decode() == replication_id(first)

    group.sentinels[0].client().execute_command("SENTINEL", "FAILOVER", SentinelGroup.SERVICE)  # an operator's
    bridged.wait_for(lambda: group.master_port() == group.replica.port
                     and group.replica.client().info("replication")["role"] == "master", timeout=60)
    promoted = group.replica.client()
    # Everything was replicated here, so republishing finds the job (one batch of three) and enqueues none again.
    bridged.wait_for(lambda: run_relay(app, once=True) == 0 and bool(_alerts(app)), timeout=30, interval=0.5)
    [alert] = _alerts(app)
    assert (alert.kind, alert.messages) == (REDIS_MASTER_CHANGED, 3)
    assert promoted.llen(f"rq:queue:{INTAKE}") == 1
    assert sorted(queued_messages(promoted, INTAKE)) == sorted(sent)
    assert promoted.get(epoch_key("portal")).decode() == replication_id(promoted)
    assert run_relay(app, once=True) == 0 and len(_alerts(app)) == 1  # alerted once


class AclSentinelGroup(SentinelGroup):
    """A Sentinel group whose master and replica run the shipped ACL file, and whose sentinels have users too.

    The replica logs in to its master as ``replication``, the sentinels to the data nodes as ``sentinel``
    (the users Redis documents for them) and to each other as ``sentinel-peer``; a party logs in to the
    sentinels with the same user and password as to the master, allowed only to ask where the master is.
    """

    def __init__(self, directory: Path) -> None:
        from tests.bridge.test_redis_acl import AclRedisServer

        directory.mkdir(parents=True, exist_ok=True)
        rendered = AclRedisServer(directory)  # renders the shipped file with fresh passwords (never started)
        self.passwords = {**rendered.passwords, **{u: secrets.token_urlsafe(24) for u in
                                                   ("replication", "sentinel", "sentinel-peer")}}
        acl = directory / "users.acl"
        acl.write_text(rendered.acl_file.read_text().rstrip("\n") + "\n"
                       f"user replication on #{_sha(self.passwords['replication'])} +psync +replconf +ping\n"
                       f"user sentinel on #{_sha(self.passwords['sentinel'])} allchannels +multi +slaveof +ping "
                       "+exec +subscribe +config|rewrite +role +publish +info +client|setname +client|kill "
                       "+script|kill\n")
        portal = self.passwords["portal"]
        super().__init__(
            directory, data_args=("--aclfile", str(acl), "--masteruser", "replication", "--masterauth",
                                  self.passwords["replication"]),
            data_credentials=f"admin:{self.passwords['admin']}@",
            sentinel_settings=(f"sentinel auth-user {self.SERVICE} sentinel\n"
                               f"sentinel auth-pass {self.SERVICE} {self.passwords['sentinel']}\n"
                               "user default off\n"
                               f"user sentinel-peer on >{self.passwords['sentinel-peer']} allchannels +@all\n"
                               f"user portal on >{portal} -@all +@connection +sentinel|masters "
                               "+sentinel|get-master-addr-by-name\n"
                               "sentinel sentinel-user sentinel-peer\n"
                               f"sentinel sentinel-pass {self.passwords['sentinel-peer']}\n"),
            sentinel_credentials=f"sentinel-peer:{self.passwords['sentinel-peer']}@")


def _sha(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def test_a_party_logs_in_with_its_acl_user_to_the_sentinels_and_the_master_and_keeps_it_after_a_failover(tmp_path):
    from core.redisconn import connect

    group = AclSentinelGroup(tmp_path / "acl-group")
    try:
        group.start()
        config = {"REDIS_URL": f"redis://portal:{group.passwords['portal']}@redis.invalid:1/0",
                  "REDIS_SENTINELS": group.addresses, "REDIS_SENTINEL_SERVICE": SentinelGroup.SERVICE}
        portal = connect(config)
        assert portal.incr("juki-portal:rl:x") == 1
        with pytest.raises(redis.exceptions.NoPermissionError):
            portal.config_get("*")  # the portal's user on the master, not the operator's
        assert any(c["user"] == "portal" for c in group.master.client().client_list())
        wrong = connect({**config, "REDIS_URL": "redis://portal:wrong@redis.invalid:1/0"})
        with pytest.raises(redis.ConnectionError):  # the sentinels refuse it, so no master is named
            wrong.ping()

        group.sentinels[0].client().execute_command("SENTINEL", "FAILOVER", SentinelGroup.SERVICE)
        _wait_until(lambda: group.master_port() == group.replica.port
                     and group.replica.client().info("replication")["role"] == "master"
                     and group.master.client().info("replication")["role"] == "slave")
        _wait_until(lambda: _answers(portal))
        assert portal.connection_pool.get_master_address()[1] == group.replica.port
        assert int(portal.get("juki-portal:rl:x")) >= 2  # the old master's count went over, one more on the new
        with pytest.raises(redis.exceptions.NoPermissionError):
            portal.config_get("*")
        assert any(c["user"] == "portal" for c in group.replica.client().client_list())
    finally:
        group.stop()


def _answers(client) -> bool:
    try:
        return bool(client.incr("juki-portal:rl:x"))
    except redis.ConnectionError:
        return False


def _wait_until(predicate, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.2)


def test_rediss_gives_tls_to_the_sentinels_and_the_master_with_the_urls_options():
    from redis.connection import SSLConnection
    from redis.sentinel import SentinelManagedSSLConnection

    from core.redisconn import connect

    client = connect({"REDIS_URL": "rediss://portal:p%40ss@ignored:6380/2?ssl_ca_certs=/etc/ssl/city-ca.pem",
                      "REDIS_SENTINELS": "127.0.0.1:26379, 127.0.0.1:26380", "REDIS_SENTINEL_SERVICE": "bridge"})
    pool = client.connection_pool
    assert pool.connection_class is SentinelManagedSSLConnection
    assert {k: pool.connection_kwargs[k] for k in ("username", "password", "db", "ssl_ca_certs")} == {
        "username": "portal", "password": "p@ss", "db": 2, "ssl_ca_certs": "/etc/ssl/city-ca.pem"}
    assert "host" not in pool.connection_kwargs
    [first, second] = pool.sentinel_manager.sentinels
    assert first.connection_pool.connection_class is SSLConnection
    assert {k: first.connection_pool.connection_kwargs[k] for k in ("host", "port", "username", "password",
                                                                     "ssl_ca_certs")} == {
        "host": "127.0.0.1", "port": 26379, "username": "portal", "password": "p@ss",
        "ssl_ca_certs": "/etc/ssl/city-ca.pem"}
    assert second.connection_pool.connection_kwargs["port"] == 26380


@pytest.mark.parametrize(("settings", "named"), [
    ({"REDIS_SENTINELS": "127.0.0.1"}, "REDIS_SENTINELS"),
    ({"REDIS_SENTINELS": "127.0.0.1:x"}, "REDIS_SENTINELS"),
    ({"REDIS_SENTINELS": "127.0.0.1:26379,,"}, "REDIS_SENTINELS"),
    ({"REDIS_SENTINELS": ":26379"}, "REDIS_SENTINELS"),
    ({"REDIS_SENTINELS": "127.0.0.1:26379", "REDIS_SENTINEL_SERVICE": None}, "REDIS_SENTINEL_SERVICE"),
    ({"REDIS_URL": "unix:///run/redis.sock"}, "REDIS_URL"),
])
def test_unusable_sentinel_settings_stop_the_start_naming_the_setting(settings, named):
    from core import config
    from core.redisconn import connect

    values = {"REDIS_SENTINELS": "127.0.0.1:26379", "REDIS_SENTINEL_SERVICE": "bridge", **settings}
    with pytest.raises(config.ConfigError, match=named):
        config.load({"APP_ENV": "test", **values})
    with pytest.raises(config.ConfigError, match=named):
        connect(values)
