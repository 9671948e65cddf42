"""Every setting, declared here: class defaults picked by APP_ENV, a TOML file named by APP_CONFIG, the environment.

Precedence, lowest first: the class default, the TOML file (``APP_CONFIG=/etc/juki/hanamaki.toml``,
keys are the setting names), the environment variable of the same name, the overrides a caller (a
test, the two-city run) passes. A key the file names that is not declared here, or a secret, stops
the start: secrets come from the environment only. In production nothing of the demo city is
assumed: the municipality code must be given, and no municipality is connected unless configured.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import tomllib
from collections.abc import Iterable, Mapping
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
    # The local government code this back office serves (6 digits); the demo city outside production.
    MUNICIPALITY_CODE: str | None = "032051"
    # Printed on certificates; from the address master and a demo mayor outside production when empty.
    MUNICIPALITY_NAME = ""
    MAYOR_NAME = ""
    # The municipalities whose back offices run this code on the bridge (the portal routes to them, a
    # back office sends them the 転出証明書情報 directly): a list, or "032051,032069" in the environment.
    CONNECTED_MUNICIPALITIES: tuple[str, ...] = ("032051", "032069")
    # The certificate fee in yen: one amount, or a mapping of municipality code to amount (TOML table, or
    # "032051=300,032069=350" in the environment); None: the fee of the service catalog (data/services.json).
    CERTIFICATE_FEE_YEN: int | dict[str, int] | None = None
    # Case kinds a clerk always answers (never returned automatically, R22).
    SENSITIVE_CASE_KINDS: tuple[str, ...] = ()
    # The counter's origin (empty: derived outside production), how long a card check lets the clerk
    # complete the case, and how old a resident's signature may be when it arrives.
    COUNTER_ORIGIN = ""
    COUNTER_VISIT_MINUTES = 30
    SIGNED_APPLICATION_MAX_AGE_MINUTES = 1440
    # The card authority (core/jpki/cardauthority.py AUTHORITIES; the simulator is refused in production),
    # the (simulated outside production) J-LIS and the card trust: empty means under JLIS_DIRECTORY.
    CARD_AUTHORITY = "simulator"
    JLIS_DIRECTORY = ""
    JPKI_AUTH_ANCHORS = ""
    JPKI_SIGN_ANCHORS = ""
    JPKI_CRL_DIRECTORY = ""
    # Operation-log checkpoints (empty: defaults under instance/, see core.audit.chain_for).
    AUDIT_CHECKPOINT_PATH = ""
    AUDIT_CHECKPOINT_KEY_PATH = ""
    AUDIT_CHECKPOINT_PUBLIC_KEY = ""
    # Monitoring (docs/operations.md "What to watch"): the bearer token of GET /metrics (unset: 404).
    METRICS_TOKEN = ""
    # Alert mail (bridge/alerting.py): to whom (comma-separated; unset: no mail), from whom, through which server;
    # the security officer's alerts (staff access, support measures) go to SECURITY_ALERT_MAIL_TO instead.
    ALERT_MAIL_TO = ""
    SECURITY_ALERT_MAIL_TO = ""
    ALERT_MAIL_FROM = ""
    SMTP_HOST = ""
    SMTP_PORT = 25
    SMTP_USERNAME = ""
    SMTP_PASSWORD = ""
    SMTP_STARTTLS = False
    ALERT_CHECK_SECONDS = 30
    # The key of `backup` and `restore` (core/backup.py): not one of the app's secrets, read only by those commands.
    BACKUP_KEY = ""
    # The retention schedule over core/retention.py's defaults (`kind=days,…`) and where log archives go.
    RETENTION_DAYS = ""
    RETENTION_ARCHIVE_DIR = ""
    # The staff-access rules (backoffice/services/watch.py): thresholds per hour, office hours (JST), look-back.
    WATCH_THRESHOLDS = ""
    WATCH_OFFICE_HOURS = ""
    WATCH_LOOKBACK_HOURS = ""
    # Databases (empty: SQLite under instance/).
    PORTAL_DATABASE_URL = ""
    BACKOFFICE_DATABASE_URL = ""
    REDIS_URL: str | None = None
    # Redis Sentinel: "host:port,host:port" of the sentinels and the master's name; REDIS_URL then gives
    # only the credentials, database and TLS options (core/redisconn.py).
    REDIS_SENTINELS: str | None = None
    REDIS_SENTINEL_SERVICE: str | None = None
    # The app's own Redis keys (nonces, rate limits, job counts) lie under this prefix, which its ACL user owns.
    REDIS_KEY_PREFIX = "juki"
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
    # name -> environment variable; each may be left unset (its feature is then off), but once set, production
    # holds it to the same strength as SECRETS and refuses it equal to any of them or to another.
    OPTIONAL_SECRETS = {
        "METRICS_TOKEN": "METRICS_TOKEN",
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
    """Production: every secret from the environment; the municipality and its connections from configuration."""

    APP_ENV = "production"
    MUNICIPALITY_CODE = None
    CONNECTED_MUNICIPALITIES = ()


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "test": TestConfig,
    "production": ProductionConfig,
}


def _file_settings(path: str | None, cls: type[Config]) -> dict[str, Any]:
    """The settings of the TOML file named by APP_CONFIG (none when unset); undeclared keys and secrets refused."""
    if not path:
        return {}
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"APP_CONFIG {path!r} cannot be read as TOML: {exc}") from exc
    declared = {k for k in dir(cls) if k.isupper()} - {"SECRETS", "OPTIONAL_SECRETS", "APP_ENV"}
    secret_names = set(cls.SECRETS)
    if secret_names & set(data):
        raise ConfigError(f"APP_CONFIG {path!r} names {', '.join(sorted(secret_names & set(data)))}: secrets come "
                          "from the environment only")
    unknown = sorted(set(data) - declared)
    if unknown:
        raise ConfigError(f"APP_CONFIG {path!r} names settings that do not exist: {', '.join(unknown)}")
    return data


def parse_codes(value: str | Iterable[str] | None, name: str = "CONNECTED_MUNICIPALITIES") -> tuple[str, ...]:
    """A list of codes or kinds from a list or a comma-separated string (a bare string is never split per letter)."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    if not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{name} must be a list of strings, got {value!r}")
    return tuple(i.strip() for i in items if i.strip())


