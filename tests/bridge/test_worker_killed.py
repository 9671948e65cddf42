"""Fault test: kill -9 a whole worker (parent, work-horse, scheduler) mid-job; another worker recovers the job.

This is the slowest test of the suite (about 80 s, rq's heartbeat expiry), so it has a file of its
own and runs beside the others. The measured time is printed and documented in docs/operations.md.
"""

from __future__ import annotations

import time

from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from tests.bridge.conftest import INTAKE, kill_tree

BOUND_SECONDS = 120  # docs/operations.md: about 80 s; fail well before anything is wrong for longer


def test_a_worker_killed_mid_job_is_recovered_by_another_worker_and_the_message_takes_effect_once(bridged):
    [slow] = bridged.send("test.note", [{"n": 0, "sleep": 4}])
    others = bridged.send("test.note", [{"n": i} for i in range(1, 4)])
    assert bridged.relay(bridged.portal_app) == 4
    first = bridged.start_worker("backoffice", INTAKE)
    connection = bridged.redis.client()

    def status() -> JobStatus:
        return Job.fetch(slow, connection=connection, serializer=JSONSerializer).get_status()

    bridged.wait_for(lambda: status() == JobStatus.STARTED, timeout=30, interval=0.1)
    time.sleep(1)  # the handler is sleeping inside its transaction
    killed_at = time.monotonic()
    kill_tree(first)  # parent, horse and scheduler: no one is left to say the job died
    first.wait(10)
    second = bridged.start_worker("backoffice", INTAKE)

    bridged.wait_for(lambda: bridged.effects()[1] >= 3, timeout=60)  # the rest flows at once
    restarted = killed_at + bridged.wait_for(
        lambda: status() in (JobStatus.STARTED, JobStatus.FINISHED) and _execution_after_kill(connection, slow),
        timeout=BOUND_SECONDS, interval=0.5)
    bridged.wait_for(lambda: bridged.effects() == (4, 4), timeout=30)
    done = time.monotonic() - killed_at
    print(f"\nworker killed with -9: job taken up again {restarted - killed_at:.1f} s later, "
          f"applied {done:.1f} s later")
    assert bridged.effects() == (4, 4)  # the count oracle
    assert {p.message_id for p in bridged.rows(bridged.bo_app, "processed")} == {slow, *others}
    assert bridged.rows(bridged.bo_app, "dead") == []
    assert done < BOUND_SECONDS
    assert "Worker" in bridged.worker_log(second)


def _execution_after_kill(connection, job_id: str) -> bool:
    """True once the job was retried (rq decrements retries_left when it takes an abandoned job up again)."""
    job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
    return job.retries_left is not None and job.retries_left < 5
