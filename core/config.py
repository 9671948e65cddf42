"""Configuration classes picked by APP_ENV, read from the environment with safe defaults."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = Path(os.environ.get("INSTANCE_PATH", ROOT / "instance"))


class ConfigError(RuntimeError):
    """Raised when the application must not start with the configuration it was given."""


def _instance_secret(name: str, nbytes: int = 32) -> str:
    """Read a development secret from instance/, generating it on first use."""
    INSTANCE.mkdir(parents=True, exist_ok=True)
    path = INSTANCE / f"{name}.secret"
    if not path.exists():
        path.write_text(secrets.token_hex(nbytes))
        path.chmod(0o600)
    return path.read_text().strip()


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from exc


class Config:
    """Settings shared by every environment; secrets are filled in by ``load``."""

    APP_ENV = "development"
    DEBUG = False
    TESTING = False
    MUNICIPALITY_CODE = "032051"
    REDIS_URL: str | None = None
    # Redis Sentinel: "host:port,host:port" of the sentinels and the master's name; REDIS_URL then gives
    # only the credentials, database and TLS options (core/redisconn.py).
    REDIS_SENTINELS: str | None = None
    REDIS_SENTINEL_SERVICE: str | None = None
    # Staff sessions (R5, R15, R19).
    IDLE_TIMEOUT_MINUTES = 15
    # The screen goes blank behind a lock after this long without input (R15, R19); the session lives on.
    SCREEN_LOCK_MINUTES = 5
    # Checks of certificate codes per client address and minute on the portal's public page.
    CERTIFICATE_VERIFY_LIMIT = 10
    ABSOLUTE_SESSION_HOURS = 8
    LOCKOUT_THRESHOLD = 5
    SEARCH_PAGE_SIZE = 20
    # Ledger CSV exports (R11): the most records one export holds, and exports per person per hour.
    LEDGER_EXPORT_MAX_ROWS = 100
    LEDGER_EXPORTS_PER_HOUR = 10
    # The portal's public origin; card signatures are bound to it, so it never comes from a request.
    SITE_ORIGIN = "http://127.0.0.1:5000"
    # Resident sessions on the portal (R15).
    PORTAL_IDLE_MINUTES = 15
    PORTAL_ABSOLUTE_HOURS = 8
    API_TOKEN_MINUTES = 15
    # Card sign-in: rate limits per client address and per certificate (requests per minute).
    CARD_CHALLENGE_LIMIT = 30
    CARD_LOGIN_LIMIT = 10
    # The backstop over all clients together (requests per minute), so many addresses are still bounded.
    CARD_CHALLENGE_GLOBAL_LIMIT = 1200
    CARD_LOGIN_GLOBAL_LIMIT = 600
    CERTIFICATE_VERIFY_GLOBAL_LIMIT = 300
    # The largest request body either app reads (413 beyond it); a signed application is a few kilobytes.
    MAX_CONTENT_LENGTH = 1024 * 1024
    # The TLS proxy's addresses: only from them are X-Forwarded-For (the client's address) and the
    # client-certificate header of terminals (R1) believed.
    TRUSTED_PROXIES: tuple[str, ...] = ()
    TERMINAL_CERT_HEADER = "X-Client-Cert-Fingerprint"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = True
    WTF_CSRF_TIME_LIMIT = None
    BABEL_DEFAULT_LOCALE = "ja"
    BABEL_DEFAULT_TIMEZONE = "Asia/Tokyo"
    SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = {"pool_pre_ping": True}

    # name -> environment variable; each is required in production.
    SECRETS = {
        "PORTAL_SECRET_KEY": "PORTAL_SECRET_KEY",
        "BACKOFFICE_SECRET_KEY": "BACKOFFICE_SECRET_KEY",
        "FIELD_ENCRYPTION_KEY": "FIELD_ENCRYPTION_KEY",
        "BLIND_INDEX_KEY": "BLIND_INDEX_KEY",
        "AUDIT_HMAC_KEY": "AUDIT_HMAC_KEY",
        "TERMINAL_COOKIE_KEY": "TERMINAL_COOKIE_KEY",
        "API_TOKEN_KEY": "API_TOKEN_KEY",
    }


class DevelopmentConfig(Config):
    """Local runs: SQLite under instance/, secrets generated into instance/."""

    APP_ENV = "development"
    SESSION_COOKIE_SECURE = False


class TestConfig(Config):
    """The test suite: fixed low-cost settings, secrets generated per run."""

    APP_ENV = "test"
    TESTING = True
    SESSION_COOKIE_SECURE = False
    WTF_CSRF_ENABLED = True


class ProductionConfig(Config):
    """Production: every secret must come from the environment."""

    APP_ENV = "production"


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "test": TestConfig,
    "production": ProductionConfig,
}


def load(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the configuration mapping from APP_ENV, the environment and ``overrides``."""
    overrides = dict(overrides or {})
    env = overrides.get("APP_ENV") or os.environ.get("APP_ENV", "development")
    if env not in CONFIGS:
        raise ConfigError(f"APP_ENV must be one of {sorted(CONFIGS)}, got {env!r}")
    cls = CONFIGS[env]
    cfg: dict[str, Any] = {k: getattr(cls, k) for k in dir(cls) if k.isupper()}
    cfg["APP_ENV"] = env
    cfg["INSTANCE_PATH"] = str(INSTANCE)
    cfg["MUNICIPALITY_CODE"] = os.environ.get("MUNICIPALITY_CODE", cls.MUNICIPALITY_CODE)
    cfg["REDIS_URL"] = os.environ.get("REDIS_URL") or None
    cfg["REDIS_SENTINELS"] = os.environ.get("REDIS_SENTINELS") or None
    cfg["REDIS_SENTINEL_SERVICE"] = os.environ.get("REDIS_SENTINEL_SERVICE") or None
    cfg["IDLE_TIMEOUT_MINUTES"] = _int("IDLE_TIMEOUT_MINUTES", cls.IDLE_TIMEOUT_MINUTES)
    cfg["ABSOLUTE_SESSION_HOURS"] = _int("ABSOLUTE_SESSION_HOURS", cls.ABSOLUTE_SESSION_HOURS)
    cfg["LOCKOUT_THRESHOLD"] = _int("LOCKOUT_THRESHOLD", cls.LOCKOUT_THRESHOLD)
    cfg["LEDGER_EXPORT_MAX_ROWS"] = _int("LEDGER_EXPORT_MAX_ROWS", cls.LEDGER_EXPORT_MAX_ROWS)
    cfg["LEDGER_EXPORTS_PER_HOUR"] = _int("LEDGER_EXPORTS_PER_HOUR", cls.LEDGER_EXPORTS_PER_HOUR)
    for name in ("CARD_CHALLENGE_LIMIT", "CARD_LOGIN_LIMIT", "CARD_CHALLENGE_GLOBAL_LIMIT", "CARD_LOGIN_GLOBAL_LIMIT",
                 "CERTIFICATE_VERIFY_LIMIT", "CERTIFICATE_VERIFY_GLOBAL_LIMIT", "MAX_CONTENT_LENGTH"):
        cfg[name] = _int(name, getattr(cls, name))
    proxies = os.environ.get("TRUSTED_PROXIES", "")
    cfg["TRUSTED_PROXIES"] = tuple(p.strip() for p in proxies.split(",") if p.strip())
    # In development the portal is served on PORT (`PORT=5100 make run`): its origin follows unless it is set.
    port = os.environ.get("PORT", "") if env == "development" else ""
    cfg["SITE_ORIGIN"] = os.environ.get("SITE_ORIGIN") or (
        f"http://127.0.0.1:{port}" if port.isdigit() else cls.SITE_ORIGIN)
    # The back office's own origin, which a card signs at the counter terminal; never the portal's (see
    # counter_origin_default, and the check at the back office's start).
    cfg["COUNTER_ORIGIN"] = os.environ.get("COUNTER_ORIGIN", "")
    # How long a verified card check at the counter lets the clerk complete the case (R9).
    cfg["COUNTER_VISIT_MINUTES"] = _int("COUNTER_VISIT_MINUTES", 30)
    # How old a resident's signature (its iat) may be when the portal or a back office receives it.
    cfg["SIGNED_APPLICATION_MAX_AGE_MINUTES"] = _int("SIGNED_APPLICATION_MAX_AGE_MINUTES", 1440)
    # Where the (simulated, outside production) J-LIS keeps its state and publishes anchors and CRLs.
    jlis = Path(os.environ.get("JLIS_DIRECTORY", INSTANCE / "jlis"))
    cfg["JLIS_DIRECTORY"] = str(jlis)
    cfg["JPKI_AUTH_ANCHORS"] = os.environ.get("JPKI_AUTH_ANCHORS", str(jlis / "public" / "jpki-sim-auth-anchors.pem"))
    cfg["JPKI_SIGN_ANCHORS"] = os.environ.get("JPKI_SIGN_ANCHORS", str(jlis / "public" / "jpki-sim-sign-anchors.pem"))
    cfg["JPKI_CRL_DIRECTORY"] = os.environ.get("JPKI_CRL_DIRECTORY", str(jlis / "public" / "crl"))
    # Operation-log checkpoints (empty: defaults under instance/, see core.audit.chain_for). In production the
    # file lies on storage the app can only append to, and the public key is what `audit verify` trusts.
    for name in ("AUDIT_CHECKPOINT_PATH", "AUDIT_CHECKPOINT_KEY_PATH", "AUDIT_CHECKPOINT_PUBLIC_KEY"):
        cfg[name] = os.environ.get(name, "")
    code = cfg["MUNICIPALITY_CODE"]
    default_bo = f"sqlite:///{INSTANCE / f'backoffice-{code}.db'}"
    cfg["PORTAL_DATABASE_URL"] = os.environ.get("PORTAL_DATABASE_URL") or f"sqlite:///{INSTANCE / 'portal.db'}"
    cfg["BACKOFFICE_DATABASE_URL"] = os.environ.get("BACKOFFICE_DATABASE_URL") or default_bo
    for key, var in cls.SECRETS.items():
        value = os.environ.get(var)
        if not value and env == "production" and key not in overrides:
            raise ConfigError(f"{var} must be set in production")
        cfg[key] = value or _instance_secret(key.lower())
    cfg.update(overrides)
    if not cfg["COUNTER_ORIGIN"]:
        cfg["COUNTER_ORIGIN"] = counter_origin_default(str(cfg["SITE_ORIGIN"]), env)
    if env == "production":
        check_secrets({var: str(cfg[key]) for key, var in cls.SECRETS.items()})
    if not str(cfg["MUNICIPALITY_CODE"]).isdigit() or len(str(cfg["MUNICIPALITY_CODE"])) != 6:
        raise ConfigError("MUNICIPALITY_CODE must be a 6-digit local government code")
    _certificate_signatory(cfg)
    if cfg.get("REDIS_SENTINELS"):
        from core.redisconn import check_sentinel_settings  # a bad list stops the start, not the first request

        check_sentinel_settings(cfg)
    return cfg


