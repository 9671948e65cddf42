"""Fixtures: real PostgreSQL databases built by the migrations, a controllable clock, staff, terminals."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

os.environ.setdefault("INSTANCE_PATH", tempfile.mkdtemp(prefix="instance-"))
os.environ["APP_ENV"] = "test"

from core import clock as clock_module  # after INSTANCE_PATH is set

# The last: the leak scan of the logs.
pytest_plugins = ["tests.portal_fixtures", "tests.pki_fixtures", "tests.leakscan_plugin"]

PG_ADMIN_URL = os.environ.get("TEST_PG_URL", "postgresql+psycopg://127.0.0.1:5432/postgres")
SECRETS = {
    "PORTAL_SECRET_KEY": secrets.token_hex(32),
    "BACKOFFICE_SECRET_KEY": secrets.token_hex(32),
    "FIELD_ENCRYPTION_KEY": secrets.token_hex(32),
    "BLIND_INDEX_KEY": secrets.token_hex(32),
    "AUDIT_HMAC_KEY": secrets.token_hex(32),
    "TERMINAL_COOKIE_KEY": secrets.token_hex(32),
    "API_TOKEN_KEY": secrets.token_hex(32),
}


def _checkpoint_key_pair() -> tuple[bytes, bytes]:
    """The run's operation-log checkpoint key pair (PEM): outside development nothing makes one on its own."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


CHECKPOINT_KEY_PEM, CHECKPOINT_PUBLIC_PEM = _checkpoint_key_pair()


def write_checkpoint_keys(private_path: Path) -> Path:
    """Put the run's checkpoint key pair at ``private_path`` and its ``.pub.pem`` sibling (the default public key)."""
    from core.audit import default_public_key_path

    private_path.parent.mkdir(parents=True, exist_ok=True)
    if not private_path.exists():
        private_path.write_bytes(CHECKPOINT_KEY_PEM)
        private_path.chmod(0o600)
    default_public_key_path(private_path).write_bytes(CHECKPOINT_PUBLIC_PEM)
    return private_path


# Apps (and the processes tests start) that name no key of their own sign with this test process's pair.
_KEYS = Path(tempfile.mkdtemp(prefix="checkpoint-keys-"))
os.environ["AUDIT_CHECKPOINT_KEY_PATH"] = str(write_checkpoint_keys(_KEYS / "checkpoint-key.pem"))
os.environ["AUDIT_CHECKPOINT_PUBLIC_KEY"] = str(_KEYS / "checkpoint-key.pub.pem")


def pytest_configure(config: pytest.Config) -> None:
    """Compile the message catalogues, so pages render in Japanese as they do in production."""
    from babel.messages.frontend import CommandLineInterface

    root = Path(__file__).resolve().parent.parent
    CommandLineInterface().run(["pybabel", "-q", "compile", "-f", "-d", str(root / "translations")])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked ``sqlite`` run on both backends; every other test on PostgreSQL only."""
    if "backend" in metafunc.fixturenames:
        backends = ["postgresql", "sqlite"] if metafunc.definition.get_closest_marker("sqlite") else ["postgresql"]
        metafunc.parametrize("backend", backends, scope="session")


def _admin_engine():  # type: ignore[no-untyped-def]
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


def create_pg_database(prefix: str) -> str:
    """Create an empty PostgreSQL database for this run and return its URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    engine = _admin_engine()
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    """Drop a database made by ``create_pg_database``."""
    name = make_url(url).database
    engine = _admin_engine()
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def migrate(factory: Any, config: dict[str, Any]) -> None:
    """Build a database the way production does: by running the migrations."""
    from flask_migrate import upgrade

    app = factory(config)
    with app.app_context():
        upgrade()
    app.extensions["engine"].dispose()


@pytest.fixture(scope="session")
def session_dir() -> Iterator[Path]:
    """A folder for the run's SQLite files, checkpoint keys and artifacts."""
    with tempfile.TemporaryDirectory(prefix="juki-test-") as d:
        write_checkpoint_keys(Path(d) / "checkpoint-key.pem")
        yield Path(d)


