"""Portal fixtures (a plugin of the root conftest): the app on a clean database, real Redis, simulated cards."""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from tests.conftest import SECRETS, _clean

PIN, PASSWORD = "1234", "ABC123"


def bridge_key_directory(session_dir: Path) -> Path:
    """Keys of the portal, both demo municipalities and some peers, each registered with the others (once per run).

    The prefecture and the departments are there because approving a 転出届 provides to them, J-LIS because
    a change of the four basic items sends it a card.revocation; the stand-in is not, as the bridge tests
    use it as a party nobody registered.
    """
    from bridge.peers import departments, prefecture
    from bridge.peers.jlis import receiver as jlis
    from core.envelope import KeyRegistry, import_public_key

    directory = session_dir / "bridge-keys"
    if not directory.exists():
        parties = ("portal", "muni:032051", "muni:032069", prefecture.PARTY, jlis.PARTY, *departments.PARTIES)
        registries = [KeyRegistry.from_config({"BRIDGE_KEY_DIRECTORY": str(directory)}, party=p) for p in parties]
        for party, registry in zip(parties, registries, strict=True):
            import_public_key(directory, party, registry.public_pem())
    return directory


def _portal(portal_db_url: str, jlis_config: dict[str, str], tmp_path: Path, session_dir: Path, **extra: Any) -> Any:
    from portal import create_app
    from portal.models import Base

    app = create_app({
        **jlis_config,
        "BRIDGE_KEY_DIRECTORY": str(bridge_key_directory(session_dir)),
        "PORTAL_DATABASE_URL": portal_db_url,
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        "REDIS_KEY_PREFIX": f"test-{secrets.token_hex(6)}",
        "AUDIT_CHECKPOINT_PATH": str(tmp_path / "portal-checkpoints.jsonl"),
        "AUDIT_CHECKPOINT_KEY_PATH": str(session_dir / "checkpoint-key.pem"),
        **SECRETS,
        **extra,
    })
    _clean(app.extensions["engine"], Base.metadata)
    return app


def _drop_keys(app: Any) -> None:
    from core.redisconn import get_redis

    client = get_redis(app)
    for name in client.scan_iter(match=app.config["REDIS_KEY_PREFIX"] + ":*"):
        client.delete(name)
    client.close()


@pytest.fixture
def portal_app(portal_db_url: str, jlis_config: dict[str, str], tmp_path: Path, session_dir: Path) -> Iterator[Any]:
    """The portal app on a clean database, with its own Redis key prefix."""
    app = _portal(portal_db_url, jlis_config, tmp_path, session_dir)
    yield app
    _drop_keys(app)
    app.extensions["engine"].dispose()


@pytest.fixture
def live_portal(portal_db_url: str, jlis_config: dict[str, str], tmp_path: Path, session_dir: Path) -> Iterator[Any]:
    """The portal served over HTTP on a free loopback port, its origin configured to match."""
    server = make_server("127.0.0.1", 0, None, threaded=True)  # type: ignore[arg-type]
    origin = f"http://127.0.0.1:{server.server_port}"
    app = _portal(portal_db_url, jlis_config, tmp_path, session_dir, SITE_ORIGIN=origin)
    server.app = app  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    app.config["LIVE_ORIGIN"] = origin
    yield app
    server.shutdown()
    _drop_keys(app)
    app.extensions["engine"].dispose()


class Cards:
    """Issues virtual cards from this run's simulated J-LIS, as the counter would."""

    def __init__(self, config: dict[str, str], directory: Path) -> None:
        from bridge.peers.jlis.service import open_simulator

        self.config = config
        self.sim = open_simulator(config)
        self.directory = directory

    def issue(self, *, name: str = "宮沢　賢", birth_date: dt.date = dt.date(1990, 8, 27),
              generation: int | None = None, address: str = "岩手県花巻市桜町一丁目1番地") -> Path:
        """A card file (PIN 1234, password ABC123; low PBKDF2 cost to keep tests fast)."""
        from bridge.peers.jlis.simulator import Holder
        from bridge.peers.jlis.virtualcard import write_card_file
        from core import clock
        from tests.leakscan import REGISTRY

        REGISTRY.add(names=[name], addresses=[address])  # the leak scan looks for them where they must not be

        holder = Holder(name=name, birth_date=birth_date, sex="1", address=address, prefecture="岩手県",
                        municipality="花巻市")
        issued = self.sim.issue_card(holder, card_expires_on=(clock.utcnow() + dt.timedelta(days=3000)).date(),
                                     generation=generation)
        path = self.directory / f"card-{secrets.token_hex(4)}.json"
        write_card_file(issued, PIN, PASSWORD, path, iterations=1000)
        return path

    def revoke(self, path: Path, reason: str = "keyCompromise", slot: str = "auth") -> None:
        """Revoke one certificate of a card and publish the CRLs, as J-LIS does."""
        import base64
        import json

        from cryptography import x509

        from bridge.peers.jlis.service import publish

        der = base64.b64decode(json.loads(path.read_text())[slot]["cert"])
        self.sim.revoke(x509.load_der_x509_certificate(der).serial_number, reason)
        publish(self.config, self.sim)


@pytest.fixture
def cards(jlis_config: dict[str, str], tmp_path: Path) -> Cards:
    """Card issuance for portal tests."""
    return Cards(jlis_config, tmp_path)
