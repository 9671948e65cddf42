"""GET /metrics of both apps: Prometheus text, only for the bearer token, read from Redis and the database."""

from __future__ import annotations

import re
import secrets

from prometheus_client.parser import text_string_to_metric_families

from tests.bridge.conftest import BO_PARTY, INTAKE, ROOT

SECRET = "秘密の申請内容"


def _samples(response) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    assert response.status_code == 200, response.status_code
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.get_data(as_text=True)) for s in family.samples}


def _value(samples, name, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def _scrape(app, token):
    return app.test_client().get("/metrics", headers={"Authorization": f"Bearer {token}"})


def test_five_waiting_jobs_on_an_intake_queue_show_as_depth_five_and_without_the_token_the_endpoint_is_404(bridged):
    token = secrets.token_urlsafe(24)
    ids = bridged.send("test.note", [{"marker": SECRET} for _ in range(5)])
    assert bridged.relay(bridged.portal_app) == 5  # five jobs wait: no worker runs

    office = bridged.bo_app
    # No token configured: the path is as unknown as any other, whatever the request carries.
    assert office.config["METRICS_TOKEN"] == ""
    assert _scrape(office, "").status_code == 404
    office.config["METRICS_TOKEN"] = token
    client = office.test_client()
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": f"Bearer {token}x"}).status_code == 404
    assert client.get("/metrics", headers={"Authorization": token}).status_code == 404
    assert client.post("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 404

    response = _scrape(office, token)
    samples = _samples(response)
    assert _value(samples, "bridge_queue_jobs", party=BO_PARTY, queue=INTAKE, state="waiting") == 5
    assert _value(samples, "bridge_queue_jobs", party=BO_PARTY, queue=INTAKE, state="failed") == 0
    assert _value(samples, "bridge_queue_workers", party=BO_PARTY, queue=INTAKE) == 0
    assert _value(samples, "bridge_queue_oldest_waiting_seconds", party=BO_PARTY, queue=INTAKE) >= 0
    text = response.get_data(as_text=True)
    assert not any(message_id in text for message_id in ids) and SECRET not in text

    # The portal's side: its outbox holds five messages published and not yet acknowledged.
    portal = bridged.portal_app
    assert _scrape(portal, token).status_code == 404
    portal.config["METRICS_TOKEN"] = token
    figures = _samples(_scrape(portal, token))
    assert _value(figures, "bridge_outbox_unacknowledged", party="portal", recipient=BO_PARTY) == 5
    assert _value(figures, "bridge_outbox_pending", party="portal", recipient=BO_PARTY) == 0

    # Every series the shipped alert rules ask for is one the apps export.
    wanted = set(re.findall(r"\bbridge_[a-z_]+", (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()))
    exported = {name for name, _labels in {**samples, **figures}}
    assert len(wanted) == 5 and wanted <= exported, wanted - exported


def test_the_workers_counts_and_timings_and_dead_letters_reach_the_metrics(bridged):
    token = secrets.token_urlsafe(24)
    bridged.bo_app.config["METRICS_TOKEN"] = token
    bridged.send("test.note", [{"marker": SECRET} for _ in range(3)])
    bridged.send("test.schema", [{"marker": SECRET}])
    assert bridged.relay(bridged.portal_app) == 4
    bridged.run_burst("backoffice", INTAKE)

    samples = _samples(_scrape(bridged.bo_app, token))
    assert _value(samples, "bridge_queue_jobs", party=BO_PARTY, queue=INTAKE, state="waiting") == 0
    assert _value(samples, "bridge_jobs_total", party=BO_PARTY, queue=INTAKE, outcome="delivered") == 3
    assert _value(samples, "bridge_jobs_total", party=BO_PARTY, queue=INTAKE, outcome="dead_lettered") == 1
    assert _value(samples, "bridge_dead_letters_open", party=BO_PARTY) == 1
    assert _value(samples, "bridge_messages_dead_lettered_total", party=BO_PARTY, reason="schema_error") == 1
    assert _value(samples, "bridge_job_run_seconds_count", party=BO_PARTY, queue=INTAKE) == 4
    assert _value(samples, "bridge_message_latency_seconds_count", party=BO_PARTY, queue=INTAKE) == 3
    assert _value(samples, "bridge_message_latency_seconds_bucket", party=BO_PARTY, queue=INTAKE, le="+Inf") == 3