# The two names of this machine's loopback: one server under the other name is another origin for the browser.
_LOOPBACK_PAIR = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}


def counter_origin_default(site_origin: str, env: str) -> str:
    """The counter's origin when COUNTER_ORIGIN is not set: outside production, the portal's server under its other
    loopback name (``make run`` serves both apps from one server); else empty, and the back office will not start.

    A card signs SHA-256(origin) of the page it signs in on, so the counter's origin must differ from the portal's,
    or a sign-in on the portal would also prove that the resident stood at the counter.
    """
    if env == "production":
        return ""
    scheme, _, rest = site_origin.partition("://")
    host, colon, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
    other = _LOOPBACK_PAIR.get(host)
    return f"{scheme}://{other}{colon}{port}" if other and scheme == "http" else ""
MIN_SECRET_BYTES = 32
# 32 random bytes hold this many distinct values with overwhelming likelihood (about 30 on average).
MIN_DISTINCT_SECRET_BYTES = 16


def _secret_bytes(value: str) -> bytes | None:
    """The bytes a secret encodes: hex (``openssl rand -hex 32``) or base64 (``openssl rand -base64 32``)."""
    text = value.strip()
    try:
        return bytes.fromhex(text)
    except ValueError:
        pass
    try:
        padded = text + "=" * (-len(text) % 4)
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return None


