"""Configuration: safe defaults, generated development secrets, production refuses to start without them."""

from __future__ import annotations

import base64
import secrets

import pytest

from core import config


def test_production_refuses_to_start_without_its_secrets(monkeypatch):
    for var in config.Config.SECRETS.values():
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(config.ConfigError, match="must be set in production"):
        config.load({"APP_ENV": "production"})


def test_production_starts_when_every_secret_is_given(monkeypatch):
    for var in config.Config.SECRETS.values():
        monkeypatch.setenv(var, secrets.token_hex(32))
    monkeypatch.setenv("MUNICIPALITY_CODE", "032069")
    cfg = config.load({"APP_ENV": "production"})
    assert cfg["SESSION_COOKIE_SECURE"] is True


def test_development_generates_secrets_once_and_keeps_them(monkeypatch, tmp_path):
    monkeypatch.setattr(config, "INSTANCE", tmp_path)
    for var in config.Config.SECRETS.values():
        monkeypatch.delenv(var, raising=False)
    first = config.load({"APP_ENV": "development"})
    second = config.load({"APP_ENV": "development"})
    assert first["AUDIT_HMAC_KEY"] == second["AUDIT_HMAC_KEY"]
    assert first["PORTAL_SECRET_KEY"] != first["BACKOFFICE_SECRET_KEY"]
    assert (tmp_path / "audit_hmac_key.secret").stat().st_mode & 0o077 == 0


def test_sqlite_under_instance_is_the_default_database(monkeypatch, tmp_path):
    monkeypatch.setattr(config, "INSTANCE", tmp_path)
    monkeypatch.delenv("BACKOFFICE_DATABASE_URL", raising=False)
    monkeypatch.delenv("PORTAL_DATABASE_URL", raising=False)
    cfg = config.load({"APP_ENV": "development"})
    assert cfg["BACKOFFICE_DATABASE_URL"] == f"sqlite:///{tmp_path}/backoffice-032051.db"
    assert cfg["PORTAL_DATABASE_URL"] == f"sqlite:///{tmp_path}/portal.db"


@pytest.mark.parametrize("bad", ["32051", "abcdef", "0320511"])
def test_a_malformed_municipality_code_is_refused(monkeypatch, bad):
    monkeypatch.setenv("MUNICIPALITY_CODE", bad)
    with pytest.raises(config.ConfigError, match="MUNICIPALITY_CODE"):
        config.load({"APP_ENV": "test"})


def test_unknown_app_env_is_refused():
    with pytest.raises(config.ConfigError, match="APP_ENV"):
        config.load({"APP_ENV": "staging"})


def test_the_two_apps_have_separate_secrets_and_cookies():
    from backoffice import create_app as bo
    from portal import create_app as po

    b = bo({"APP_ENV": "test", "BACKOFFICE_DATABASE_URL": "sqlite://"})
    p = po({"APP_ENV": "test", "PORTAL_DATABASE_URL": "sqlite://"})
    assert b.secret_key != p.secret_key
    assert b.config["SESSION_COOKIE_NAME"] != p.config["SESSION_COOKIE_NAME"]
    assert b.login_manager is not p.login_manager  # type: ignore[attr-defined]


def test_the_portal_will_not_start_in_production_with_the_simulated_card_authority(jlis_config, monkeypatch):
    from portal import create_app

    _production_secrets(monkeypatch)
    settings = {**jlis_config, "APP_ENV": "production", "SITE_ORIGIN": "https://portal.example.jp",
                "PORTAL_DATABASE_URL": "sqlite://"}
    with pytest.raises(config.ConfigError, match="JPKI-SIM"):
        create_app(settings)


@pytest.mark.parametrize("origin", ["https://portal.example.jp/", "https://portal.example.jp/path",
                                    "http://portal.example.jp"])
def test_the_portal_will_not_start_with_a_malformed_or_plain_http_origin(origin):
    from portal import create_app

    with pytest.raises(config.ConfigError):
        create_app({"APP_ENV": "test", "SITE_ORIGIN": origin, "PORTAL_DATABASE_URL": "sqlite://"})


