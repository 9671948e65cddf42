"""Fault (i): the back office's PostgreSQL goes away under the workers mid-job, as in a restart, three times.

The shared PostgreSQL cluster cannot be restarted by a test, so the intake workers reach it through
a TCP proxy on loopback that the test cuts (every connection breaks, new ones are refused) and
restores. A job whose transaction broke fails and is retried by rq; a commit whose answer was lost
is retried too and found already processed. No job may be counted done without its committed effect.
"""

from __future__ import annotations

import time

import pytest
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, FinishedJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy.engine import make_url

from bridge.queues import get_queue
from tests.bridge.conftest import INTAKE
from tests.bridge.pipeline import all_delivered, consistency, oracle, start_relay, submit_many
from tests.bridge.tcpproxy import TcpProxy

APPLICATIONS = 150
# Short retry intervals keep the test brief; the production default starts at 5 s (docs/operations.md).
FAST_RETRIES = {"BRIDGE_RETRY_INTERVALS": "1,2,4,8,16"}


@pytest.mark.parametrize("bridge_settings", [FAST_RETRIES], indirect=True)
def test_database_connections_cut_mid_job_are_retried_and_no_job_is_done_without_its_committed_case(
        bridged, card_pool, backoffice_db_url, bridge_settings):
    receipts = submit_many(bridged, card_pool, APPLICATIONS)
    url = make_url(backoffice_db_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        workers = [bridged.start_worker("backoffice", INTAKE, cli=True,
                                        env={"BACKOFFICE_DATABASE_URL": through_proxy}) for _ in range(2)]
        start_relay(bridged, "portal")
        for threshold in (20, 60, 100):
            bridged.wait_for(lambda t=threshold: oracle(bridged)[1] >= t, timeout=90, interval=0.05)
            proxy.cut()  # mid-stream: some horse is inside its transaction or its commit
            time.sleep(2)  # the "restart" lasts a while: connections are refused meanwhile
            proxy.restore()
        bridged.wait_for(lambda: all_delivered(bridged, APPLICATIONS), timeout=120, interval=0.5)
    finally:
        proxy.close()

    assert oracle(bridged) == (APPLICATIONS, APPLICATIONS, APPLICATIONS)  # one case per application, no extras
    assert consistency(bridged) == dict.fromkeys(consistency(bridged), 0)
    logs = "".join(bridged.worker_log(w) for w in workers)
    assert "OperationalError" in logs  # the cuts did break jobs mid-way
    # Every job rq counts as finished has its processed message and its case committed; none failed for good.
    connection = bridged.redis.client()
    queue = get_queue(INTAKE, connection)
    finished = FinishedJobRegistry(queue=queue).get_job_ids()
    assert FailedJobRegistry(queue=queue).get_job_ids() == []
    processed = {p.message_id for p in bridged.rows(bridged.bo_app, "processed")}
    assert len(finished) == APPLICATIONS and set(finished) <= processed
    for job_id in finished:
        assert Job.fetch(job_id, connection=connection, serializer=JSONSerializer).get_status() == JobStatus.FINISHED
    assert len(receipts) == APPLICATIONS
