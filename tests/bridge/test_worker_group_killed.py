"""Fault (a): every intake worker killed with -9 (parents, work-horses, schedulers) while 200 applications flow.

The production heartbeat settings apply (``BRIDGE_WORKER_TTL`` 60, ``BRIDGE_JOB_MONITORING_INTERVAL``
10, ``BRIDGE_MAINTENANCE_INTERVAL`` 5): the jobs still queued flow as soon as the workers are
restarted; a job that was running when its worker died waits for its heartbeat to expire. The
measured recovery time is documented in docs/operations.md ("Timing").
"""

from __future__ import annotations

import time

from tests.bridge.conftest import INTAKE, kill_tree
from tests.bridge.pipeline import all_delivered, case_receipts, consistency, oracle, start_relay, submit_many

APPLICATIONS = 200
# docs/operations.md: every application of a killed worker group is a case within 180 s. The stranded jobs wait
# for their heartbeat (70 s) and then for the backlog ahead of them, which on a 2-core host shared with the rest
# of the suite takes up to about a minute more (77 s measured alone, 139 s beside the other fault tests).
BOUND_SECONDS = 180


def test_killing_the_whole_worker_group_mid_stream_still_makes_one_case_per_application_within_the_bound(
        bridged, card_pool):
    receipts = submit_many(bridged, card_pool, APPLICATIONS)
    workers = [bridged.start_worker("backoffice", INTAKE, cli=True) for _ in range(2)]
    start_relay(bridged, "portal")
    bridged.wait_for(lambda: oracle(bridged)[1] >= 20, timeout=90, interval=0.1)

    killed_at = time.monotonic()
    for worker in workers:
        kill_tree(worker)  # no one is left to say a job died
    for worker in workers:
        worker.wait(10)
    applications, cases, _ = oracle(bridged)
    assert cases < applications, "the kill came too late to leave anything queued or in flight"
    workers = [bridged.start_worker("backoffice", INTAKE, cli=True) for _ in range(2)]  # the supervisor restarts

    bridged.wait_for(lambda: all_delivered(bridged, APPLICATIONS), timeout=BOUND_SECONDS + 60, interval=0.5)
    recovered = time.monotonic() - killed_at
    print(f"\nworker group killed with {cases} of {APPLICATIONS} applications made into cases: "
          f"all {APPLICATIONS} were cases {recovered:.1f} s after the kill")
    assert oracle(bridged) == (APPLICATIONS, APPLICATIONS, APPLICATIONS)  # one case per application, no extras
    assert sorted(case_receipts(bridged)) == sorted(receipts)
    assert consistency(bridged) == dict.fromkeys(consistency(bridged), 0)
    assert recovered < BOUND_SECONDS
