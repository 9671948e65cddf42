"""What an administrator watches: the app's queues, workers, outbox, dead letters and alerts, and job counts.

Everything here is read at the moment it is asked for, from Redis and the app's own database, so
every gunicorn worker (and the page and ``/metrics`` alike) sees the same figures. What only a
worker process knows (how many jobs it delivered, refused or dead-lettered, how long they took)
is counted in Redis under the app's key prefix (``<REDIS_KEY_PREFIX>:metrics:…``), which each
party's Redis user may already write. Labels and fields are queue names, parties, message types
and reasons: never a message id, a receipt number or anything of a resident.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.worker import Worker
from sqlalchemy import func, select

from bridge.binding import Bridge
from bridge.outbox import ACKNOWLEDGED, PENDING
from bridge.queues import QueueNames, get_queue
from core import clock

log = logging.getLogger("bridge.monitor")

# Histogram buckets (seconds): how long one job ran, and how long from the sender sealing a message to its effect.
RUNTIME_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LATENCY_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
# Job outcomes counted per queue.
DELIVERED, DUPLICATE, REFUSED, DEAD_LETTERED, ERROR, HELD = (
    "delivered", "duplicate", "refused", "dead_lettered", "error", "held")
_MINUTE_KEEP = 2 * 3600  # per-minute counts of finished jobs: enough for the last hour


def queues_of(binding: Bridge) -> list[str]:
    """The queues this app's workers consume (the ones its page and metrics describe)."""
    return QueueNames.consumed_by(binding.party)


# -- counting in the worker ------------------------------------------------------------------------


def _key(*parts: Any) -> str:
    from core.redisconn import key

    return key("metrics", *parts)


