"""rq workers of the bridge: one queue per process, JSON serializer, each job inside the app's context.

Heartbeats are tuned so a job whose worker was killed outright (parent and work-horse) is taken up
by another worker of the same queue about 75 s later: the job's heartbeat expires after
``job_monitoring_interval`` + 60 s, and a live worker runs its maintenance pass (which retries
abandoned jobs) every ``maintenance_interval`` seconds. A work-horse killed alone (the OOM killer)
is noticed by its parent at once. ``docs/operations.md`` has the measured figures.

Whoever can write to Redis can put any job on a queue, and rq imports and calls whatever function
and callbacks a job names. A bridge worker therefore runs only the bridge's delivery function with
its own failure callback (``BridgeJob``): any other job is refused before anything it names is
imported, logged by its id only, and left in rq's failed registry without running.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import threading
import time
import zlib
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any, ClassVar

import redis
from flask import Flask
from jose.constants import JWE_SIZE_LIMIT
from redis import Redis
from rq import Worker
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import DeserializationError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.utils import decode_redis_hash, import_attribute, now

from bridge.lending import ConnectionLender
from bridge.queues import QueueNames
from bridge.relay import DELIVER, DELIVER_BATCH, ON_FAILURE, batch_messages
from bridge.settings import BridgeSettings, configure_logging
from core.envelope import UUID_PATTERN

log = logging.getLogger("bridge.worker")
_lenders: dict[int, ConnectionLender] = {}  # by id(engine): one per engine and process, made once
REFUSED_JOB_TTL = 7 * 24 * 3600  # how long a refused job stays in rq's failed registry, for the operator to see
# A delivery's stored arguments: a message id and one envelope, or a batch of no more envelope characters
# than one largest envelope (``bridge.relay.job_groups``). More is not a delivery, and is never inflated.
JOB_DATA_LIMIT = JWE_SIZE_LIMIT + 4096


class JobRefused(Exception):
    """A job a bridge worker does not run; the message names the rule broken, never the job's arguments."""


class BridgeJob(Job):
    """An rq job on a bridge queue: the delivery function and the bridge's failure callback, nothing else.

    ``refusal`` judges a job by the names stored with it, before anything is imported. The properties
    through which rq resolves a job's function and callbacks never import a name a job chose: the
    function is the delivery function (``delivery_function``), the failure callback the bridge's own
    (``bridge_failure_callback``), and there are no success or stopped callbacks. Subclasses say what
    those two are for their worker (an app's, or a simulated peer's outside any app).
    """

    unreadable: str | None = None

    def restore(self, raw_data: Any) -> Any:
        """rq's, but a record rq cannot read gives a job that is refused instead of an error that stops the worker.

        rq raises while it loads a record with a bad field (a status, a date, a timeout), before the job
        reaches ``execute_job``: the worker quit, the id stayed in progress, and each restarted worker
        met it again at its first maintenance. Data that would inflate past ``JOB_DATA_LIMIT`` is not
        inflated at all.
        """
        self.unreadable = None
        try:
            packed = decode_redis_hash(raw_data).get("data")
            if isinstance(packed, bytes) and _inflates_past(packed, JOB_DATA_LIMIT):
                raise ValueError("job data larger than a delivery's")
            return super().restore(raw_data)
        except NoSuchJobError:
            raise
        except Exception as exc:  # any field rq cannot parse: refuse the job, keep the worker
            self.unreadable = type(exc).__name__
            return None

    def refusal(self) -> str | None:
        """Why a bridge worker must not run this job, or None; reasons name rules, never the job's data."""
        if self.unreadable is not None:
            return "its record cannot be read"
        try:
            if self.func_name not in self.functions() or self.instance is not None:
                return "it names a function other than the bridge's delivery"
            if self.func_name == DELIVER_BATCH and batch_messages(self.args) is None:
                return "its arguments are not a batch of deliveries"
        except DeserializationError:
            return "its function and arguments cannot be read"
        if self._success_callback_name or self._stopped_callback_name:
            return "it names a success or stopped callback"
        if self._failure_callback_name not in (None, "", ON_FAILURE):
            return "it names a failure callback other than the bridge's"
        if self._dependency_ids:
            return "it depends on other jobs"
        if self.webhooks:
            return "it names webhooks"
        return None

    @property
    def func(self) -> Callable[..., Any]:  # type: ignore[override]
        """The delivery function, for an allowed job only (rq resolves the function through this)."""
        reason = self.refusal()
        if reason is not None:
            raise JobRefused(f"job refused: {reason}")
        return self.delivery_function()

    @classmethod
    def functions(cls) -> tuple[str, ...]:
        """The job functions this worker runs: the delivery of one message (and, in an app, of a batch)."""
        return (DELIVER,)

    def delivery_function(self) -> Callable[..., Any]:
        """What runs a delivery job in this worker: the function the (allowed) job names."""
        return import_attribute(DELIVER if self.func_name == DELIVER else DELIVER_BATCH)

    @property
    def success_callback(self) -> None:  # type: ignore[override]
        """None: a job naming one is refused, and nothing a job names is imported."""
        return None

    @property
    def stopped_callback(self) -> None:  # type: ignore[override]
        """None: a job naming one is refused, and nothing a job names is imported."""
        return None

    @property
    def failure_callback(self) -> Callable[..., Any] | None:  # type: ignore[override]
        """The bridge's own failure callback if the job names it and may run; None otherwise.

        rq's clean-up of an abandoned job calls the failure callback without asking the worker, so a
        refused job is answered here too.
        """
        if self._failure_callback_name != ON_FAILURE or self.refusal() is not None:
            return None
        return self.bridge_failure_callback()

    def bridge_failure_callback(self) -> Callable[..., Any]:
        """What dead-letters a delivery after its last retry in this worker."""
        return import_attribute(ON_FAILURE)

    def send_webhooks(self, status: Any, *, exc_string: str | None = None) -> None:
        """Nothing: the bridge uses no webhooks, and webhooks written into a running job's hash must not be called."""


