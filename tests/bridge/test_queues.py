"""Queue names: every queue the system publishes to has a consumer, and every consumer has a worker."""

from __future__ import annotations

import pytest
from rq.serializers import JSONSerializer

from bridge.queues import QueueNames, get_queue

PARTIES = ["portal", "muni:032051", "muni:032069", "peer:prefecture", "peer:jlis", "peer:dept:tax",
           "peer:muni-standin"]
MESSAGE_TYPES = ["application.submitted", "application.withdrawn", "status.changed", "moveout.certificate", "ack"]


def _routes() -> set[tuple[str, str, str]]:
    """Every (sender, recipient, queue) the routing rules produce."""
    routes = set()
    for sender in PARTIES:
        for recipient in PARTIES:
            for message_type in MESSAGE_TYPES:
                try:
                    queue = QueueNames.for_message(sender=sender, recipient=recipient, message_type=message_type)
                except ValueError:
                    continue
                routes.add((sender, recipient, queue))
    return routes


def test_the_queue_names_are_spelled_in_one_place():
    assert QueueNames.intake("032051") == "intake:032051"
    assert QueueNames.muni("032069") == "muni:032069"
    assert QueueNames.STATUS == "status"
    assert QueueNames.outbound("prefecture") == QueueNames.outbound("peer:prefecture") == "outbound:prefecture"
    assert QueueNames.ack("muni:032051") == "ack:muni:032051"
    for bad in ("12345", "03205a"):
        with pytest.raises(ValueError):
            QueueNames.intake(bad)
    with pytest.raises(ValueError):
        QueueNames.consumer("intake:")
    with pytest.raises(ValueError):
        QueueNames.ack("muni:1")


def test_every_queue_the_system_uses_has_a_consumer_that_runs_a_worker_for_it():
    routes = _routes()
    assert {q.split(":")[0] for _, _, q in routes} == {"intake", "muni", "status", "outbound", "ack"}
    for sender, recipient, queue in routes:
        assert QueueNames.consumer(queue) == recipient, (sender, queue)
        assert queue in QueueNames.consumed_by(recipient), (recipient, queue)
    # and the reverse: a worker is started only for queues something is sent on
    used = {q for _, _, q in routes}
    for party in PARTIES:
        assert set(QueueNames.consumed_by(party)) <= used, party


def test_the_worker_command_refuses_a_queue_its_party_does_not_consume(tmp_path):
    from bridge.worker import make_worker
    from portal import create_app

    app = create_app({"APP_ENV": "test", "PORTAL_DATABASE_URL": "sqlite://", "BRIDGE_KEY_DIRECTORY": str(tmp_path),
                      "REDIS_URL": "redis://127.0.0.1:1/0"})
    with pytest.raises(ValueError, match="consumes status, ack:portal"):
        make_worker(app, "intake:032051")
    result = app.test_cli_runner().invoke(args=["worker", "--queue", "intake:032051"])
    assert result.exit_code == 2 and "consumes" in result.output


def test_make_run_starts_one_worker_for_each_queue_both_apps_consume():
    from scripts.run import _start_bridge

    class Recorder:
        def __init__(self) -> None:
            self.started: list[tuple[str, ...]] = []

        def add(self, label: str, *args: str) -> None:
            self.started.append(args)

    recorder = Recorder()
    _start_bridge(recorder, "portal", "muni:032051")  # type: ignore[arg-type]
    workers = {(a[1], a[-1]) for a in recorder.started if "worker" in a}
    relays = {a[1] for a in recorder.started if "relay" in a}
    assert relays == {"wsgi:portal_app", "wsgi:backoffice_app"}
    assert workers == {("wsgi:portal_app", q) for q in QueueNames.consumed_by("portal")} | {
        ("wsgi:backoffice_app", q) for q in QueueNames.consumed_by("muni:032051")}


def test_queues_use_the_json_serializer_never_pickle(redis_server):
    queue = get_queue(QueueNames.STATUS, redis_server.client())
    assert queue.serializer is JSONSerializer