def _production_secrets(monkeypatch):
    """Every secret given, each its own 32 random bytes."""
    import secrets

    for var in config.Config.SECRETS.values():
        monkeypatch.setenv(var, secrets.token_hex(32))
    monkeypatch.setenv("MUNICIPALITY_CODE", "032051")


@pytest.mark.parametrize("env", ["development", "production"])
def test_the_back_office_will_not_start_when_the_counter_origin_is_the_portals(monkeypatch, env):
    """A card signature for a portal sign-in would otherwise also prove that the resident stood at the counter."""
    from backoffice import create_app

    _production_secrets(monkeypatch)
    origin = "https://portal.example.jp" if env == "production" else "http://127.0.0.1:5000"
    with pytest.raises(config.ConfigError, match="COUNTER_ORIGIN must differ from SITE_ORIGIN"):
        create_app({"APP_ENV": env, "SITE_ORIGIN": origin, "COUNTER_ORIGIN": origin,
                    "BACKOFFICE_DATABASE_URL": "sqlite://"})


def test_the_back_office_will_not_start_in_production_without_its_own_counter_origin(monkeypatch):
    from backoffice import create_app

    _production_secrets(monkeypatch)
    monkeypatch.delenv("COUNTER_ORIGIN", raising=False)
    with pytest.raises(config.ConfigError, match="COUNTER_ORIGIN must be set"):
        create_app({"APP_ENV": "production", "SITE_ORIGIN": "https://portal.example.jp",
                    "BACKOFFICE_DATABASE_URL": "sqlite://"})


@pytest.mark.parametrize("origin", ["https://madoguchi.example.jp/", "https://madoguchi.example.jp/counter",
                                    "http://madoguchi.example.jp"])
def test_the_back_office_will_not_start_with_a_malformed_or_plain_http_counter_origin(monkeypatch, origin):
    from backoffice import create_app

    _production_secrets(monkeypatch)
    with pytest.raises(config.ConfigError, match="COUNTER_ORIGIN"):
        create_app({"APP_ENV": "production", "SITE_ORIGIN": "https://portal.example.jp", "COUNTER_ORIGIN": origin,
                    "BACKOFFICE_DATABASE_URL": "sqlite://"})


@pytest.mark.parametrize(("site", "counter"), [("http://127.0.0.1:5000", "http://localhost:5000"),
                                               ("http://localhost:5005", "http://127.0.0.1:5005")])
def test_outside_production_the_counter_origin_is_the_portals_server_under_its_other_loopback_name(
        monkeypatch, site, counter):
    """`make run` serves both apps from one server: another host name is another origin."""
    from backoffice import create_app

    monkeypatch.delenv("COUNTER_ORIGIN", raising=False)
    for env in ("development", "test"):
        app = create_app({"APP_ENV": env, "SITE_ORIGIN": site, "BACKOFFICE_DATABASE_URL": "sqlite://"})
        assert app.config["COUNTER_ORIGIN"] == counter


def test_outside_production_a_portal_origin_of_another_host_needs_a_counter_origin_set(monkeypatch):
    from backoffice import create_app

    monkeypatch.delenv("COUNTER_ORIGIN", raising=False)
    with pytest.raises(config.ConfigError, match="COUNTER_ORIGIN must be set"):
        create_app({"APP_ENV": "development", "SITE_ORIGIN": "https://portal.example.jp",
                    "BACKOFFICE_DATABASE_URL": "sqlite://"})
# -- production secrets: long, random-looking, each its own ----------------------------------------------------------

def _set_secrets(monkeypatch, values: dict[str, str]) -> None:
    for var in config.Config.SECRETS.values():
        monkeypatch.setenv(var, values.get(var, secrets.token_hex(32)))
    monkeypatch.setenv("MUNICIPALITY_CODE", "032051")


def test_production_refuses_seven_secrets_of_one_letter(monkeypatch):
    _set_secrets(monkeypatch, dict.fromkeys(config.Config.SECRETS.values(), "a"))
    with pytest.raises(config.ConfigError) as refused:
        config.load({"APP_ENV": "production"})
    assert "PORTAL_SECRET_KEY" in str(refused.value)