def _inflates_past(packed: bytes, limit: int) -> bool:
    """Whether zlib data inflates to more than ``limit`` bytes (data that is not zlib is taken as it is)."""
    inflater = zlib.decompressobj()
    try:
        inflated = inflater.decompress(packed, limit + 1)
    except zlib.error:
        return len(packed) > limit
    return len(inflated) > limit or bool(inflater.unconsumed_tail)


class FlaskJob(BridgeJob):
    """A bridge job that runs, and has its failure callback run, inside a Flask app context (a fresh session each)."""

    flask_app: ClassVar[Flask]

    @classmethod
    def functions(cls) -> tuple[str, ...]:
        """One message's delivery, and a batch's (``bridge.relay.job_groups``)."""
        return (DELIVER, DELIVER_BATCH)

    def perform(self) -> Any:
        """Run the job function in an app context, so it finds the app's database, keys and config."""
        with self.flask_app.app_context():
            return super().perform()

    def bridge_failure_callback(self) -> Callable[..., Any]:
        """The failure callback, wrapped to run in an app context too (rq may call it from maintenance)."""
        callback = super().bridge_failure_callback()
        app = self.flask_app

        def in_app_context(job: Job, connection: Redis, *exc_info: Any) -> Any:
            with app.app_context():
                return callback(job, connection, *exc_info)

        return in_app_context


def job_class_for(app: Flask) -> type[FlaskJob]:
    """A FlaskJob class bound to ``app``."""
    return type(f"FlaskJob_{app.name}", (FlaskJob,), {"flask_app": app})