@pytest.fixture(scope="session")
def jlis_config(session_dir: Path) -> dict[str, str]:
    """Where this run's simulated J-LIS lives and publishes; created once per test process (CA keys are slow)."""
    from bridge.peers.jlis.service import open_simulator, publish

    public = session_dir / "jlis" / "public"
    cfg = {
        "APP_ENV": "test",
        "JLIS_DIRECTORY": str(session_dir / "jlis"),
        "JPKI_AUTH_ANCHORS": str(public / "jpki-sim-auth-anchors.pem"),
        "JPKI_SIGN_ANCHORS": str(public / "jpki-sim-sign-anchors.pem"),
        "JPKI_CRL_DIRECTORY": str(public / "crl"),
        "SITE_ORIGIN": "http://127.0.0.1:5000",
    }
    publish(cfg, open_simulator(cfg))
    return cfg


@pytest.fixture(scope="session")
def backoffice_db_url(backend: str, session_dir: Path) -> Iterator[str]:
    """A back-office database for this run, built by running the migrations (not create_all)."""
    from backoffice import create_app

    if backend == "postgresql":
        url = create_pg_database("backoffice_test")
    else:
        url = f"sqlite:///{session_dir / f'backoffice-{secrets.token_hex(4)}.db'}"
    migrate(create_app, {"APP_ENV": "test", "BACKOFFICE_DATABASE_URL": url, **SECRETS})
    yield url
    if backend == "postgresql":
        drop_pg_database(url)


@pytest.fixture(scope="session")
def portal_db_url(session_dir: Path) -> Iterator[str]:
    """A portal database on PostgreSQL for this run, built by the migrations."""
    from portal import create_app

    url = create_pg_database("portal_test")
    migrate(create_app, {"APP_ENV": "test", "PORTAL_DATABASE_URL": url, **SECRETS})
    yield url
    drop_pg_database(url)


class FakeClock:
    """A clock the test moves by hand; starts at the real current time."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        """Move time forward."""
        self.now += dt.timedelta(**kwargs)


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    """Control the application's clock for one test."""
    fake = FakeClock()
    clock_module.set_clock(fake)
    yield fake
    clock_module.set_clock(None)


def _clean(engine: Any, metadata: Any) -> None:
    """Empty every table and reset the audit chain head, between tests."""
    tables = [t.name for t in reversed(metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Replica mode skips the append-only triggers; only the test harness does this.
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))
        conn.execute(text("INSERT INTO audit_head (id, seq, head_hash) VALUES (1, 0, :h)"), {"h": "0" * 64})


@pytest.fixture
def bo_app(backoffice_db_url: str, tmp_path: Path, session_dir: Path, jlis_config: dict[str, str]) -> Iterator[Any]:
    """The back-office app on a clean database, with its own checkpoint file."""
    from backoffice import create_app
    from backoffice.models import Base
    from tests.portal_fixtures import bridge_key_directory

    app = create_app({
        **jlis_config,
        "BRIDGE_KEY_DIRECTORY": str(bridge_key_directory(session_dir)),
        "BACKOFFICE_DATABASE_URL": backoffice_db_url,
        "AUDIT_CHECKPOINT_PATH": str(tmp_path / "checkpoints.jsonl"),
        "AUDIT_CHECKPOINT_KEY_PATH": str(session_dir / "checkpoint-key.pem"),
        **SECRETS,
    })
    _clean(app.extensions["engine"], Base.metadata)
    yield app
    app.extensions["engine"].dispose()


@pytest.fixture
def bo_session(bo_app: Any) -> Iterator[Any]:
    """The database session of an app context (for services and direct checks)."""
    from backoffice.extensions import db

    with bo_app.test_request_context("/"):
        yield db.session


