"""Fault (b): the work-horse (the forked child running a delivery) killed with -9 twenty times at random moments.

Real applications, signed with real cards, go from the portal's API through the production relay
and two ``flask worker`` processes to the back office's intake. Each kill lands wherever the horse
happens to be (opening the envelope, verifying the signature, inside the transaction, committing).
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from tests.bridge.conftest import BATCHES, INTAKE, _process_children
from tests.bridge.pipeline import all_delivered, case_receipts, consistency, oracle, start_relay, submit_many

APPLICATIONS = 200
KILLS = 20


def _horses(worker_pids: list[int]) -> list[int]:
    """The work-horses running now (rq puts each in a process group of its own)."""
    horses = []
    for pid in worker_pids:
        for child in _process_children(pid):
            try:
                if os.getpgid(child) == child:
                    horses.append(child)
            except ProcessLookupError:
                pass
    return horses


def interrupted(bridged, workers) -> int:
    """Jobs whose work-horse died under them, as the workers logged it."""
    return sum(bridged.worker_log(w).count("Work-horse terminated unexpectedly") for w in workers)


@pytest.mark.parametrize(("bridge_settings", "kills"), [({}, KILLS), (BATCHES, KILLS // 2)], ids=["alone", "batched"],
                         indirect=["bridge_settings"])
def test_a_work_horse_killed_twenty_times_at_random_leaves_one_case_per_application_and_nothing_half_written(
        bridged, card_pool, bridge_settings, kills):
    """Batched: the 200 go as 20 jobs of 10, and each interrupted batch's rest as jobs of one, so ten kills."""
    receipts = submit_many(bridged, card_pool, APPLICATIONS)
    workers = [bridged.start_worker("backoffice", INTAKE, cli=True) for _ in range(2)]
    start_relay(bridged, "portal")
    rng = random.Random()
    signals, jobs_interrupted, deadline = 0, 0, time.monotonic() + 90
    # A kill that lands after the job has finished interrupts nothing, so the count that matters is the
    # interrupted jobs the workers report; keep killing until twenty have been.
    while jobs_interrupted < kills:
        assert time.monotonic() < deadline, f"only {jobs_interrupted} jobs were interrupted"
        horses = _horses([w.pid for w in workers])
        if not horses:
            time.sleep(0.005)
            continue
        time.sleep(rng.uniform(0, 0.03))  # somewhere inside the job (an intake job takes about 35 ms here)
        try:
            os.kill(rng.choice(horses), signal.SIGKILL)
        except ProcessLookupError:
            continue  # it finished first
        signals += 1
        time.sleep(0.05)  # the worker notices its horse's death before the count
        jobs_interrupted = interrupted(bridged, workers)

    took = bridged.wait_for(lambda: all_delivered(bridged, APPLICATIONS), timeout=120, interval=0.5)
    print(f"\n{jobs_interrupted} jobs interrupted by {signals} kills: "
          f"all {APPLICATIONS} applications were cases {took:.1f} s after the last kill")
    assert oracle(bridged) == (APPLICATIONS, APPLICATIONS, APPLICATIONS)  # one case per application, no extras
    assert sorted(receipts) == sorted(case_receipts(bridged))
    assert consistency(bridged) == dict.fromkeys(consistency(bridged), 0)
    assert all(w.poll() is None for w in workers)  # the workers themselves lived on
    if bridge_settings["BRIDGE_DELIVERY_BATCH"] != "1":  # the kills did interrupt batches, which were split
        assert any("message(s) published again one per job" in bridged.worker_log(w) for w in workers)