class BridgeWorker(Worker):
    """rq's forking worker of bridge jobs: only deliveries run, and a short dequeue lets maintenance run often.

    A job is logged by its id only: rq would log its description, which a job put in Redis by hand
    can fill with anything, its arguments included.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("log_job_description", False)
        super().__init__(*args, **kwargs)
        if not issubclass(self.job_class, BridgeJob):
            raise TypeError("a bridge worker runs BridgeJob jobs only")

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        """rq's; but a SIGTERM/SIGINT from here on is a clean stop.

        rq installs its own handlers only after it logged "Listening on" and started the scheduler; a stop in
        between killed the process outright, leaving it registered in Redis.
        """
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop_before_work)
        super().bootstrap(*args, **kwargs)

    def _stop_before_work(self, signum: int, frame: Any) -> None:
        # Only remembered: rq's loop sees it before its first dequeue, says "stopping on request" and tears down.
        self._stop_requested = True
        self._shutdown_requested_date = now()

    lender: ConnectionLender | None = None  # the database connection lent to each horse (``make_worker``)

    def perform_job(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> bool:
        """rq's, in the work-horse, then the lent connection's state reported to the parent (``bridge.lending``).

        With ``BENCH_PROFILE_DIR`` (the intake bench only) each job's cProfile is kept.
        """
        try:
            directory = os.environ.get("BENCH_PROFILE_DIR")
            if not directory:
                return super().perform_job(job, queue, *args, **kwargs)
            import cProfile

            profiler = cProfile.Profile()
            try:
                return bool(profiler.runcall(super().perform_job, job, queue, *args, **kwargs))
            finally:
                profiler.dump_stats(os.path.join(directory, f"job-{os.getpid()}.prof"))
        finally:
            if self.lender is not None:
                self.lender.report()

    def fork_work_horse(self, job: Job, queue: Queue) -> None:
        """rq's fork, with the parent's objects frozen for the work-horse's garbage collector.

        A horse inherits the parent's heap (about 160,000 objects: the app, its mappers, schemas and
        compiled statements) and would, at its first full garbage collection, walk every one of them and
        write to each object's header: a copy-on-write of most of the parent's pages, about 0.4 s, which
        was most of an intake job. Frozen objects are not walked. The parent unfreezes at once, so its
        own garbage is still collected; the horse keeps its inherited objects frozen, and what it
        allocates itself is collected as usual.
        """
        if self.lender is not None:
            self.lender.before_fork()
        gc.freeze()
        try:
            super().fork_work_horse(job, queue)
        finally:
            gc.unfreeze()  # the parent (a horse never returns here: rq ends it with os._exit)
            if self.lender is not None:
                self.lender.after_fork_in_parent()

    def wait_for_horse(self) -> tuple[int | None, int | None, Any]:
        """rq's; once the horse is reaped, the lent connection is kept only if the horse left it clean."""
        reaped = super().wait_for_horse()
        if self.lender is not None:
            self.lender.after_horse()
        return reaped

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run an allowed job in a work-horse; refuse any other before it is forked, imported or logged."""
        reason = job.refusal() if isinstance(job, BridgeJob) else "it is not a bridge job"
        if reason is None:
            super().execute_job(job, queue)
            return
        self.refuse_job(job, queue, reason)

    def refuse_job(self, job: Job, queue: Queue, reason: str) -> None:
        """Move ``job`` to the failed registry without running it, its callbacks, webhooks or dependents."""
        log.error("job %s on %s refused, never run: %s (left in the failed registry)", _job_id(job), queue.name,
                  reason)
        job.webhooks = []
        job.ended_at = now()
        with self.connection.pipeline() as pipeline:
            pipeline.lrem(queue.intermediate_queue_key, 0, job.id)
            if isinstance(job, BridgeJob) and job.unreadable is not None:
                # A record rq cannot read cannot be saved back either: mark it failed where it is.
                pipeline.hset(job.key, "status", JobStatus.FAILED.value)
                pipeline.expire(job.key, REFUSED_JOB_TTL)
                pipeline.zadd(queue.failed_job_registry.key, {job.id: time.time() + REFUSED_JOB_TTL})
            else:
                job.set_status(JobStatus.FAILED, pipeline=pipeline)
                queue.failed_job_registry.add(job, ttl=REFUSED_JOB_TTL, pipeline=pipeline,
                                              exc_string=f"JobRefused: refused by the bridge worker: {reason}")
            pipeline.execute()
        self.increment_failed_job_count()

    def _start_scheduler(self, burst: bool = False, logging_level: str | None = "INFO",
                         date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
                         log_format: str = DEFAULT_LOGGING_FORMAT) -> None:
        """rq's, but the scheduler is named after the worker (rq picks a random name).

        Its Redis key (``rq:scheduler:<name>``) then starts with the party, as the worker's does, so the
        Redis ACL (``deploy/redis/users.acl``) can give each party its own.
        """
        self.scheduler = RQScheduler(self.queues, connection=self.connection, name=self.name,
                                     logging_level=logging_level if logging_level is not None else self.log.level,
                                     date_format=date_format, log_format=log_format, serializer=self.serializer)
        self.scheduler.acquire_locks()
        if not self.scheduler.acquired_locks:
            return
        if not burst:
            self.scheduler.start()
            return
        try:
            self.scheduler.register_birth()
            self.scheduler.enqueue_scheduled_jobs()
        finally:
            self.scheduler.release_locks()
            self.scheduler.register_death()

    @property
    def dequeue_timeout(self) -> int:
        """Seconds to block waiting for a job; rq's default (worker_ttl - 15 = 45 s) would delay recovery."""
        return max(1, min(self.worker_ttl - 15, self.maintenance_interval))


