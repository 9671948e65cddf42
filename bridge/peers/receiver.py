"""The receiving end of a simulated outside party: verify, store once, acknowledge, and list what arrived.

Each peer (the prefecture server, J-LIS, the city's departments, the stand-in municipality) is a
``PeerSpec`` run by a ``PeerReceiver``. The back office's relay puts ``bridge.jobs.deliver.deliver
(message id, envelope)`` on ``outbound:<peer>``; a peer worker (``python -m bridge.peers.<name>
worker``) takes those jobs with rq's JSON serializer and runs them here instead, outside any Flask
app, as a real outside party would:

- the envelope is opened with ``core.envelope.open_envelope`` under the peer's own keys: an
  unknown sender, another recipient, a bad signature or ciphertext, a type the peer does not take
  or a sender that is not a back office is refused and recorded in the ``refused`` table, and
  nothing is stored;
- the payload is validated against its type's schema in ``bridge.messages``, as the apps do: a
  payload it refuses is recorded in the ``refused`` table (``schema_invalid``, the detail naming
  the JSON path, never a value), is not acknowledged, and nothing is stored;
- an accepted message is inserted into the peer's own SQLite file under its message id, with the
  peer's effect (J-LIS: revoke the certificate) in the same transaction, so a second delivery
  changes nothing;
- every accepted delivery, the duplicates too, is acknowledged with an ``ack`` sealed to the sender
  and enqueued on ``ack:<sender>`` exactly as the relay publishes, so the back office's own worker
  marks its outbox row acknowledged. A lost ack is replaced when the sender republishes.

Logs and errors name ids, types and reasons only; item values stay in the peer's database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import socket
import sqlite3
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import redis
from rq import Callback, Retry
from rq.job import Job
from rq.serializers import JSONSerializer

from bridge import messages
from bridge.acks import ACK, ack_payload
from bridge.handlers import PermanentFailure
from bridge.queues import QueueNames, get_queue
from bridge.relay import DELIVER, ON_FAILURE, DeliveryPolicy
from bridge.settings import BridgeSettings, configure_logging
from bridge.worker import BridgeJob, BridgeWorker
from core import clock
from core import config as core_config
from core.envelope import (
    EnvelopeRefused,
    KeyRegistry,
    Opened,
    Sealed,
    import_public_key,
    key_directory,
    open_envelope,
    peek_header,
    seal,
    validate_party,
)
from core.redisconn import connect

APPLIED, DUPLICATE, REFUSED, DEAD_LETTER = "applied", "duplicate", "refused", "dead_letter"
RETRIES_EXHAUSTED = "retries_exhausted"
SCHEMA_INVALID = "schema_invalid"
JST = dt.timezone(dt.timedelta(hours=9), "JST")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
log = logging.getLogger("bridge.peers")

Check = Callable[[Opened], None]
Effect = Callable[[Opened, "PeerConfig"], None]

SCHEMA = """
CREATE TABLE IF NOT EXISTS received (
    message_id   TEXT PRIMARY KEY,  -- one row per message, however often it is delivered
    party        TEXT NOT NULL,     -- which of this peer's parties it was addressed to
    message_type TEXT NOT NULL,
    sender       TEXT NOT NULL,
    created_at   TEXT NOT NULL,     -- as the sender signed it (ISO 8601, UTC)
    received_at  TEXT NOT NULL,
    items        TEXT NOT NULL,     -- JSON list of the item names received
    payload      TEXT NOT NULL      -- JSON of the verified payload, values included
);
CREATE INDEX IF NOT EXISTS ix_received_received_at ON received (received_at);
CREATE TABLE IF NOT EXISTS refused (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id     TEXT NOT NULL,
    party          TEXT,
    claimed_sender TEXT,            -- as the unverified header claims: a refused message was never verified
    claimed_type   TEXT,
    reason         TEXT NOT NULL,
    detail         TEXT NOT NULL,   -- reasons and error types only, never item values
    queue          TEXT NOT NULL,
    refused_at     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_refused_message_id ON refused (message_id);
"""


class PeerNotAllowed(RuntimeError):
    """The simulated peers stand in for outside parties; production talks to the real ones."""


class PeerDeliveryError(Exception):
    """A delivery failed in a way a retry may cure; the message names only the error type and the id."""


# -- configuration ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerConfig:
    """Where a peer keeps its messages and keys, and the settings its worker runs with."""

    app_env: str
    database: Path
    key_directory: Path
    redis_url: str | None
    settings: BridgeSettings
    values: Mapping[str, Any]  # the whole configuration: the J-LIS peer reads its JLIS_* and JPKI_* paths here

    @classmethod
    def load(cls, name: str) -> PeerConfig:
        """Read the configuration from the environment, as the apps do; refused in production.

        The database is ``PEER_<NAME>_DATABASE``, else ``<PEERS_DIRECTORY>/<name>.db``, else
        ``<INSTANCE_PATH>/peers/<name>.db``; the keys are in ``PEER_KEY_DIRECTORY``, else the
        bridge's shared key directory (``BRIDGE_KEY_DIRECTORY``, else ``instance/keys``).
        """
        if os.environ.get("APP_ENV") == "production":
            raise PeerNotAllowed("the simulated bridge peers are refused when APP_ENV=production")
        values = core_config.load()
        database = os.environ.get(f"PEER_{name.upper()}_DATABASE")
        if not database:
            folder = os.environ.get("PEERS_DIRECTORY") or str(Path(values["INSTANCE_PATH"]) / "peers")
            database = str(Path(folder) / f"{name}.db")
        keys = os.environ.get("PEER_KEY_DIRECTORY")
        return cls(app_env=values["APP_ENV"], database=Path(database),
                   key_directory=Path(keys) if keys else key_directory(values), redis_url=values.get("REDIS_URL"),
                   settings=BridgeSettings.from_config(values), values=values)


@dataclass(frozen=True)
class PeerSpec:
    """What one peer is: its parties, the message types it takes (each defined in ``bridge.messages``), its effect."""

    name: str
    title: str
    parties: tuple[str, ...]
    accepted_types: frozenset[str]
    check: Check | None = None  # checks beyond the schema, before anything is stored (raise PermanentFailure)
    effect: Effect | None = None  # what the peer does with a new message, inside the storing transaction
    sender_kinds: tuple[str, ...] = ("muni:",)  # only back offices send to peers

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"a peer name is a lower-case word: {self.name!r}")
        if not self.parties or not all(validate_party(p).startswith("peer:") for p in self.parties):
            raise ValueError("a peer speaks as one or more peer:* parties")
        if undefined := sorted(t for t in self.accepted_types if not messages.is_defined(t)):
            raise ValueError(f"{', '.join(undefined)} has no schema in bridge.messages: define it there first")

    def queues(self) -> tuple[str, ...]:
        """The ``outbound:<peer>`` queues this peer's worker consumes, one per party."""
        return tuple(QueueNames.outbound(party) for party in self.parties)


# -- the peer's own database -----------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One message a peer accepted."""

    message_id: str
    party: str
    message_type: str
    sender: str
    created_at: dt.datetime
    received_at: dt.datetime
    items: tuple[str, ...]
    payload: dict[str, Any]


@dataclass(frozen=True)
class Refusal:
    """One delivery a peer refused or could not apply."""

    message_id: str
    party: str | None
    claimed_sender: str | None
    claimed_type: str | None
    reason: str
    detail: str
    queue: str
    refused_at: dt.datetime


class PeerStore:
    """The peer's SQLite file: what it received (once per message id) and what it refused."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        if not self.path.exists():
            # The file holds personal data: readable by this account only, from the first byte.
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        connection = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA busy_timeout=10000")
        connection.executescript(SCHEMA)
        return connection

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE takes the write lock at once, so two workers queue up here."""
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            connection.close()

    def insert(self, connection: sqlite3.Connection, *, party: str, message: Opened, received_at: dt.datetime) -> bool:
        """Insert ``message`` unless its id is there already; False for a duplicate."""
        items = message.payload.get("items", {})
        cursor = connection.execute(
            "INSERT INTO received (message_id, party, message_type, sender, created_at, received_at, items, payload) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING",
            (message.message_id, party, message.message_type, message.sender, message.created_at.isoformat(),
             received_at.isoformat(), json.dumps(list(items)),
             json.dumps(message.payload, ensure_ascii=False, sort_keys=True)))
        return cursor.rowcount == 1

    def record_refusal(self, *, message_id: str, party: str | None, reason: str, detail: str, queue: str,
                       envelope: str | None) -> bool:
        """Record a refused or failed delivery; False if the same one is already recorded (a republish)."""
        claimed = _claimed_header(envelope)
        with self.transaction() as connection:
            if connection.execute("SELECT 1 FROM refused WHERE message_id = ? AND reason = ?",
                                  (message_id, reason)).fetchone():
                return False
            connection.execute(
                "INSERT INTO refused (message_id, party, claimed_sender, claimed_type, reason, detail, queue, "
                "refused_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (message_id[:36], party, claimed.get("iss"), claimed.get("typ"), reason[:40], detail[:500],
                 queue[:80], clock.utcnow().isoformat()))
        return True

    def received(self, *, party: str | None = None, limit: int | None = None) -> list[Received]:
        """What the peer accepted, oldest first (``party`` narrows it to one of the peer's parties)."""
        where = "WHERE party = ?" if party else ""
        params: list[Any] = [party] if party else []
        if limit is None:
            query = f"SELECT * FROM received {where} ORDER BY received_at, message_id"  # noqa: S608 (fixed text)
        else:
            # The newest ``limit`` messages, still printed oldest first.
            query = (f"SELECT * FROM (SELECT * FROM received {where} ORDER BY received_at DESC, message_id DESC "  # noqa: S608
                     "LIMIT ?) ORDER BY received_at, message_id")
            params.append(max(limit, 0))
        return [Received(message_id=row["message_id"], party=row["party"], message_type=row["message_type"],
                         sender=row["sender"], created_at=dt.datetime.fromisoformat(row["created_at"]),
                         received_at=dt.datetime.fromisoformat(row["received_at"]),
                         items=tuple(json.loads(row["items"])), payload=json.loads(row["payload"]))
                for row in self._rows(query, params)]

    def refusals(self) -> list[Refusal]:
        """What the peer refused or could not apply, oldest first."""
        return [Refusal(message_id=row["message_id"], party=row["party"], claimed_sender=row["claimed_sender"],
                        claimed_type=row["claimed_type"], reason=row["reason"], detail=row["detail"],
                        queue=row["queue"], refused_at=dt.datetime.fromisoformat(row["refused_at"]))
                for row in self._rows("SELECT * FROM refused ORDER BY id", [])]

    def _rows(self, query: str, params: list[Any]) -> list[sqlite3.Row]:
        connection = self._connect()
        try:
            connection.row_factory = sqlite3.Row
            return list(connection.execute(query, params))
        finally:
            connection.close()


