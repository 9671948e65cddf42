"""Bridge settings: each read from the app config, then the environment, then the default here."""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.config import ConfigError

MAX_DELIVERY_BATCH = 50  # messages in one delivery job, whatever the settings say (a worker refuses more)

DEFAULTS: dict[str, Any] = {
    # The relay republishes a message not acknowledged this long after publishing, doubling each time.
    "BRIDGE_REPUBLISH_AFTER_SECONDS": 300,
    "BRIDGE_MAX_BACKOFF_SECONDS": 3600,
    # rq retries of a failing delivery (seconds between attempts); then the message is dead-lettered.
    "BRIDGE_RETRY_INTERVALS": "5,30,120,600,1800",
    "BRIDGE_JOB_TIMEOUT_SECONDS": 120,
    "BRIDGE_RESULT_TTL_SECONDS": 3600,
    # The dead-letter table is the record of failures; rq's copy need not outlive a week.
    "BRIDGE_FAILURE_TTL_SECONDS": 7 * 24 * 3600,
    # Older messages are refused; processed-message rows must be kept at least this long.
    "BRIDGE_MAX_MESSAGE_AGE_DAYS": 30,
    # rq worker heartbeats: a killed worker's job is taken up again after about 75 s (docs/operations.md).
    "BRIDGE_WORKER_TTL": 60,
    "BRIDGE_JOB_MONITORING_INTERVAL": 10,
    "BRIDGE_MAINTENANCE_INTERVAL": 5,
    "BRIDGE_RELAY_INTERVAL_SECONDS": 1.0,
    "BRIDGE_RELAY_BATCH": 100,
    # Woken by a committed row, the relay begins its next pass no sooner than this after the previous one
    # began: rows committed meanwhile leave in the same pass (fewer passes under load, fuller batches).
    "BRIDGE_RELAY_GATHER_SECONDS": 0.1,
    # First publications to one of the system's own queues in one relay pass share a job, up to this many.
    "BRIDGE_DELIVERY_BATCH": 10,
    # While jobs wait on such a queue, its new rows stay in the outbox up to this long, to leave as one batch.
    "BRIDGE_DELIVERY_HOLD_SECONDS": 0.5,
}


@dataclass(frozen=True)
class BridgeSettings:
    """The timing of the relay, the retries and the workers."""

    republish_after: dt.timedelta
    max_backoff: dt.timedelta
    retry_intervals: tuple[int, ...]
    job_timeout: int
    result_ttl: int
    failure_ttl: int
    max_message_age: dt.timedelta
    worker_ttl: int
    job_monitoring_interval: int
    maintenance_interval: int
    relay_interval: float
    relay_batch: int
    relay_gather: float
    delivery_batch: int
    delivery_hold: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> BridgeSettings:
        """Read every setting (config, then environment, then default) and check it."""
        intervals = _get(config, "BRIDGE_RETRY_INTERVALS")
        if isinstance(intervals, str):
            try:
                intervals = [int(part) for part in intervals.split(",") if part.strip()]
            except ValueError as exc:
                raise ConfigError("BRIDGE_RETRY_INTERVALS is a comma-separated list of seconds") from exc
        retry_intervals = tuple(int(i) for i in intervals)
        if not retry_intervals or any(i < 0 for i in retry_intervals):
            raise ConfigError("BRIDGE_RETRY_INTERVALS needs at least one interval, none negative")
        settings = cls(
            republish_after=dt.timedelta(seconds=_number(config, "BRIDGE_REPUBLISH_AFTER_SECONDS")),
            max_backoff=dt.timedelta(seconds=_number(config, "BRIDGE_MAX_BACKOFF_SECONDS")),
            retry_intervals=retry_intervals,
            job_timeout=int(_number(config, "BRIDGE_JOB_TIMEOUT_SECONDS")),
            result_ttl=int(_number(config, "BRIDGE_RESULT_TTL_SECONDS")),
            failure_ttl=int(_number(config, "BRIDGE_FAILURE_TTL_SECONDS")),
            max_message_age=dt.timedelta(days=_number(config, "BRIDGE_MAX_MESSAGE_AGE_DAYS")),
            worker_ttl=int(_number(config, "BRIDGE_WORKER_TTL")),
            job_monitoring_interval=int(_number(config, "BRIDGE_JOB_MONITORING_INTERVAL")),
            maintenance_interval=int(_number(config, "BRIDGE_MAINTENANCE_INTERVAL")),
            relay_interval=_number(config, "BRIDGE_RELAY_INTERVAL_SECONDS"),
            relay_batch=int(_number(config, "BRIDGE_RELAY_BATCH")),
            relay_gather=_number(config, "BRIDGE_RELAY_GATHER_SECONDS"),
            delivery_batch=int(_number(config, "BRIDGE_DELIVERY_BATCH")),
            delivery_hold=_number(config, "BRIDGE_DELIVERY_HOLD_SECONDS"),
        )
        if settings.worker_ttl <= settings.job_monitoring_interval:
            raise ConfigError("BRIDGE_WORKER_TTL must be longer than BRIDGE_JOB_MONITORING_INTERVAL")
        if settings.republish_after.total_seconds() <= 0 or settings.job_timeout <= 0:
            raise ConfigError("the republish timeout and the job timeout must be positive")
        if not 0 <= settings.relay_gather <= 1:
            raise ConfigError("BRIDGE_RELAY_GATHER_SECONDS must be between 0 (a pass as soon as woken) and 1")
        if not 0 <= settings.delivery_hold <= 5:
            raise ConfigError("BRIDGE_DELIVERY_HOLD_SECONDS must be between 0 (never held) and 5")
        if not 1 <= settings.delivery_batch <= MAX_DELIVERY_BATCH:
            raise ConfigError(f"BRIDGE_DELIVERY_BATCH must be between 1 (one message per job) and {MAX_DELIVERY_BATCH}")
        return settings


def _get(config: Mapping[str, Any], name: str) -> Any:
    value = config.get(name)
    if value is None or value == "":
        value = os.environ.get(name) or DEFAULTS[name]
    return value


def _number(config: Mapping[str, Any], name: str) -> float:
    value = _get(config, name)
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a number, got {value!r}") from exc


# rq's routine maintenance, logged at INFO by every worker every few seconds: noise beside the bridge's own lines.
ROUTINE_RQ_LINES = frozenset({
    "Worker %s: cleaning registries for queue: %s",
    "Worker %s: cleaning group registries",
    "Acquired scheduler lock for %s",
})


class RoutineRqFilter(logging.Filter):
    """Drop rq's routine maintenance lines at INFO and below; warnings and errors always pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or record.msg not in ROUTINE_RQ_LINES


def configure_logging() -> None:
    """Log the bridge's own lines (ids, types, reasons; never payloads) at INFO on stderr, once per process.

    rq's own routine lines (cleaning registries, taking the scheduler lock) are dropped; the rest of rq's log stays.
    """
    for name in ("rq.worker", "rq.scheduler"):
        rq_logger = logging.getLogger(name)
        if not any(isinstance(f, RoutineRqFilter) for f in rq_logger.filters):
            rq_logger.addFilter(RoutineRqFilter())
    logger = logging.getLogger("bridge")
    if logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
