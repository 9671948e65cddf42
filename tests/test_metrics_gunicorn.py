"""GET /metrics under gunicorn with several worker processes, as `make serve` runs the apps: every answer agrees."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bridge.queues import get_queue
from tests.bridge.conftest import INTAKE, RedisServer
from tests.conftest import SECRETS
from tests.e2e.conftest import free_port
from tests.leakscan_plugin import keep_log
from tests.test_serve import Served

TOKEN = secrets.token_urlsafe(24)


@pytest.fixture
def backoffice_served(backoffice_db_url: str, jlis_config: dict[str, str], session_dir: Path,
                      tmp_path: Path) -> Iterator[tuple[Served, RedisServer]]:
    """The back office under gunicorn (2 workers) with METRICS_TOKEN, on a private redis-server."""
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN", "WEB_CONCURRENCY", "FORWARDED"))}
    env.update({
        **jlis_config, **SECRETS,
        "APP_ENV": "test", "INSTANCE_PATH": str(tmp_path / "instance"), "BACKOFFICE_DATABASE_URL": backoffice_db_url,
        "REDIS_URL": redis_server.url, "METRICS_TOKEN": TOKEN,
        "AUDIT_CHECKPOINT_PATH": str(tmp_path / "checkpoints.jsonl"),
        "AUDIT_CHECKPOINT_KEY_PATH": str(session_dir / "checkpoint-key.pem"),
        "SITE_ORIGIN": f"http://127.0.0.1:{free_port()}", "COUNTER_ORIGIN": f"http://localhost:{port}",
    })
    server = Served("wsgi:backoffice_app", port, env, tmp_path / "backoffice.log")
    try:
        server.wait_ready("/terminal/enroll")
        yield server, redis_server
    finally:
        server.stop()
        keep_log(server.log, "gunicorn-metrics")
        redis_server.stop()


def test_five_waiting_intake_jobs_read_as_five_from_every_gunicorn_worker_and_nothing_without_the_token(
        backoffice_served):
    server, redis_server = backoffice_served
    queue = get_queue(INTAKE, redis_server.client())
    for _ in range(5):
        job_id = str(uuid.uuid4())
        queue.enqueue_call("bridge.jobs.deliver.deliver", args=(job_id, "sealed"), job_id=job_id)

    assert requests.get(server.origin + "/metrics", timeout=10).status_code == 404
    wrong = requests.get(server.origin + "/metrics", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 404
    depths = []
    for _ in range(12):  # new connections: the two worker processes take turns
        response = requests.get(server.origin + "/metrics", headers={"Authorization": f"Bearer {TOKEN}",
                                                                     "Connection": "close"}, timeout=10)
        assert response.status_code == 200
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in text_string_to_metric_families(response.text) for s in f.samples}
        depths.append(samples[("bridge_queue_jobs", (("party", "muni:032051"), ("queue", INTAKE),
                                                     ("state", "waiting")))])
    assert depths == [5.0] * 12