def _claimed_header(envelope: str | None) -> dict[str, str]:
    try:
        header = peek_header(envelope or "")
    except Exception:
        return {}
    return {k: str(header[k])[:60] for k in ("iss", "typ") if isinstance(header.get(k), str)}


# -- receiving -------------------------------------------------------------------------------------


class PeerReceiver:
    """Opens, checks, stores once and acknowledges the messages to one peer."""

    def __init__(self, spec: PeerSpec, config: PeerConfig) -> None:
        self.spec = spec
        self.config = config
        self.store = PeerStore(config.database)
        self.policy = DeliveryPolicy.from_settings(config.settings)

    def keys(self, party: str) -> KeyRegistry:
        """The keys of one of this peer's parties, read afresh (a newly registered sender counts at once)."""
        if party not in self.spec.parties:
            raise ValueError(f"{self.spec.name} does not speak as {party}")
        return KeyRegistry.from_config({"BRIDGE_KEY_DIRECTORY": str(self.config.key_directory),
                                        "APP_ENV": self.config.app_env}, party=party)

    def deliver(self, message_id: str, envelope: str, *, queue: str, connection: redis.Redis) -> str:
        """Apply one delivery job from ``queue``; returns APPLIED, DUPLICATE, REFUSED or DEAD_LETTER.

        Raises PeerDeliveryError (naming only the error type and the id) for what a retry may cure.
        """
        message_id = str(message_id)[:36]
        try:
            party = QueueNames.consumer(queue)
            if party not in self.spec.parties:
                raise ValueError(f"{self.spec.name} does not consume {queue}")
            keys = self.keys(party)
            try:
                opened = self._open(party, keys, message_id, envelope)
                self._check(opened)
            except EnvelopeRefused as refused:
                self.store.record_refusal(message_id=message_id, party=party, reason=refused.reason,
                                          detail=refused.detail, queue=queue, envelope=envelope)
                log.warning("%s refused message %s: %s", party, message_id, refused.reason)
                return REFUSED
            except PermanentFailure as failure:
                return self._dead_letter(party, queue, message_id, envelope, failure)
            try:
                applied = self._store(party, opened)
            except PermanentFailure as failure:
                return self._dead_letter(party, queue, message_id, envelope, failure)
            self._acknowledge(opened, keys, connection)
        except Exception as exc:
            log.error("delivery of %s to %s failed: %s", message_id, self.spec.name, _describe(exc))
            # "from None": a chained exception could quote item values into rq's stored traceback.
            raise PeerDeliveryError(f"{_describe(exc)} while delivering {message_id}") from None
        if applied:
            log.info("%s stored message %s (%s from %s) and acknowledged it", party, message_id,
                     opened.message_type, opened.sender)
            return APPLIED
        log.info("%s already had message %s: duplicate suppressed, acknowledged again", party, message_id)
        return DUPLICATE

    def _open(self, party: str, keys: KeyRegistry, message_id: str, envelope: str) -> Opened:
        opened = open_envelope(envelope, me=party, keys=keys, accepted_types=self.spec.accepted_types,
                               max_age=self.config.settings.max_message_age, now=clock.utcnow())
        if opened.message_id != message_id:
            raise EnvelopeRefused("header_mismatch", "the job's message id differs from the envelope's")
        if not opened.sender.startswith(self.spec.sender_kinds):
            raise EnvelopeRefused("type_not_accepted", f"{opened.message_type} is not taken from {opened.sender}")
        return opened

    def _check(self, opened: Opened) -> None:
        """The payload fits its type's schema (``bridge.messages``), then the peer's own checks."""
        try:
            messages.validate(opened.message_type, opened.payload)
        except messages.MessageInvalid as invalid:
            raise PermanentFailure(SCHEMA_INVALID, invalid.detail) from None
        if self.spec.check is not None:
            self.spec.check(opened)

    def _store(self, party: str, opened: Opened) -> bool:
        with self.store.transaction() as connection:
            inserted = self.store.insert(connection, party=party, message=opened, received_at=clock.utcnow())
            if inserted and self.spec.effect is not None:
                # Inside the transaction: if the effect fails, the message is not recorded and a retry applies it.
                self.spec.effect(opened, self.config)
        return inserted

    def _acknowledge(self, opened: Opened, keys: KeyRegistry, connection: redis.Redis) -> str:
        """Seal an ack to the sender and publish it on ``ack:<sender>`` the way the relay publishes."""
        queue_name = QueueNames.for_message(sender=opened.recipient, recipient=opened.sender, message_type=ACK)
        ack = seal_ack(opened, keys)
        get_queue(queue_name, connection).enqueue_call(
            DELIVER,
            args=(ack.message_id, ack.token),
            job_id=ack.message_id,
            description=f"deliver {ack.message_id}",  # rq would otherwise repeat the whole envelope here
            timeout=self.policy.job_timeout,
            result_ttl=self.policy.result_ttl,
            failure_ttl=self.policy.failure_ttl,
            ttl=None,
            retry=Retry(max=len(self.policy.retry_intervals), interval=list(self.policy.retry_intervals)),
            on_failure=Callback(ON_FAILURE),
            unique=True,
        )
        return ack.message_id

    def _dead_letter(self, party: str, queue: str, message_id: str, envelope: str, failure: PermanentFailure) -> str:
        self.store.record_refusal(message_id=message_id, party=party, reason=failure.reason, detail=failure.detail,
                                  queue=queue, envelope=envelope)
        log.warning("%s could not apply message %s: %s", party, message_id, failure.reason)
        return DEAD_LETTER

    def on_failure(self, job: Job, connection: redis.Redis, exc_type: type[BaseException] | None = None,
                   exc_value: BaseException | None = None, traceback: Any = None) -> None:
        """rq's failure callback: after the last retry, the delivery goes to the ``refused`` table."""
        if job.retries_left:
            return  # rq will run it again
        self.dead_letter_job(job, detail=f"failed after its retries: {_describe(exc_value)}")

    def dead_letter_job(self, job: Job, *, detail: str) -> None:
        """Record the delivery of an rq job that will not run again."""
        args = list(job.args or ())
        message_id = str(args[0])[:36] if args else str(job.id)
        envelope = args[1] if len(args) > 1 and isinstance(args[1], str) else None
        try:
            party: str | None = QueueNames.consumer(job.origin)
        except ValueError:
            party = None
        self.store.record_refusal(message_id=message_id, party=party, reason=RETRIES_EXHAUSTED, detail=detail,
                                  queue=str(job.origin), envelope=envelope)
        log.error("message %s to %s dead-lettered: %s", message_id, self.spec.name, detail)