def parse_fee(value: Any) -> int | dict[str, int] | None:
    """CERTIFICATE_FEE_YEN: None, whole yen, a mapping of code to yen, or "032051=300,032069=350"."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        if "=" not in text:
            value = int(text) if text.isdigit() else text
        else:
            pairs = [p.split("=", 1) for p in text.split(",") if p.strip()]
            value = {code.strip(): int(amount) if amount.strip().isdigit() else amount for code, amount in pairs}
    amounts = value.values() if isinstance(value, Mapping) else [value]
    if any(isinstance(a, bool) or not isinstance(a, int) or a < 0 for a in amounts):
        raise ConfigError(f"CERTIFICATE_FEE_YEN must be whole yen or a mapping of codes to whole yen, got {value!r}")
    return dict(value) if isinstance(value, Mapping) else value


class UnknownMunicipalityError(ConfigError):
    """The configuration names a connected municipality data/municipalities.csv does not list."""


def connected_municipalities(config: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """The codes of the municipalities connected on the bridge: the one reading, for the portal and the cities."""
    if config is None:
        from flask import current_app

        config = current_app.config
    codes = parse_codes(config.get("CONNECTED_MUNICIPALITIES", Config.CONNECTED_MUNICIPALITIES))
    from core.addressmaster import load_municipalities

    listed = {m.code for m in load_municipalities()}
    unknown = sorted(c for c in codes if c not in listed)
    if unknown:
        # Routing applications to a code nobody recognises would lose them, so this is a configuration error.
        raise UnknownMunicipalityError(
            f"CONNECTED_MUNICIPALITIES names {', '.join(unknown)}, which data/municipalities.csv does not list")
    return codes


def load(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the configuration mapping from APP_ENV, the APP_CONFIG file, the environment and ``overrides``."""
    overrides = dict(overrides or {})
    env = overrides.get("APP_ENV") or os.environ.get("APP_ENV", "development")
    if env not in CONFIGS:
        raise ConfigError(f"APP_ENV must be one of {sorted(CONFIGS)}, got {env!r}")
    cls = CONFIGS[env]
    base: dict[str, Any] = {k: getattr(cls, k) for k in dir(cls) if k.isupper()}
    base.update(_file_settings(overrides.get("APP_CONFIG") or os.environ.get("APP_CONFIG"), cls))
    cfg: dict[str, Any] = dict(base)
    cfg["APP_ENV"] = env
    cfg["INSTANCE_PATH"] = str(INSTANCE)
    cfg["MUNICIPALITY_CODE"] = os.environ.get("MUNICIPALITY_CODE") or base["MUNICIPALITY_CODE"]
    cfg["REDIS_URL"] = os.environ.get("REDIS_URL") or base["REDIS_URL"]
    cfg["CARD_AUTHORITY"] = os.environ.get("CARD_AUTHORITY") or base["CARD_AUTHORITY"]
    cfg["REDIS_SENTINELS"] = os.environ.get("REDIS_SENTINELS") or base["REDIS_SENTINELS"]
    cfg["REDIS_SENTINEL_SERVICE"] = os.environ.get("REDIS_SENTINEL_SERVICE") or base["REDIS_SENTINEL_SERVICE"]
    # The app's own Redis keys (nonces, rate limits, job counts) lie under this prefix, which its ACL user owns.
    cfg["REDIS_KEY_PREFIX"] = os.environ.get("REDIS_KEY_PREFIX") or base["REDIS_KEY_PREFIX"]
    for name in ("IDLE_TIMEOUT_MINUTES", "ABSOLUTE_SESSION_HOURS", "LOCKOUT_THRESHOLD", "LEDGER_EXPORT_MAX_ROWS",
                 "LEDGER_EXPORTS_PER_HOUR", "CARD_CHALLENGE_LIMIT", "CARD_LOGIN_LIMIT", "CARD_CHALLENGE_GLOBAL_LIMIT",
                 "CARD_LOGIN_GLOBAL_LIMIT", "CERTIFICATE_VERIFY_LIMIT", "CERTIFICATE_VERIFY_GLOBAL_LIMIT",
                 "MAX_CONTENT_LENGTH", "COUNTER_VISIT_MINUTES", "SIGNED_APPLICATION_MAX_AGE_MINUTES"):
        cfg[name] = _int(name, base[name])
    proxies = os.environ.get("TRUSTED_PROXIES")
    cfg["TRUSTED_PROXIES"] = parse_codes(proxies if proxies is not None else base["TRUSTED_PROXIES"], "TRUSTED_PROXIES")
    cfg["CONNECTED_MUNICIPALITIES"] = parse_codes(os.environ.get("CONNECTED_MUNICIPALITIES",
                                                                 base["CONNECTED_MUNICIPALITIES"]))
    cfg["SENSITIVE_CASE_KINDS"] = parse_codes(os.environ.get("SENSITIVE_CASE_KINDS", base["SENSITIVE_CASE_KINDS"]),
                                              "SENSITIVE_CASE_KINDS")
    cfg["CERTIFICATE_FEE_YEN"] = parse_fee(os.environ.get("CERTIFICATE_FEE_YEN", base["CERTIFICATE_FEE_YEN"]))
    # In development the portal is served on PORT (`PORT=5100 make run`): its origin follows unless it is set.
    port = os.environ.get("PORT", "") if env == "development" else ""
    cfg["SITE_ORIGIN"] = os.environ.get("SITE_ORIGIN") or (
        f"http://127.0.0.1:{port}" if port.isdigit() else base["SITE_ORIGIN"])
    # The back office's own origin, which a card signs at the counter terminal; never the portal's (see
    # counter_origin_default, and the check at the back office's start).
    cfg["COUNTER_ORIGIN"] = os.environ.get("COUNTER_ORIGIN", base["COUNTER_ORIGIN"])
    # Where the (simulated, outside production) J-LIS keeps its state and publishes anchors and CRLs.
    jlis = Path(os.environ.get("JLIS_DIRECTORY") or base["JLIS_DIRECTORY"] or INSTANCE / "jlis")
    cfg["JLIS_DIRECTORY"] = str(jlis)
    for name, default in (("JPKI_AUTH_ANCHORS", jlis / "public" / "jpki-sim-auth-anchors.pem"),
                          ("JPKI_SIGN_ANCHORS", jlis / "public" / "jpki-sim-sign-anchors.pem"),
                          ("JPKI_CRL_DIRECTORY", jlis / "public" / "crl")):
        cfg[name] = os.environ.get(name) or base[name] or str(default)
    # Operation-log checkpoints (empty: defaults under instance/, see core.audit.chain_for). In production the
    # file lies on storage the app can only append to, and the public key is what `audit verify` trusts.
    for name in ("AUDIT_CHECKPOINT_PATH", "AUDIT_CHECKPOINT_KEY_PATH", "AUDIT_CHECKPOINT_PUBLIC_KEY",
                 "MUNICIPALITY_NAME", "MAYOR_NAME"):
        cfg[name] = os.environ.get(name) or base[name]
    for name in ("METRICS_TOKEN", "ALERT_MAIL_TO", "SECURITY_ALERT_MAIL_TO", "ALERT_MAIL_FROM", "SMTP_HOST",
                 "SMTP_USERNAME", "SMTP_PASSWORD", "BACKUP_KEY", "RETENTION_DAYS", "RETENTION_ARCHIVE_DIR",
                 "WATCH_THRESHOLDS", "WATCH_OFFICE_HOURS", "WATCH_LOOKBACK_HOURS"):
        cfg[name] = os.environ.get(name) or base[name]
    cfg["SMTP_PORT"] = _int("SMTP_PORT", base["SMTP_PORT"])
    cfg["ALERT_CHECK_SECONDS"] = _int("ALERT_CHECK_SECONDS", base["ALERT_CHECK_SECONDS"])
    starttls = os.environ.get("SMTP_STARTTLS")
    cfg["SMTP_STARTTLS"] = starttls in ("1", "true", "yes") if starttls is not None else bool(base["SMTP_STARTTLS"])
    for key, var in cls.SECRETS.items():
        value = os.environ.get(var)
        if not value and env == "production" and key not in overrides:
            raise ConfigError(f"{var} must be set in production")
        cfg[key] = value or _instance_secret(key.lower())
    cfg.update(overrides)
    if not cfg.get("MUNICIPALITY_CODE"):
        raise ConfigError("MUNICIPALITY_CODE must be set in production (the 6-digit local government code of the "
                          "municipality this deployment serves), in the environment or the APP_CONFIG file")
    code = str(cfg["MUNICIPALITY_CODE"])
    if not code.isdigit() or len(code) != 6:
        raise ConfigError("MUNICIPALITY_CODE must be a 6-digit local government code")
    for name, fallback in (("PORTAL_DATABASE_URL", f"sqlite:///{INSTANCE / 'portal.db'}"),
                           ("BACKOFFICE_DATABASE_URL", f"sqlite:///{INSTANCE / f'backoffice-{code}.db'}")):
        cfg[name] = overrides.get(name) or os.environ.get(name) or base[name] or fallback
    if not cfg["COUNTER_ORIGIN"]:
        cfg["COUNTER_ORIGIN"] = counter_origin_default(str(cfg["SITE_ORIGIN"]), env)
    if env == "production":
        check_secrets({var: str(cfg[key]) for key, var in cls.SECRETS.items()}
                      | {var: str(cfg[key]) for key, var in cls.OPTIONAL_SECRETS.items() if cfg.get(key)})
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
