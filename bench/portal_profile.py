"""Where a signed submission's CPU goes in the portal, in one process: a profile, or the CPU of each step.

Set up as the portal figure is (``portal_stack``: a scratch PostgreSQL database, a private
redis-server, simulated J-LIS cards, residents signed in and linked over HTTP), then the portal app
is created in this process with the same environment and the Flask test client posts signed
certificate requests: 30 untimed, then ``N`` measured. Not a figure of ``make bench``.

- ``python -m bench.portal_profile [N] [OUT]`` (300, ``portal.prof``): the ``N`` submissions under
  cProfile; prints the CPU and wall time per submission and writes the profile (``pstats``) to ``OUT``.
  The profiler's own cost falls on every Python call, so it inflates the parts made of many small calls.
- ``python -m bench.portal_profile --steps [N]``: no profiler; each step of a submission (``STEPS``) is
  wrapped to add up the CPU (``time.process_time``) spent inside it, and the total CPU per submission
  is printed with each step's share. Steps nest (an indented step is part of the one above it).
"""

from __future__ import annotations

import collections
import cProfile
import importlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.baselines import RedisServer, scratch_database
from bench.portal import Resident, portal_stack

WARM = 30

# (depth, label, module, attribute[, class]): the functions timed by ``--steps``, looked up where the
# caller looks them up (a module's attribute, or a method of a class), in the order printed.
STEPS: tuple[tuple[int, str, str, str, str | None], ...] = (
    (0, "Flask dispatch (routing to the response)", "flask", "full_dispatch_request", "Flask"),
    (1, "bearer token -> account (api_account)", "portal.security", "api_account", None),
    (2, "token signature and claims (python-jose)", "jose.jwt", "decode", None),
    (2, "account row (Session.get, pool checkout)", "sqlalchemy.orm", "get", "Session"),
    (3, "pool ping", "sqlalchemy.dialects.postgresql._psycopg_common", "do_ping", "_PGDialect_common_psycopg"),
    (2, "card certificate in force (CRL)", "portal.services.cardauth", "auth_certificate_in_force", None),
    (1, "submit (verify, check, store, log)", "portal.services.applications", "submit", None),
    (2, "signature verification", "portal.services.applications", "_verify", None),
    (3, "nonce taken from Redis", "core.jpki.signedapp", "resolve_nonce", None),
    (3, "certificate path and CRL", "core.jpki.signedapp", "validate_path", None),
    (2, "JSON Schema checks", "portal.services.applications", "_schema_errors", None),
    (2, "application rows (one statement)", "portal.services.applications", "_store", None),
    (3, "outbox row: validated, sealed", "portal.services.outbound", "submitted_row", None),
    (4, "message schema", "bridge.messages", "validate", None),
    (4, "seal: sign (ES256) and encrypt (JWE)", "bridge.outbox", "seal", None),
    (2, "operation log append (two statements)", "core.audit", "append", "AuditChain"),
    (1, "commit", "sqlalchemy.orm", "commit", "Session"),
    (2, "signed checkpoint, written and synced", "core.audit", "write_checkpoint", "AuditChain"),
)


@contextmanager
def _stepped(cpu: collections.Counter[str]) -> Iterator[None]:
    """Wrap every step of ``STEPS`` to add its CPU seconds to ``cpu``; unwrapped afterwards."""
    undo: list[Callable[[], None]] = []

    def wrap(owner: Any, attribute: str, label: str) -> None:
        original = getattr(owner, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                cpu[label] += time.process_time() - started

        setattr(owner, attribute, timed)
        undo.append(lambda: setattr(owner, attribute, original))

    for _depth, label, module, attribute, cls in STEPS:
        owner = importlib.import_module(module)
        wrap(getattr(owner, cls) if cls else owner, attribute, label)
    try:
        yield
    finally:
        for restore in reversed(undo):
            restore()


def main(argv: list[str]) -> None:
    """``[--steps] [N] [OUT]``: see the module's documentation."""
    steps = "--steps" in argv
    argv = [a for a in argv if a != "--steps"]
    count = int(argv[0]) if argv else 300
    out = argv[1] if len(argv) > 1 else "portal.prof"
    with tempfile.TemporaryDirectory(prefix="juki-portal-profile-") as tmp, \
            scratch_database("bench_portal") as url:
        directory = Path(tmp)
        redis_server = RedisServer(directory)
        redis_server.start()
        try:
            with portal_stack(directory, url, redis_server.url, residents=4) as (server, env, cards):
                residents = [Resident(server.origin, card) for card in cards]
                requests = [residents[i % len(residents)].signed_request() for i in range(count + WARM)]
                os.environ.update(env)
                import core.config

                core.config.INSTANCE = Path(env["INSTANCE_PATH"])  # read at import, before env was known
                from portal import create_app

                client = create_app().test_client()

                def post(request: tuple[str, bytes, dict[str, str]]) -> None:
                    path, body, headers = request
                    response = client.post(path, data=body, base_url=server.origin,
                                           headers={**headers, "Content-Type": "application/json"})
                    if response.status_code != 202:
                        raise RuntimeError(f"{response.status_code}: {response.get_data(as_text=True)[:300]}")

                def measured() -> None:
                    for request in requests[WARM:]:
                        post(request)

                for request in requests[:WARM]:
                    post(request)
                if steps:
                    cpu: collections.Counter[str] = collections.Counter()
                    with _stepped(cpu):
                        started = time.process_time()
                        measured()
                        total = time.process_time() - started
                    print(f"{count} submissions: {1000 * total / count:.2f} ms CPU each, of which:")
                    for depth, label, *_ in STEPS:
                        print(f"{'  ' * (depth + 1)}{label}: {1000 * cpu[label] / count:.2f} ms")
                    return
                profiler = cProfile.Profile()
                cpu_time, wall = time.process_time(), time.perf_counter()
                profiler.runcall(measured)
                cpu_time, wall = time.process_time() - cpu_time, time.perf_counter() - wall
                profiler.dump_stats(out)
                print(f"{count} submissions: {1000 * cpu_time / count:.2f} ms CPU and {1000 * wall / count:.2f} ms "
                      f"wall each, under the profiler; profile in {out}")
        finally:
            redis_server.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