def count_job(queue: str, outcome: str, *, seconds: float, latency: float | None = None,
              reason: str | None = None) -> None:
    """Count one finished job of ``queue`` (never fails the job: a Redis error is logged and the count lost)."""
    from core.redisconn import get_redis

    try:
        client = get_redis()
        pipe = client.pipeline(transaction=False)
        name = _key("counts")
        pipe.hincrby(name, f"jobs|{queue}|{outcome}", 1)
        if reason:
            pipe.hincrby(name, f"refused|{reason}", 1)
        _observe(pipe, name, f"runtime|{queue}", RUNTIME_BUCKETS, seconds)
        if latency is not None:
            _observe(pipe, name, f"latency|{queue}", LATENCY_BUCKETS, max(latency, 0.0))
        if outcome in (DELIVERED, DUPLICATE):
            minute = _key("done", queue, int(clock.utcnow().timestamp() // 60))
            pipe.incr(minute)
            pipe.expire(minute, _MINUTE_KEEP)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("job counts of %s not kept: %s", queue, type(exc).__name__)


def _observe(pipe: Any, name: str, prefix: str, buckets: tuple[float, ...], value: float) -> None:
    for bound in buckets:
        if value <= bound:
            pipe.hincrby(name, f"{prefix}|{bound}", 1)
    pipe.hincrbyfloat(name, f"{prefix}|sum", value)
    pipe.hincrby(name, f"{prefix}|count", 1)


@dataclass
class Counts:
    """The counters and histograms kept in Redis."""

    jobs: dict[tuple[str, str], int] = field(default_factory=dict)  # (queue, outcome) -> count
    refused: dict[str, int] = field(default_factory=dict)  # reason -> count
    runtime: dict[str, tuple[list[tuple[str, int]], float, int]] = field(default_factory=dict)
    latency: dict[str, tuple[list[tuple[str, int]], float, int]] = field(default_factory=dict)


def _text(value: bytes | str) -> str:
    """A Redis reply as text (the connection may or may not decode replies)."""
    return value.decode() if isinstance(value, bytes) else value


def read_counts(connection: redis.Redis) -> Counts:
    """The job counters and histograms of this app."""
    raw = {_text(k): _text(v) for k, v in connection.hgetall(_key("counts")).items()}
    counts = Counts()
    for name, value in raw.items():
        kind, _, rest = name.partition("|")
        if kind == "jobs":
            queue, _, outcome = rest.rpartition("|")
            counts.jobs[(queue, outcome)] = int(value)
        elif kind == "refused":
            counts.refused[rest] = int(value)
    for kind, buckets, target in (("runtime", RUNTIME_BUCKETS, counts.runtime),
                                  ("latency", LATENCY_BUCKETS, counts.latency)):
        queues = {n.split("|")[1] for n in raw if n.startswith(f"{kind}|")}
        for queue in sorted(queues):
            prefix = f"{kind}|{queue}|"
            total = int(raw.get(prefix + "count", 0))
            cumulative = [(_le(b), int(raw.get(f"{prefix}{b}", 0))) for b in buckets] + [("+Inf", total)]
            target[queue] = (cumulative, float(raw.get(prefix + "sum", 0.0)), total)
    return counts


def _le(bound: float) -> str:
    return str(float(bound))


def finished_since(connection: redis.Redis, queue: str, minutes: int) -> int:
    """Jobs of ``queue`` finished (applied or duplicate) in the last ``minutes`` minutes, this one included."""
    now = int(clock.utcnow().timestamp() // 60)
    values = connection.mget([_key("done", queue, m) for m in range(now - minutes + 1, now + 1)])
    return sum(int(v) for v in values if v is not None)


# -- the figures -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerFigures:
    """One rq worker of this app."""

    name: str
    queue: str
    host: str
    pid: int | None
    state: str
    job_age: float | None  # seconds the current job has run
    last_heartbeat: dt.datetime | None


@dataclass(frozen=True)
class QueueFigures:
    """One queue: its jobs by state, the oldest waiting job's age, throughput and live workers."""

    name: str
    waiting: int
    running: int
    scheduled: int
    failed: int
    oldest_waiting: float | None  # seconds
    finished_5m: int
    finished_60m: int
    workers: int

    @property
    def unattended(self) -> bool:
        """No live worker takes this queue's jobs (the page shows it red)."""
        return self.workers == 0


@dataclass(frozen=True)
class OutboxFigures:
    """This app's outbox towards one recipient."""

    recipient: str
    pending: int
    unacknowledged: int  # published, not yet acknowledged
    oldest_unacknowledged: float | None  # seconds, over pending and published rows
    republished: int  # publications beyond the first, over every row


def workers(connection: redis.Redis, queues: Iterable[str]) -> list[WorkerFigures]:
    """The registered (live: rq drops a worker whose heartbeat lapsed) workers of ``queues``."""
    found: dict[str, WorkerFigures] = {}
    now = clock.utcnow()
    for name in queues:
        queue = get_queue(name, connection)
        for worker in Worker.all(connection=connection, queue=queue, serializer=queue.serializer):
            found[worker.name] = WorkerFigures(
                name=worker.name, queue=name, host=str(worker.hostname or ""), pid=worker.pid,
                state=str(worker.get_state()), job_age=_job_age(queue, worker.get_current_job_id(), now),
                last_heartbeat=_utc(worker.last_heartbeat))
    return sorted(found.values(), key=lambda w: (w.queue, w.name))


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    return moment.replace(tzinfo=dt.UTC) if moment is not None and moment.tzinfo is None else moment


def _job_age(queue: Any, job_id: str | None, now: dt.datetime) -> float | None:
    """Seconds the worker's current job has run (None: no job)."""
    if not job_id:
        return None
    job = queue.fetch_job(job_id)
    started = _utc(job.started_at) if job is not None else None
    return None if started is None else max((now - started).total_seconds(), 0.0)


def queue_figures(connection: redis.Redis, names: Iterable[str],
                  worker_list: list[WorkerFigures] | None = None) -> list[QueueFigures]:
    """The figures of each queue in ``names``."""
    names = list(names)
    worker_list = workers(connection, names) if worker_list is None else worker_list
    now = clock.utcnow()
    result = []
    for name in names:
        queue = get_queue(name, connection)
        oldest = None
        for job_id in queue.get_job_ids(0, 1):
            job = queue.fetch_job(job_id)
            enqueued = _utc(job.enqueued_at) if job is not None else None
            if enqueued is not None:
                oldest = max((now - enqueued).total_seconds(), 0.0)
        result.append(QueueFigures(
            name=name, waiting=queue.count, running=StartedJobRegistry(queue=queue, serializer=queue.serializer).count,
            scheduled=ScheduledJobRegistry(queue=queue, serializer=queue.serializer).count,
            failed=FailedJobRegistry(queue=queue, serializer=queue.serializer).count,
            oldest_waiting=oldest, finished_5m=finished_since(connection, name, 5),
            finished_60m=finished_since(connection, name, 60),
            workers=sum(1 for w in worker_list if w.queue == name)))
    return result


def outbox_figures(binding: Bridge) -> list[OutboxFigures]:
    """This app's outbox per recipient (acknowledgements leave no trace and are not counted)."""
    model = binding.outbox
    now = clock.utcnow()
    rows = binding.session.execute(
        select(model.recipient,
               func.count().filter(model.state == PENDING),
               func.count().filter(model.state != PENDING, model.state != ACKNOWLEDGED),
               func.min(model.created_at).filter(model.state != ACKNOWLEDGED),
               func.coalesce(func.sum(func.greatest(model.attempts - 1, 0)), 0)
               if binding.session.get_bind().dialect.name == "postgresql"
               else func.coalesce(func.sum(func.max(model.attempts - 1, 0)), 0))
        .where(model.message_type != "ack").group_by(model.recipient).order_by(model.recipient)).all()
    figures = []
    for recipient, pending, unacknowledged, oldest, republished in rows:
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=dt.UTC)
        figures.append(OutboxFigures(recipient=recipient, pending=int(pending), unacknowledged=int(unacknowledged),
                                     oldest_unacknowledged=None if oldest is None else
                                     max((now - oldest).total_seconds(), 0.0),
                                     republished=int(republished)))
    return figures


def open_dead_letters(binding: Bridge) -> int:
    """Dead letters not yet retried or discarded."""
    model = binding.dead_letters
    return int(binding.session.execute(
        select(func.count()).select_from(model).where(model.resolved_at.is_(None))).scalar_one())


def dead_letters_by_reason(binding: Bridge) -> dict[str, int]:
    """Every dead letter ever written, by reason (refused envelopes and failed messages alike)."""
    model = binding.dead_letters
    return {reason: int(n) for reason, n in binding.session.execute(
        select(model.reason, func.count()).group_by(model.reason)).all()}


# -- the 24-hour samples -------------------------------------------------------------------------------

SAMPLE_EVERY = dt.timedelta(minutes=5)
SAMPLES_KEPT = 288  # 24 hours of one sample per 5 minutes, per queue


@dataclass(frozen=True)
class Sample:
    """One queue at one moment: jobs waiting, and jobs finished in the 5 minutes before."""

    at: dt.datetime
    waiting: int
    finished: int


def take_samples(connection: redis.Redis, queues: list[QueueFigures], *, now: dt.datetime | None = None) -> bool:
    """Keep one sample per queue every 5 minutes (of several relays, one takes it); False when not yet due.

    Each queue keeps its last 288 samples (a Redis list under the app's prefix): counts only, 24 hours.
    """
    now = now or clock.utcnow()
    if not connection.set(_key("sampled"), int(now.timestamp()), nx=True,
                          ex=max(int(SAMPLE_EVERY.total_seconds()) - 10, 1)):
        return False
    pipe = connection.pipeline(transaction=False)
    for q in queues:
        name = _key("samples", q.name)
        pipe.lpush(name, f"{int(now.timestamp())} {q.waiting} {q.finished_5m}")
        pipe.ltrim(name, 0, SAMPLES_KEPT - 1)
    pipe.execute()
    return True


def samples(connection: redis.Redis, queue: str, *, now: dt.datetime | None = None) -> list[Sample]:
    """The queue's samples of the last 24 hours, oldest first."""
    now = now or clock.utcnow()
    since = now - dt.timedelta(hours=24)
    found = []
    for raw in connection.lrange(_key("samples", queue), 0, SAMPLES_KEPT - 1):
        at, waiting, finished = (int(part) for part in _text(raw).split())
        moment = dt.datetime.fromtimestamp(at, dt.UTC)
        if moment >= since:
            found.append(Sample(moment, waiting, finished))
    return sorted(found, key=lambda sample: sample.at)


@dataclass(frozen=True)
class Chart:
    """A queue's 24 hours as SVG polylines (x: time, 0-480; y: 0-100, top = the highest value)."""

    queue: str
    depth: str
    throughput: str
    peak_depth: int
    peak_throughput: int
    count: int


CHART_WIDTH, CHART_HEIGHT = 480, 100


def chart(queue: str, found: list[Sample], *, now: dt.datetime | None = None) -> Chart:
    """The polyline points of a queue's depth and throughput over the last 24 hours."""
    now = now or clock.utcnow()
    start = now - dt.timedelta(hours=24)
    peak_depth = max((s.waiting for s in found), default=0)
    peak_throughput = max((s.finished for s in found), default=0)

    def points(values: list[tuple[dt.datetime, int]], peak: int) -> str:
        out = []
        for at, value in values:
            x = (at - start).total_seconds() / 86400 * CHART_WIDTH
            y = CHART_HEIGHT - (value / peak * CHART_HEIGHT if peak else 0)
            out.append(f"{x:.1f},{y:.1f}")
        return " ".join(out)

    return Chart(queue, points([(s.at, s.waiting) for s in found], peak_depth),
                 points([(s.at, s.finished) for s in found], peak_throughput), peak_depth, peak_throughput, len(found))


def redis_data_lost(binding: Bridge) -> int:
    """How often this app's relay found that Redis had lost its data (its ``redis_data_lost`` alert rows)."""
    from bridge.relay import REDIS_DATA_LOST

    model = binding.alerts
    if model is None:
        return 0
    return int(binding.session.execute(
        select(func.count()).select_from(model).where(model.kind == REDIS_DATA_LOST)).scalar_one())


def age(value: float | None) -> float:
    """An age for a gauge: 0 when there is nothing to be old."""
    return 0.0 if value is None or math.isnan(value) else value
