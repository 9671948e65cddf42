"""Races on staff sign-in (R5): failures counted and one-time codes spent under real concurrency on PostgreSQL.

Every attempt runs in its own thread with its own client, request, database session and connection,
released together by a barrier, so the database sees the attempts interleave as it would from
twelve terminals at once.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyotp
from sqlalchemy import func, select

from backoffice.models import AuditLog, Staff, StaffSession
from tests.conftest import csrf_from

PARALLEL = 12
ROUNDS = 3  # each race runs on a fresh account this many times; one lost update in any round fails the test


def _parallel(n: int, attempt: Callable[[int], Any]) -> list[Any]:
    """Run ``attempt(i)`` in ``n`` threads released at the same instant; return the results in order."""
    barrier = threading.Barrier(n)

    def run(i: int) -> Any:
        barrier.wait()
        return attempt(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def _clients(backoffice: Any, n: int, prefix: str) -> list[tuple[Any, str]]:
    """``n`` enrolled terminals, each with its sign-in form's CSRF token already fetched."""
    out = []
    for i in range(n):
        client = backoffice.enrolled_client(f"{prefix}-{i}")
        out.append((client, csrf_from(client, "/sign-in")))
    return out


def _post_sign_in(client_and_token: tuple[Any, str], login_id: str, password: str, code: str) -> Any:
    client, token = client_and_token
    return client.post("/sign-in", data={"login_id": login_id, "password": password, "totp": code,
                                         "csrf_token": token})


def _sign_in_reasons(bo_app: Any, login_id: str) -> Counter[str]:
    from backoffice.extensions import db

    with bo_app.app_context():
        rows = db.session.execute(select(AuditLog).where(AuditLog.action == "staff.sign_in",
                                                         AuditLog.actor == login_id)).scalars()
        return Counter(r.detail_dict().get("reason", r.outcome) for r in rows)


def test_parallel_wrong_passwords_are_all_counted_and_lock_the_account(backoffice, bo_app):
    from backoffice.extensions import db

    threshold = bo_app.config["LOCKOUT_THRESHOLD"]
    for rnd in range(ROUNDS):
        login_id = f"clerk{rnd}"
        backoffice.add_staff(login_id, "clerk")
        clients = _clients(backoffice, PARALLEL, f"wrong{rnd}")
        responses = _parallel(PARALLEL, lambda i: _post_sign_in(clients[i], login_id, "wrong password here", "123456"))
        assert [r.status_code for r in responses] == [200] * PARALLEL
        with bo_app.app_context():
            staff = db.session.execute(select(Staff).where(Staff.login_id == login_id)).scalar_one()
            counted, locked = staff.failed_attempts, staff.locked_at is not None
        # Counting stops at the lock: exactly the threshold, every attempt after it refused as locked.
        assert (counted, locked) == (threshold, True), (
            f"round {rnd}: {PARALLEL} parallel wrong passwords left failed_attempts={counted}, locked={locked}")
        assert _sign_in_reasons(bo_app, login_id) == Counter(
            {"bad_password": threshold - 1, "now_locked": 1, "locked": PARALLEL - threshold})
        # The right password and a fresh code are refused now.
        right = _post_sign_in(clients[0], login_id, "correct horse battery", backoffice.totp(login_id))
        assert right.status_code == 200


def test_one_code_used_in_parallel_sign_ins_opens_exactly_one_session(backoffice, bo_app):
    from backoffice.extensions import db

    for rnd in range(ROUNDS):
        login_id = f"clerk{rnd}"
        staff_id = backoffice.add_staff(login_id, "clerk")
        clients = _clients(backoffice, PARALLEL, f"replay{rnd}")
        code = backoffice.totp(login_id)
        responses = _parallel(PARALLEL, lambda i: _post_sign_in(clients[i], login_id, "correct horse battery", code))
        signed_in = [r for r in responses if r.status_code == 302]
        with bo_app.app_context():
            opened = db.session.execute(
                select(func.count(StaffSession.id)).where(StaffSession.staff_id == staff_id)).scalar_one()
        assert (len(signed_in), opened) == (1, 1), (
            f"round {rnd}: one code in {PARALLEL} parallel sign-ins signed in {len(signed_in)} times, "
            f"opened {opened} sessions")
        assert _sign_in_reasons(bo_app, login_id)["success"] == 1


def test_one_code_checked_in_parallel_is_accepted_once(backoffice, bo_app):
    """The check behind the screen unlock and the step-up at approval: the same code passes one caller only."""
    from backoffice.extensions import db
    from backoffice.services import staff as staff_service

    for rnd in range(ROUNDS):
        login_id = f"approver{rnd}"
        staff_id = backoffice.add_staff(login_id, "approver", "clerk")
        code = pyotp.TOTP(backoffice.secrets[login_id]).at(backoffice.clock.now)

        def check(_i: int) -> bool:
            with bo_app.test_request_context("/"):
                staff = db.session.get(Staff, staff_id)
                accepted = staff_service.check_second_factor(staff, code)
                db.session.commit()
                return accepted

        results = _parallel(PARALLEL, check)
        assert results.count(True) == 1, f"round {rnd}: one code was accepted {results.count(True)} times"
        backoffice.clock.advance(seconds=30)


def test_one_code_in_parallel_screen_unlocks_unlocks_one_terminal_only(backoffice, bo_app):
    """Someone who saw the code typed at one locked terminal cannot use it at another at the same moment."""
    backoffice.add_staff("clerk1", "clerk")
    clients = []
    for i in range(PARALLEL):
        client = backoffice.enrolled_client(f"unlock-{i}")
        assert backoffice.sign_in(client, "clerk1").status_code == 302
        clients.append((client, csrf_from(client, "/")))
    code = backoffice.totp("clerk1")

    def unlock(i: int) -> Any:
        client, token = clients[i]
        return client.post("/screen/unlock", data={"csrf_token": token, "totp": code, "next": "/ledger/search"})

    responses = _parallel(PARALLEL, unlock)
    back = [r for r in responses if r.headers.get("Location") == "/ledger/search"]
    assert len(back) == 1, f"one code unlocked {len(back)} of {PARALLEL} terminals"
    assert sum(client.get("/").status_code == 200 for client, _ in clients) == 1