def seal_ack(opened: Opened, keys: KeyRegistry) -> Sealed:
    """The ack of ``opened``, sealed by its recipient to its sender."""
    payload = ack_payload(opened.message_id)
    messages.validate(ACK, payload)
    return seal(payload, message_type=ACK, sender=opened.recipient, recipient=opened.sender, keys=keys)


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, PeerDeliveryError):
        return str(exc)
    return type(exc).__name__


# -- the worker ------------------------------------------------------------------------------------


class PeerJob(BridgeJob):
    """A bridge job on a peer's queue, run by this peer's receiver outside any Flask app.

    ``BridgeJob`` refuses any job but the relay's delivery jobs before anything it names is imported.
    """

    receiver: ClassVar[PeerReceiver]

    def delivery_function(self) -> Callable[..., Any]:
        """The receiver's ``deliver`` for this job's queue."""
        receiver, queue, connection = self.receiver, str(self.origin), self.connection

        def deliver(message_id: str, envelope: str) -> str:
            return receiver.deliver(message_id, envelope, queue=queue, connection=connection)

        return deliver

    def bridge_failure_callback(self) -> Callable[..., Any]:
        """The receiver's own failure callback in place of the app's (which needs a Flask app)."""
        return self.receiver.on_failure


def make_worker(receiver: PeerReceiver, *, connection: redis.Redis, name: str | None = None) -> BridgeWorker:
    """An rq worker on every queue of the peer, with the bridge's heartbeat and maintenance settings."""
    settings = receiver.config.settings
    job_class = type(f"PeerJob_{receiver.spec.name}", (PeerJob,), {"receiver": receiver})

    def horse_killed(job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
        # rq fails a job whose work-horse died without calling its failure callback: record it here.
        if job.should_retry:
            return
        try:
            receiver.dead_letter_job(job, detail=f"failed after its retries: the work-horse died (status {ret_val})")
        except Exception:  # the worker must live on; the sender's republish brings the message back
            log.exception("could not dead-letter job %s", job.id)

    return BridgeWorker(
        list(receiver.spec.queues()),
        name=name or f"peer-{receiver.spec.name}.{socket.gethostname()}.{os.getpid()}",
        connection=connection,
        job_class=job_class,
        serializer=JSONSerializer,
        worker_ttl=settings.worker_ttl,
        job_monitoring_interval=settings.job_monitoring_interval,
        maintenance_interval=settings.maintenance_interval,
        work_horse_killed_handler=horse_killed,
    )


def run_worker(receiver: PeerReceiver, *, burst: bool = False, name: str | None = None) -> bool:
    """Work the peer's queues until stopped (SIGTERM: finish the current job), or until empty with ``burst``."""
    if not receiver.config.redis_url and not receiver.config.values.get("REDIS_SENTINELS"):
        raise PeerNotAllowed("REDIS_URL is not configured")
    configure_logging()
    connection = connect(receiver.config.values, socket_connect_timeout=5, socket_timeout=10)
    for party in receiver.spec.parties:
        receiver.keys(party)  # create the keys now (outside production) rather than fail the first job
    worker = make_worker(receiver, connection=connection, name=name)
    log.info("peer worker %s on %s", worker.name, ", ".join(receiver.spec.queues()))
    return bool(worker.work(burst=burst, with_scheduler=True, logging_level="INFO"))


# -- the command line ------------------------------------------------------------------------------


def format_line(message: Received, *, show_values: bool = False) -> str:
    """One line of ``list``: time, message id, type, sender and recipient, item names (values on request only)."""
    when = message.received_at.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S JST")
    line = (f"{when}  {message.message_id}  {message.message_type}  {message.sender} -> {message.party}  "
            f"items: {', '.join(message.items)}")
    if show_values:
        line += "  values: " + json.dumps(message.payload.get("items", {}), ensure_ascii=False)
    return line


def run_cli(spec: PeerSpec, argv: list[str], *, prog: str | None = None) -> int:
    """``worker``, ``list``, ``refused`` and ``keys`` for one peer; returns the exit status."""
    parser = argparse.ArgumentParser(prog=prog or f"python -m bridge.peers.{spec.name}", description=spec.title)
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help=f"work {', '.join(spec.queues())} (rq, JSON serializer)")
    worker.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    worker.add_argument("--name", help="worker name (default: peer, host and pid)")
    listing = commands.add_parser("list", help="one line per message received: time, id, type, sender, item names")
    listing.add_argument("--show-values", action="store_true",
                         help="also print the item values (personal data: only where the viewer may see them)")
    listing.add_argument("--party", choices=spec.parties, help="only what this party received")
    listing.add_argument("--limit", type=int, default=None, help="only the newest N messages")
    commands.add_parser("refused", help="deliveries refused or dead-lettered, with their reasons")
    keys = commands.add_parser("keys", help="create this peer's keys if missing and print the public keys")
    keys.add_argument("--register", action="store_true",
                      help="also register them in the key directory, for back offices sharing it (development)")
    args = parser.parse_args(argv)
    try:
        config = PeerConfig.load(spec.name)
    except (PeerNotAllowed, core_config.ConfigError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    receiver = PeerReceiver(spec, config)
    if args.command == "worker":
        try:
            run_worker(receiver, burst=args.burst, name=args.name)
        except PeerNotAllowed as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command == "list":
        received = receiver.store.received(party=args.party, limit=args.limit)
        print(f"{len(received)} message(s) received by {spec.title} ({config.database})", file=sys.stderr)
        for message in received:
            print(format_line(message, show_values=args.show_values))
        return 0
    if args.command == "refused":
        for refusal in receiver.store.refusals():
            when = refusal.refused_at.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S JST")
            print(f"{when}  {refusal.message_id}  {refusal.reason}  claimed {refusal.claimed_type} from "
                  f"{refusal.claimed_sender} to {refusal.party}  {refusal.detail}")
        return 0
    for party in spec.parties:
        registry = receiver.keys(party)
        if args.register:
            import_public_key(config.key_directory, party, registry.public_pem())
            print(f"Registered the public keys of {party} in {config.key_directory}.", file=sys.stderr)
        print(f"# {party}: register on the back office with `flask keys import {party} FILE`")
        print(registry.public_pem(), end="")
    return 0
