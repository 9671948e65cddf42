"""A CPU profile of the portal's signed submissions in one process, for finding where a submission's time goes.

Set up as the portal figure is (``portal_stack``: a scratch PostgreSQL database, a private
redis-server, simulated J-LIS cards, residents signed in and linked over HTTP), then the portal app
is created in this process with the same environment and the Flask test client posts signed
certificate requests: 30 untimed, then ``N`` under cProfile. Prints the CPU and wall time per
submission and writes the profile (``pstats``) to ``OUT``. Not a figure of ``make bench``.

Run: ``.venv/bin/python -m bench.portal_profile [N] [OUT]`` (300, ``portal.prof``).
"""

from __future__ import annotations

import cProfile
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.baselines import RedisServer, scratch_database
from bench.portal import Resident, portal_stack

WARM = 30


def main(argv: list[str]) -> None:
    """Profile ``argv[0]`` submissions (300) into ``argv[1]`` (portal.prof)."""
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

                for request in requests[:WARM]:
                    post(request)
                profiler = cProfile.Profile()
                cpu, wall = time.process_time(), time.perf_counter()
                profiler.runcall(lambda: [post(r) for r in requests[WARM:]])
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                profiler.dump_stats(out)
                print(f"{count} submissions: {1000 * cpu / count:.2f} ms CPU and {1000 * wall / count:.2f} ms wall "
                      f"each, under the profiler; profile in {out}")
        finally:
            redis_server.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