def check_secrets(values: dict[str, str]) -> None:
    """Refuse production secrets that are short, patterned or shared; name the variables, never the values.

    Each must encode at least 32 random bytes, in hex or base64, and no two may be equal: one leaked
    value must not open the sessions, the My Number encryption and the operation log at once.
    """
    problems: list[str] = []
    for var, value in values.items():
        raw = _secret_bytes(value)
        if raw is None or len(raw) < MIN_SECRET_BYTES:
            problems.append(f"{var} must be at least {MIN_SECRET_BYTES} random bytes in hex or base64 "
                            f"(e.g. `openssl rand -hex {MIN_SECRET_BYTES}`)")
        elif len(set(raw)) < MIN_DISTINCT_SECRET_BYTES:
            problems.append(f"{var} is not random (too few distinct bytes); generate it with "
                            f"`openssl rand -hex {MIN_SECRET_BYTES}`")
    by_value: dict[str, list[str]] = {}
    for var, value in values.items():
        by_value.setdefault(value.strip(), []).append(var)
    problems += [f"{' and '.join(names)} must differ from each other" for names in by_value.values() if len(names) > 1]
    if problems:
        raise ConfigError("; ".join(problems))


# Fictional mayors of the demo pair; a real deployment sets MAYOR_NAME (and MUNICIPALITY_NAME if it differs).
DEMO_MAYORS = {"032051": "花巻　一郎", "032069": "北上　二郎"}


def _certificate_signatory(cfg: dict[str, Any]) -> None:
    """The municipality's name and its mayor, printed on certificates: from the environment, else per code."""
    from core.addressmaster import municipality_by_code

    code = str(cfg["MUNICIPALITY_CODE"])
    if not cfg.get("MUNICIPALITY_NAME"):
        municipality = municipality_by_code(code)
        cfg["MUNICIPALITY_NAME"] = os.environ.get("MUNICIPALITY_NAME") or (
            municipality.name if municipality else "")
    if not cfg.get("MAYOR_NAME"):
        # Outside production a demo name; in production issuing refuses until MAYOR_NAME is set.
        demo = "" if cfg["APP_ENV"] == "production" else DEMO_MAYORS.get(code, "")
        cfg["MAYOR_NAME"] = os.environ.get("MAYOR_NAME") or demo
