"""The portal figure of ``make bench``: signed submissions/s through the real API under gunicorn, ÷ the echo.

Set up outside the clock: a scratch PostgreSQL database migrated as production does, a private
redis-server, this run's simulated J-LIS, real card files of residents living in 花巻市, each
signed in through the API and linked (``/auth/challenge`` → ``/auth/token`` → ``/identity``). Then,
per repetition, every challenge is fetched (``/applications/challenge`` with the certificate request)
and signed with the card's signature key before the clock starts; the clock times only the POSTs
to ``/api/v1/applications`` (each must answer 202), from the same client and with the same bodies
that the echo (``bench/echo.py``, same gunicorn config) is timed with, alternately in the same run.

Beside the rate, each repetition reads the CPU the servers' gunicorn workers, PostgreSQL (all its
processes) and the whole machine spent while its requests were answered (``CpuMeter``: ``/proc``), per
request: on this CPU-bound machine the rates' ratio is about the inverse of the machines' CPU per request,
and the CPU per request moves less with the machine's load than the rates do.

Certificate requests, as a resident may have any number of them open (a move is limited to one);
the challenge and sign-in rate limits (``CARD_*_LIMIT``) are raised for the bench's one client
address. ``python -m bench.portal`` prints the row.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.baselines import (
    ROOT,
    CpuMeter,
    Gunicorn,
    RedisServer,
    children,
    echo_rate,
    echo_server,
    free_port,
    median,
    metered,
    module_main,
    post_rate,
    postgres_processes,
    scratch_database,
)

PIN, PASSWORD = "1234", "ABC123"
CODE = "032051"
CERTIFICATE = {"type": "certificate", "municipalityCode": CODE, "kind": "juminhyo", "persons": "self",
               "items": {"householder": False, "honseki": False, "juminhyoCode": False, "myNumber": False},
               "copies": 1, "purpose": "提出用", "delivery": "post"}
GOAL = 0.3
# Straight to 127.0.0.1, whatever proxy the environment names.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _api(origin: str, path: str, body: Any = None, token: str | None = None) -> Any:
    request = urllib.request.Request(origin + "/api/v1" + path, method="POST",
                                     data=json.dumps(body if body is not None else {}).encode(),
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    with _OPENER.open(request, timeout=60) as response:
        return json.loads(response.read())


def _environment(directory: Path, database_url: str, redis_url: str, workers: int | None) -> dict[str, str]:
    """What the portal's processes get: development secrets and J-LIS under a scratch instance folder."""
    inherited = ("BACKOFFICE_DATABASE_URL", "AUDIT_CHECKPOINT_PATH", "AUDIT_CHECKPOINT_KEY_PATH",
                 "AUDIT_CHECKPOINT_PUBLIC_KEY", "JPKI_AUTH_ANCHORS", "JPKI_SIGN_ANCHORS", "JPKI_CRL_DIRECTORY",
                 "SITE_ORIGIN", "COUNTER_ORIGIN")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN", "FORWARDED")) and k not in inherited}
    env.update({
        "APP_ENV": "development",
        "INSTANCE_PATH": str(directory / "instance"),
        "JLIS_DIRECTORY": str(directory / "instance" / "jlis"),
        "BRIDGE_KEY_DIRECTORY": str(directory / "keys"),
        "PORTAL_DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "MUNICIPALITY_CODE": CODE,
        "TRUSTED_PROXIES": "",
        # One client address sends every request of the bench.
        "CARD_CHALLENGE_LIMIT": "1000000", "CARD_LOGIN_LIMIT": "1000000",
        "CARD_CHALLENGE_GLOBAL_LIMIT": "1000000", "CARD_LOGIN_GLOBAL_LIMIT": "1000000",
    })
    if workers:
        env["WEB_CONCURRENCY"] = str(workers)
    return env


def _run(env: dict[str, str], *args: str) -> None:
    result = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr[-2000:]}")


def _keys(directory: Path) -> None:
    """The portal's bridge keys and Hanamaki's, registered with each other (an application is sealed to it)."""
    from core.envelope import KeyRegistry, import_public_key

    parties = ("portal", f"muni:{CODE}")
    registries = [KeyRegistry.from_config({"BRIDGE_KEY_DIRECTORY": str(directory), "APP_ENV": "development"},
                                          party=p) for p in parties]
    for party, registry in zip(parties, registries, strict=True):
        import_public_key(directory, party, registry.public_pem())


