"""``GET /metrics`` of both apps, in Prometheus's text format, only for ``Authorization: Bearer <METRICS_TOKEN>``.

Without ``METRICS_TOKEN`` set, or without the right token, the path is what any unknown path is: the
app's 404 page. The endpoint sits in front of the app (a WSGI wrapper), so it opens no session,
needs no terminal and writes no operation-log row; it only reads.

Every figure is read at scrape time from Redis and the app's own database (``bridge.monitor``),
and the counters the workers keep live in Redis, so whichever gunicorn worker answers gives the
same numbers: no per-process state, no ``PROMETHEUS_MULTIPROC_DIR``. Labels are queue names,
parties, reasons and kinds only.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Flask
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from bridge import monitor

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Families other modules add (open alerts, paused intake): each a function of the app's bridge binding.
EXTRA_FAMILIES: list[Callable[[Any], Iterable[Metric]]] = []


class BridgeCollector(Collector):
    """The app's queues, workers, outbox, dead letters and job counts, read when Prometheus scrapes."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        from core.redisconn import get_redis

        with self.app.app_context():
            binding = self.app.extensions["bridge"]
            try:
                yield from self._families(binding, get_redis())
            finally:
                binding.session.rollback()

    def _families(self, binding: Any, connection: Any) -> Iterator[Metric]:
        party = binding.party
        names = monitor.queues_of(binding)
        queues = monitor.queue_figures(connection, names)
        jobs = GaugeMetricFamily("bridge_queue_jobs", "Jobs on the queue by state.", labels=["party", "queue", "state"])
        oldest = GaugeMetricFamily("bridge_queue_oldest_waiting_seconds", "Age of the oldest waiting job (0: none).",
                                   labels=["party", "queue"])
        live = GaugeMetricFamily("bridge_queue_workers", "Live workers taking the queue's jobs.",
                                 labels=["party", "queue"])
        for q in queues:
            for state in ("waiting", "running", "scheduled", "failed"):
                jobs.add_metric([party, q.name, state], getattr(q, state))
            oldest.add_metric([party, q.name], monitor.age(q.oldest_waiting))
            live.add_metric([party, q.name], q.workers)
        yield from (jobs, oldest, live)

        pending = GaugeMetricFamily("bridge_outbox_pending", "Outbox messages not yet published.",
                                    labels=["party", "recipient"])
        unacked = GaugeMetricFamily("bridge_outbox_unacknowledged", "Outbox messages published, not acknowledged.",
                                    labels=["party", "recipient"])
        lag = GaugeMetricFamily("bridge_outbox_oldest_unacknowledged_seconds",
                                "Age of the oldest outbox message not acknowledged (0: none).",
                                labels=["party", "recipient"])
        republished = CounterMetricFamily("bridge_messages_republished", "Publications beyond a message's first.",
                                          labels=["party", "recipient"])
        for o in monitor.outbox_figures(binding):
            pending.add_metric([party, o.recipient], o.pending)
            unacked.add_metric([party, o.recipient], o.unacknowledged)
            lag.add_metric([party, o.recipient], monitor.age(o.oldest_unacknowledged))
            republished.add_metric([party, o.recipient], o.republished)
        yield from (pending, unacked, lag, republished)

        dead = GaugeMetricFamily("bridge_dead_letters_open", "Dead letters not yet retried or discarded.",
                                 labels=["party"])
        dead.add_metric([party], monitor.open_dead_letters(binding))
        dead_total = CounterMetricFamily("bridge_messages_dead_lettered", "Dead letters written, by reason.",
                                         labels=["party", "reason"])
        for reason, n in sorted(monitor.dead_letters_by_reason(binding).items()):
            dead_total.add_metric([party, reason], n)
        yield from (dead, dead_total)
        lost = CounterMetricFamily("bridge_redis_data_lost", "Times the relay found Redis had lost its data.",
                                   labels=["party"])
        lost.add_metric([party], monitor.redis_data_lost(binding))
        yield lost
        if binding.alerts is not None:
            from bridge import alerting

            alerts = GaugeMetricFamily("bridge_alerts_open", "Alerts not yet resolved, by kind.",
                                       labels=["party", "kind"])
            for kind, n in sorted(alerting.open_counts(binding).items()):
                alerts.add_metric([party, kind], n)
            yield alerts

        counts = monitor.read_counts(connection)
        delivered = CounterMetricFamily("bridge_jobs", "Jobs finished, by queue and outcome.",
                                        labels=["party", "queue", "outcome"])
        for (queue, outcome), n in sorted(counts.jobs.items()):
            delivered.add_metric([party, queue, outcome], n)
        refused = CounterMetricFamily("bridge_messages_refused", "Envelopes refused, by reason.",
                                      labels=["party", "reason"])
        for reason, n in sorted(counts.refused.items()):
            refused.add_metric([party, reason], n)
        yield from (delivered, refused)
        for name, help_text, values in (
                ("bridge_job_run_seconds", "Run time of a delivery job.", counts.runtime),
                ("bridge_message_latency_seconds",
                 "From the sender sealing a message to its effect (on an intake queue: submission to case).",
                 counts.latency)):
            family = HistogramMetricFamily(name, help_text, labels=["party", "queue"])
            for queue, (buckets, total, _count) in sorted(values.items()):
                family.add_metric([party, queue], buckets, total)
            yield family
        for extra in EXTRA_FAMILIES:
            yield from extra(binding)


class MetricsEndpoint:
    """WSGI wrapper: answers ``GET /metrics`` with the right bearer token; passes everything else on."""

    def __init__(self, app: Flask, wsgi_app: Any) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(BridgeCollector(app))

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") != "/metrics" or not self._authorized(environ):
            return self.wsgi_app(environ, start_response)
        body = generate_latest(self.registry)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body))),
                                  ("Cache-Control", "no-store")])
        return [body]

    def _authorized(self, environ: dict[str, Any]) -> bool:
        token = str(self.app.config.get("METRICS_TOKEN") or "")
        if not token or environ.get("REQUEST_METHOD") != "GET":
            return False
        given = str(environ.get("HTTP_AUTHORIZATION", ""))
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def install(app: Flask) -> None:
    """Serve ``/metrics`` in front of ``app``."""
    app.wsgi_app = MetricsEndpoint(app, app.wsgi_app)  # type: ignore[method-assign]
