"""Fault (d): Redis stopped while residents send 200 applications through the portal's API, then started again.

Redis holds the one-time signing challenges (nonces), so while it is down the portal cannot take a
signed application: it answers 503 with ``Retry-After`` and stores nothing, never a 500. A receipt
is only shown after the application and its outbox row are committed, which needs PostgreSQL
alone; the relay publishes them once Redis is back. Residents who got a 503 try again later.

50 residents send 4 applications each, 8 at a time: issuing and signing in 200 cards would take
minutes on a loaded machine and prove nothing more about the bridge.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.bridge.conftest import INTAKE
from tests.bridge.pipeline import (
    all_delivered,
    case_receipts,
    consistency,
    oracle,
    portal_receipts,
    residents,
    start_relay,
)

RESIDENTS, EACH = 50, 4
APPLICATIONS = RESIDENTS * EACH
OUTAGE_SECONDS = 6


def test_redis_stopped_while_residents_submit_200_loses_no_shown_receipt_gives_no_500_and_all_arrive_after(
        bridged, card_pool):
    people = residents(bridged, card_pool, RESIDENTS)  # signed in and linked while Redis was up
    start_relay(bridged, "portal")
    for _ in range(2):
        bridged.start_worker("backoffice", INTAKE, cli=True)

    statuses: list[int] = []
    unavailable: list[tuple[str | None, dict]] = []
    lock = threading.Lock()
    redis_back = threading.Event()

    def resident_submits(person) -> None:
        while len(person.receipts) < EACH:
            response = person.submit()
            with lock:
                statuses.append(response.status_code)
            if response.status_code == 503:
                with lock:
                    unavailable.append((response.headers.get("Retry-After"), response.get_json()))
                assert redis_back.wait(120)  # as a resident told "try again shortly" would
                time.sleep(0.2)
            elif response.status_code != 202:
                raise AssertionError(f"unexpected {response.status_code}: {response.get_data(as_text=True)[:300]}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(resident_submits, p) for p in people]
        bridged.wait_for(lambda: len(portal_receipts(bridged)) >= 60, timeout=120, interval=0.05)
        bridged.redis.shutdown_save()  # Redis goes down in the middle of the stream
        stopped_with = len(portal_receipts(bridged))
        time.sleep(OUTAGE_SECONDS)
        bridged.redis.start()
        redis_back.set()
        for future in futures:
            future.result(timeout=300)

    shown = [r for p in people for r in p.receipts]
    assert len(shown) == APPLICATIONS == len(set(shown))
    assert sorted(portal_receipts(bridged)) == sorted(shown)  # every receipt shown is in the database, no other
    assert 500 not in statuses and set(statuses) <= {202, 503}
    assert unavailable, "the outage hit no request"
    assert all(retry == "30" and body == {"error": "temporarily_unavailable"} for retry, body in unavailable)
    assert stopped_with < APPLICATIONS

    # A job that was running when Redis went down is taken up again when its heartbeat expires (fault (a)'s bound).
    took = bridged.wait_for(lambda: all_delivered(bridged, APPLICATIONS), timeout=180, interval=0.5)
    print(f"\nRedis down {OUTAGE_SECONDS} s after {stopped_with} receipts: {len(unavailable)} requests got 503; "
          f"all {APPLICATIONS} delivered {took:.1f} s after the last submission")
    assert oracle(bridged) == (APPLICATIONS, APPLICATIONS, APPLICATIONS)  # one case per application, no extras
    assert sorted(case_receipts(bridged)) == sorted(shown)
    checks = consistency(bridged)
    assert checks == dict.fromkeys(checks, 0)