@pytest.mark.parametrize("weak", ["a" * 64, "0" * 64, secrets.token_hex(16), "0123456789abcdef" * 4,
                                  "correct horse battery staple", "x" * 64],
                         ids=["one-letter", "zeros", "16-bytes", "pattern", "passphrase", "x-as-base64"])
def test_production_refuses_a_short_or_low_entropy_secret_naming_it_but_not_its_value(monkeypatch, weak):
    _set_secrets(monkeypatch, {"AUDIT_HMAC_KEY": weak})
    with pytest.raises(config.ConfigError) as refused:
        config.load({"APP_ENV": "production"})
    assert "AUDIT_HMAC_KEY" in str(refused.value) and weak not in str(refused.value)


def test_production_refuses_two_secrets_with_the_same_value_naming_both(monkeypatch):
    shared = secrets.token_hex(32)
    _set_secrets(monkeypatch, {"FIELD_ENCRYPTION_KEY": shared, "BLIND_INDEX_KEY": shared})
    with pytest.raises(config.ConfigError) as refused:
        config.load({"APP_ENV": "production"})
    message = str(refused.value)
    assert "FIELD_ENCRYPTION_KEY" in message and "BLIND_INDEX_KEY" in message and shared not in message


def test_production_starts_with_random_hex_or_base64_secrets(monkeypatch):
    values = {var: (secrets.token_hex(32) if i % 2 else base64.b64encode(secrets.token_bytes(32)).decode())
              for i, var in enumerate(config.Config.SECRETS.values())}
    _set_secrets(monkeypatch, values)
    cfg = config.load({"APP_ENV": "production"})
    assert cfg["API_TOKEN_KEY"] == values["API_TOKEN_KEY"]


def test_the_default_request_size_limit_is_one_mebibyte(monkeypatch):
    monkeypatch.delenv("MAX_CONTENT_LENGTH", raising=False)
    assert config.load({"APP_ENV": "test"})["MAX_CONTENT_LENGTH"] == 1024 * 1024
    monkeypatch.setenv("MAX_CONTENT_LENGTH", "2097152")
    assert config.load({"APP_ENV": "test"})["MAX_CONTENT_LENGTH"] == 2 * 1024 * 1024


# -- the metrics token: optional, but when set as strong and as much its own as the other secrets ---------------------

@pytest.mark.parametrize("weak", ["metrics", "a" * 64, secrets.token_hex(16), "0123456789abcdef" * 4],
                         ids=["word", "one-letter", "16-bytes", "pattern"])
def test_production_refuses_a_weak_metrics_token_naming_it_but_not_its_value(monkeypatch, weak):
    _set_secrets(monkeypatch, {})
    monkeypatch.setenv("METRICS_TOKEN", weak)
    with pytest.raises(config.ConfigError) as refused:
        config.load({"APP_ENV": "production"})
    assert "METRICS_TOKEN" in str(refused.value) and weak not in str(refused.value)


def test_production_refuses_a_metrics_token_equal_to_another_secret_naming_both(monkeypatch):
    shared = secrets.token_hex(32)
    _set_secrets(monkeypatch, {"PORTAL_SECRET_KEY": shared})
    monkeypatch.setenv("METRICS_TOKEN", shared)
    with pytest.raises(config.ConfigError) as refused:
        config.load({"APP_ENV": "production"})
    message = str(refused.value)
    assert "METRICS_TOKEN" in message and "PORTAL_SECRET_KEY" in message and shared not in message
    # Unset, /metrics is simply off: production starts without one, and with a strong one of its own.
    monkeypatch.delenv("METRICS_TOKEN")
    assert config.load({"APP_ENV": "production"})["METRICS_TOKEN"] == ""
    monkeypatch.setenv("METRICS_TOKEN", token := secrets.token_urlsafe(32))
    assert config.load({"APP_ENV": "production"})["METRICS_TOKEN"] == token