def make_worker(app: Flask, queue: str, *, name: str | None = None, connection: Redis | None = None) -> BridgeWorker:
    """A worker for ``queue``, which must be one this app's party consumes."""
    binding = app.extensions["bridge"]
    consumed = QueueNames.consumed_by(binding.party)
    if queue not in consumed:
        raise ValueError(f"{binding.party} consumes {', '.join(consumed)}, not {queue}")
    settings = BridgeSettings.from_config(app.config)
    if connection is None:
        with app.app_context():
            connection = binding.redis()
        # The app's own Redis calls in a job (the pause check, the job metrics) share rq's connection pool:
        # a work-horse then opens one Redis connection for its job instead of two.
        app.extensions.setdefault("redis", connection)
    lender = _lender_for(app)
    prepare_parent(app, queue, lender=lender)

    def horse_killed(job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
        # rq fails a job whose work-horse died without calling its failure callback: dead-letter it here.
        if job.should_retry:
            return
        from bridge.jobs.deliver import job_ended_for_good

        try:
            with app.app_context():
                job_ended_for_good(job, detail=f"failed after its retries: the work-horse died (status {ret_val})")
        except Exception:  # the worker must live on; the sender's republish brings the message back
            log.exception("could not dead-letter job %s", job.id)

    worker = BridgeWorker(
        [queue],
        name=name or f"{binding.party}.{queue}.{socket.gethostname()}.{os.getpid()}".replace(":", "-"),
        connection=connection,
        job_class=job_class_for(app),
        serializer=JSONSerializer,
        worker_ttl=settings.worker_ttl,
        job_monitoring_interval=settings.job_monitoring_interval,
        maintenance_interval=settings.maintenance_interval,
        work_horse_killed_handler=horse_killed,
    )
    worker.lender = lender
    return worker


def run_worker(app: Flask, queue: str, *, burst: bool = False, name: str | None = None) -> bool:
    """Work ``queue`` until stopped (SIGTERM: finish the current job), or until it is empty with ``burst``.

    rq's worker quits as soon as Redis goes away under it; this one waits for Redis to answer again
    and starts a new rq worker (the job that was running is recovered by rq or by the relay). With
    Redis Sentinel the wait asks the sentinels anew each time, so the new worker runs on the new master.
    """
    binding = app.extensions["bridge"]
    configure_logging()
    with app.app_context():
        binding.keys()  # without its keys (production) the worker refuses to start rather than fail every job
    completed, generation, pause = False, 0, 1.0
    while True:
        try:
            worker = make_worker(app, queue, name=name)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # Redis went away while the worker got ready (its rehearsal takes a moment), or answered the wait
            # below and went away again while the new worker registered: wait for it again.
            log.warning("worker on %s could not start: Redis unavailable (%s)", queue, type(exc).__name__)
            with app.app_context():
                probe = binding.redis()
            try:
                if not _wait_for_redis(probe, first_wait=pause):
                    return completed
            finally:
                probe.close()
            continue
        if generation:
            worker.name = f"{worker.name}.{generation}"  # the old name may still be registered in Redis
        log.info("worker %s on %s (party %s)", worker.name, queue, binding.party)
        started = time.monotonic()
        try:
            # The scheduler runs retries that wait (Retry intervals); one per queue is elected among its workers.
            completed = bool(worker.work(burst=burst, with_scheduler=True, logging_level="INFO")) or completed
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("worker %s lost Redis (%s)", worker.name, type(exc).__name__)
        except (redis.RedisError, OSError, ValueError) as exc:
            if not _stop_was_requested(worker):
                raise
            # Stopping: rq's teardown unsubscribes on the connection its pubsub thread may be closing (after
            # Redis came back), and "I/O operation on closed file" is no reason to end with an error.
            log.warning("worker %s stopped; its Redis teardown failed (%s)", worker.name, type(exc).__name__)
        if burst or _stop_was_requested(worker):
            return completed
        # A worker that quits again at once (whatever the cause) is started less and less often.
        pause = min(pause * 2, 30.0) if time.monotonic() - started < 10 else 1.0
        if not _wait_for_redis(worker.connection, first_wait=pause):
            return completed
        generation += 1


def _stop_was_requested(worker: BridgeWorker) -> bool:
    """Whether rq's worker ended on SIGTERM/SIGINT (idle or busy), rather than because Redis went away."""
    return bool(worker._stop_requested or getattr(worker, "_shutdown_requested_date", None) is not None)


def _wait_for_redis(connection: Redis, *, first_wait: float = 1.0) -> bool:
    """Wait until Redis answers (True), or until SIGTERM/SIGINT (False); rq quit because Redis went away."""
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    if stop.wait(first_wait):
        return False
    wait = 1.0
    while not stop.is_set():
        try:
            if connection.ping():
                log.info("Redis answers again: the worker starts again")
                return True
        except (redis.ConnectionError, redis.TimeoutError):
            pass
        log.warning("Redis unavailable; the worker tries again in %.0f s", wait)
        stop.wait(wait)
        wait = min(wait * 2, 10.0)
    return False


def _job_id(job: Job) -> str:
    # A job id put in Redis by hand is anything: quoted unless a UUID, so it cannot forge log lines.
    text = str(job.id)
    return text if UUID_PATTERN.match(text) else repr(text[:64])


def prepare_parent(app: Flask, queue: str | None = None, *, lender: ConnectionLender | None = None) -> None:
    """Do once in the worker's parent what every forked work-horse would otherwise do again for each job.

    A work-horse's memory is thrown away with it, so whatever a job builds on first use is built again
    by the next job. Built here, before the first fork, the horses inherit it: SQLAlchemy's mapper
    configuration (about half of an intake job's time when each horse did it), the compiled message
    schemas, the card trust anchors, the OpenSSL bindings the envelope library imports lazily, and the
    database dialect's first-connect set-up, and, for a worker of ``queue``, the SQL statements a
    delivery compiles (``_rehearse``). Both run on the connection the parent lends to its horses
    (``lender``; ``bridge.lending``), so its backend's caches are warm for the first job; the parent
    keeps no other connection. Nothing here keeps anything that changes while the worker runs: CRLs
    are still read at each check, and the bridge keys at each job.
    """
    from cryptography.hazmat.backends.openssl import backend  # noqa: F401  (imported by jose on first use)
    from sqlalchemy.orm import configure_mappers

    from bridge import messages

    configure_mappers()
    messages.compile_all()
    engine = app.extensions["engine"]
    with lender.lend_to_parent() if lender is not None else nullcontext():
        try:
            _initialize_dialect(engine)
            if queue is not None:
                _rehearse(app, queue)
        finally:
            if lender is None or not lender.enabled:
                engine.dispose()
    if all(os.path.isfile(str(app.config.get(name) or "")) for name in ("JPKI_AUTH_ANCHORS", "JPKI_SIGN_ANCHORS")):
        from core.jpki.appconfig import trust_for_app

        trust_for_app(app)


def _rehearse(app: Flask, queue: str) -> None:
    """Compile a delivery's SQL statements here, once, by rehearsing the zone's own messages (``deliver.rehearse``).

    SQLAlchemy compiles each statement on its first use in a process and keeps it in the engine's
    compiled cache; a horse's cache dies with it, so every job compiled all of its statements again
    (about a quarter of an intake job in a profile). Rehearsed in the parent, they are inherited. The
    rehearsal's transactions are rolled back.
    """
    from bridge.jobs.deliver import rehearse

    try:
        with app.app_context():
            rehearse(queue=queue)
    except Exception as exc:  # warming is an optimisation: the worker starts whatever happens here
        log.warning("could not rehearse the deliveries before the first job (%s)", type(exc).__name__)


def _initialize_dialect(engine: Any) -> None:
    """Connect once, so SQLAlchemy's first-connect set-up of the dialect is done here.

    That set-up (server version, string quoting, isolation level: several queries) runs on an engine's
    first connection; a parent that never connected left it to every horse, about a tenth of an intake
    job. A database that is down now only leaves the set-up to the horses, as before.
    """
    from sqlalchemy.exc import DBAPIError

    try:
        with engine.connect():
            pass
    except DBAPIError as exc:  # any failure of the database here only leaves the set-up to the horses
        log.warning("could not reach the database before the first job (%s); each job will set up its own",
                    type(exc).__name__)


def _lender_for(app: Flask) -> ConnectionLender:
    """The engine's lender in this process, made once (it also keeps every forked process off the parent's pool)."""
    engine = app.extensions["engine"]
    lender = _lenders.get(id(engine))
    if lender is None or lender.engine is not engine:
        lender = _lenders[id(engine)] = ConnectionLender(engine)
    return lender