def _cards(env: dict[str, str], count: int, directory: Path) -> list[Path]:
    """``count`` card files of synthetic residents of 花巻市 (low PBKDF2 cost: unlocking is not what is measured)."""
    from bridge.peers.jlis.service import open_simulator
    from bridge.peers.jlis.simulator import Holder
    from bridge.peers.jlis.virtualcard import write_card_file

    sim = open_simulator(env)
    paths = []
    for n in range(count):
        holder = Holder(name=f"試験　太郎{n + 1}", birth_date=dt.date(1960 + n % 40, 1 + n % 12, 1 + n % 28), sex="1",
                        address=f"岩手県花巻市大通り一丁目{n + 1}番1号", prefecture="岩手県", municipality="花巻市")
        issued = sim.issue_card(holder, card_expires_on=dt.date.today() + dt.timedelta(days=3000))
        path = directory / f"card-{n}.json"
        write_card_file(issued, PIN, PASSWORD, path, iterations=1000)
        paths.append(path)
    return paths


class Resident:
    """One signed-in, linked resident of the bench, with the card's signature key unlocked once."""

    def __init__(self, origin: str, card: Path) -> None:
        from bridge.peers.jlis.cardclient import build_auth_token, build_signed_application
        from bridge.peers.jlis.virtualcard import open_slot_file

        self.origin = origin
        nonce = _api(origin, "/auth/challenge")["nonce"]
        token = build_auth_token(card, PIN, origin=origin, nonce=nonce)
        self.token = _api(origin, "/auth/token", {"authToken": token, "nonce": nonce})["access_token"]
        challenge = _api(origin, "/identity/challenge", token=self.token)
        jws = build_signed_application(card, PASSWORD, aud=challenge["aud"], nonce=challenge["nonce"],
                                       application=challenge["application"])
        _api(origin, "/identity", {"signedApplication": jws, "nonce": challenge["nonce"]}, token=self.token)
        self.key, self.certificate = open_slot_file(card, "sign", PASSWORD)

    def signed_request(self) -> tuple[str, bytes, dict[str, str]]:
        """A challenge fetched and a certificate request signed for it: one POST ready to send."""
        from bridge.peers.jlis.cardclient import sign_application

        challenge = _api(self.origin, "/applications/challenge", {"application": CERTIFICATE}, token=self.token)
        claims = {k: challenge[k] for k in ("moveId", "parts")}
        jws = sign_application(self.key, self.certificate, aud=challenge["aud"], nonce=challenge["nonce"],
                               application=CERTIFICATE, iat=challenge["iat"], claims=claims)
        body = json.dumps({"signed_application": jws, "nonce": challenge["nonce"]}).encode()
        return "/api/v1/applications", body, {"Authorization": f"Bearer {self.token}"}


