"""A running bridge logs what happened to messages, not rq's routine maintenance every few seconds."""

from __future__ import annotations

import logging
import uuid

from rq import Queue, Worker

from bridge.settings import configure_logging


def test_rq_cleaning_its_registries_logs_nothing_at_info_but_its_warnings_still_show(redis_client, caplog):
    configure_logging()
    queue = Queue(f"quiet-{uuid.uuid4().hex}", connection=redis_client)
    worker = Worker([queue], connection=redis_client)
    try:
        with caplog.at_level(logging.INFO):
            worker.clean_registries()  # what each worker does every few seconds (and logged at INFO)
            logging.getLogger("rq.worker").warning("Worker %s: moving job to the failed registry", worker.name)
        messages = [r.getMessage() for r in caplog.records]
        assert not any("cleaning registries" in m for m in messages), messages
        assert any("moving job to the failed registry" in m for m in messages)
    finally:
        for key in redis_client.scan_iter(f"rq:*{queue.name}*"):
            redis_client.delete(key)