class Backoffice:
    """Helpers that set up staff and terminals the way an administrator would."""

    def __init__(self, app: Any, clock: FakeClock) -> None:
        self.app = app
        self.clock = clock
        self.secrets: dict[str, str] = {}

    def add_staff(self, login_id: str, *roles: str, password: str = "correct horse battery") -> Any:
        """Create an account with ``roles`` and remember its TOTP secret."""
        from backoffice.extensions import db
        from backoffice.services import staff as staff_service

        with self.app.test_request_context("/"):
            staff, secret = staff_service.add_staff(db.session, login_id=login_id, name=f"職員 {login_id}",
                                                    password=password, roles=list(roles))
            db.session.commit()
            self.secrets[login_id] = secret
            return staff.id

    def totp(self, login_id: str) -> str:
        """The current one-time code (time moves 30 s on each call, so codes are never reused)."""
        self.clock.advance(seconds=30)
        return pyotp.TOTP(self.secrets[login_id]).at(self.clock.now)

    def add_terminal(self, name: str = "counter-1") -> str:
        """Register a terminal and return its enrollment code."""
        from backoffice.extensions import db
        from backoffice.services import terminals

        with self.app.test_request_context("/"):
            _t, code = terminals.add_terminal(db.session, name=name)
            db.session.commit()
        return code

    def enrolled_client(self, name: str = "counter-1") -> Any:
        """A browser-like client whose terminal has been enrolled."""
        client = self.app.test_client()
        code = self.add_terminal(name)
        client.get("/terminal/enroll")
        token = csrf_from(client, "/terminal/enroll")
        response = client.post("/terminal/enroll", data={"code": code, "csrf_token": token})
        assert response.status_code == 302, response.text
        return client

    def sign_in(self, client: Any, login_id: str, password: str = "correct horse battery",
                totp: str | None = None) -> Any:
        """Post the sign-in form; returns the response."""
        token = csrf_from(client, "/sign-in")
        return client.post("/sign-in", data={"login_id": login_id, "password": password,
                                             "totp": totp or self.totp(login_id), "csrf_token": token})

    def client_for(self, login_id: str, *roles: str, terminal: str | None = None) -> Any:
        """A signed-in client for a new account with ``roles`` on a new enrolled terminal."""
        self.add_staff(login_id, *roles)
        client = self.enrolled_client(terminal or f"term-{login_id}")
        response = self.sign_in(client, login_id)
        assert response.status_code == 302 and response.location.endswith("/"), response.text
        return client


def sign_in_browser(page: Any, office: Backoffice, origin: str, login_id: str, *roles: str) -> None:
    """In a real browser: enrol a new terminal, then sign in a new account with ``roles`` on it."""
    office.add_staff(login_id, *roles)
    code = office.add_terminal(f"t-{login_id}")
    page.goto(f"{origin}/terminal/enroll")
    page.fill("input[name=code]", code)
    page.locator("form button[type=submit]").first.click()
    page.goto(f"{origin}/sign-in")
    page.fill("input[name=login_id]", login_id)
    page.fill("input[name=password]", "correct horse battery")
    page.fill("input[name=totp]", office.totp(login_id))
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(f"{origin}/")


def csrf_from(client: Any, path: str) -> str:
    """Fetch ``path`` and return the CSRF token of its form."""
    from bs4 import BeautifulSoup

    page = client.get(path)
    field = BeautifulSoup(page.text, "html.parser").select_one("input[name=csrf_token]")
    assert field is not None, f"no CSRF token on {path}: {page.status_code}"
    return str(field["value"])


@pytest.fixture
def backoffice(bo_app: Any, clock: FakeClock) -> Backoffice:
    """Set up staff, terminals and signed-in clients on the back office."""
    return Backoffice(bo_app, clock)


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Debian Chromium per test process, driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def redis_client() -> Iterator[Any]:
    """A connection to the test Redis (its own database number; keys are removed by the tests)."""
    import redis

    client = redis.Redis.from_url(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
    yield client
    client.close()