@contextmanager
def portal_stack(directory: Path, database_url: str, redis_url: str, *, workers: int | None = None,
                 residents: int = 4, app: str = "wsgi:portal_app",
                 ) -> Iterator[tuple[Gunicorn, dict[str, str], list[Path]]]:
    """The portal under gunicorn on a spare port: migrated, J-LIS and bridge keys set up, ``residents`` card files.

    ``app`` is what gunicorn serves. Yields the server, the environment its processes got (``SITE_ORIGIN`` is
    the server's origin, which the cards sign) and the card files; the server is stopped afterwards whatever
    happened.
    """
    port = free_port()  # the origin the cards sign is known before the server starts
    env = {**_environment(directory, database_url, redis_url, workers), "SITE_ORIGIN": f"http://127.0.0.1:{port}"}
    _run(env, "flask", "--app", "wsgi:portal_app", "db", "upgrade")
    _run(env, "bridge.peers.jlis", "init")
    _keys(directory / "keys")
    cards = _cards(env, residents, directory)
    server = Gunicorn(app, env, directory / "portal.log", port=port)
    try:
        server.wait_ready("/")
        yield server, env, cards
    finally:
        server.stop()


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Median signed submissions/s and median echo requests/s over ``args.runs`` alternating repetitions."""
    runs = int(getattr(args, "runs", 3))
    count = int(getattr(args, "submissions", 300))
    concurrency = int(getattr(args, "concurrency", 8))
    threads = getattr(args, "client", "processes") == "threads"
    workers = getattr(args, "workers", None)
    portal_rates: list[float] = []
    echo_rates: list[float] = []
    # CPU ms per request, each repetition: the servers' workers, PostgreSQL, and the whole machine.
    cpu: dict[str, list[float]] = {name: [] for name in
                                   ("portal", "echo", "database", "portal machine", "echo machine")}
    with tempfile.TemporaryDirectory(prefix="juki-bench-portal-") as tmp, scratch_database("bench_portal") as url:
        directory = Path(tmp)
        redis_server = RedisServer(directory)
        redis_server.start()
        try:
            with portal_stack(directory, url, redis_server.url, workers=workers,
                              residents=int(getattr(args, "residents", 4))) as (server, env, cards):
                residents = [Resident(server.origin, card) for card in cards]
                # Every worker loads its trust anchors, CRLs and keys on its first requests: not what is measured.
                warm = [residents[i % len(residents)].signed_request() for i in range(40)]
                post_rate(server.port, warm, concurrency=concurrency)
                with echo_server(directory, {"WEB_CONCURRENCY": env["WEB_CONCURRENCY"]} if workers else None) as echo:
                    post_rate(echo.port, [("/echo", b, h) for _, b, h in warm], concurrency=concurrency)
                    for _ in range(runs):
                        bodies = [residents[i % len(residents)].signed_request() for i in range(count)]
                        echo_cpu = CpuMeter(lambda: children(echo.process.pid))
                        with metered(echo_cpu):
                            echo_rates.append(echo_rate(echo, bodies, concurrency=concurrency, threads=threads))
                        portal_cpu = CpuMeter(lambda: children(server.process.pid))
                        database_cpu = CpuMeter(postgres_processes)
                        with metered(portal_cpu, database_cpu):
                            rate, statuses = post_rate(server.port, bodies, concurrency=concurrency,
                                                       threads=threads)
                        if set(statuses) != {202}:
                            raise RuntimeError(f"the portal answered {statuses}; see {server.log}")
                        portal_rates.append(rate)
                        for name, seconds in (("portal", portal_cpu.processes), ("echo", echo_cpu.processes),
                                              ("database", database_cpu.processes),
                                              ("portal machine", portal_cpu.machine),
                                              ("echo machine", echo_cpu.machine)):
                            cpu[name].append(1000 * seconds / count)
        finally:
            redis_server.stop()
    return [{"figure": "portal: signed submissions/s (gunicorn, real API)", "value": median(portal_rates),
             "unit": "req/s", "baseline": "Flask JSON echo, same gunicorn config and client",
             "baseline_value": median(echo_rates), "goal": f"ratio >= {GOAL}",
             "values": portal_rates, "baseline_values": echo_rates},
            {"figure": "portal: CPU of its gunicorn workers per signed submission", "value": median(cpu["portal"]),
             "unit": "ms", "baseline": "echo: CPU of its gunicorn workers per request", "baseline_unit": "ms",
             "baseline_value": median(cpu["echo"]), "goal": "informative (/proc/<pid>/stat, same repetitions)",
             "values": cpu["portal"], "baseline_values": cpu["echo"]},
            {"figure": "portal: CPU of PostgreSQL per signed submission (all its processes)",
             "value": median(cpu["database"]), "unit": "ms", "baseline": None, "baseline_value": None,
             "goal": "informative", "values": cpu["database"]},
            {"figure": "portal: CPU of the whole machine per signed submission (servers, database, client, kernel)",
             "value": median(cpu["portal machine"]), "unit": "ms",
             "baseline": "echo: the same per request", "baseline_unit": "ms",
             "baseline_value": median(cpu["echo machine"]),
             "goal": "informative (/proc/stat; with the CPU saturated, the rate ratio is about 1 / this ratio)",
             "values": cpu["portal machine"], "baseline_values": cpu["echo machine"]}]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of this figure (``make bench BENCH_ARGS=…``)."""
    parser.add_argument("--submissions", type=int, default=300, help="signed submissions per repetition")
    parser.add_argument("--residents", type=int, default=4, help="residents (cards) submitting")
    parser.add_argument("--concurrency", type=int, default=8, help="client processes (or threads)")
    parser.add_argument("--client", choices=("processes", "threads"), default="processes",
                        help="send from processes, or from threads of one process (the issue's first client)")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: the config's)")


if __name__ == "__main__":
    module_main(sys.modules[__name__], sys.argv[1:], runs=3)
