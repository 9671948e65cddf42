"""SITE_ORIGIN validation at start-up (case O3 of research §5): exactly what a browser's location.origin is."""

from __future__ import annotations

import pytest

from core.config import ConfigError
from core.jpki import TrustConfig, validate_site_origin


@pytest.mark.parametrize(
    ("origin", "app_env"),
    [
        ("https://shinsei.example-city.lg.jp", "production"),
        ("https://portal.example.jp:8443", "production"),
        ("https://xn--eckwd4c7c.jp", "production"),
        ("https://[2001:db8::1]", "production"),
        ("http://127.0.0.1:5000", "development"),
        ("http://localhost:5000", "test"),
        ("http://localhost", "test"),
    ],
)
def test_an_origin_as_browsers_serialise_it_is_accepted(origin: str, app_env: str):
    assert validate_site_origin(origin, app_env=app_env) == origin


@pytest.mark.parametrize(
    ("origin", "app_env"),
    [
        ("http://shinsei.example-city.lg.jp", "production"),
        ("http://shinsei.example-city.lg.jp", "development"),
        ("http://127.0.0.1:5000", "production"),
        ("https://shinsei.example-city.lg.jp/", "production"),
        ("https://shinsei.example-city.lg.jp/portal", "production"),
        ("https://shinsei.example-city.lg.jp?x=1", "production"),
        ("https://shinsei.example-city.lg.jp#top", "production"),
        ("https://user@shinsei.example-city.lg.jp", "production"),
        ("https://Shinsei.example-city.lg.jp", "production"),
        ("HTTPS://shinsei.example-city.lg.jp", "production"),
        ("https://shinsei.example-city.lg.jp:443", "production"),
        ("https://shinsei.example-city.lg.jp:0", "production"),
        ("https://shinsei.example-city.lg.jp:08443", "production"),
        ("https://申請.example.jp", "production"),
        ("ftp://shinsei.example-city.lg.jp", "production"),
        ("shinsei.example-city.lg.jp", "production"),
        ("", "production"),
        (None, "production"),
    ],
)
def test_an_origin_with_a_path_a_trailing_slash_or_plain_http_refuses_to_start(origin: object, app_env: str):
    """O3."""
    with pytest.raises(ConfigError):
        validate_site_origin(origin, app_env=app_env)


def test_a_trust_configuration_with_a_bad_origin_cannot_be_built():
    """O3: the verifiers get their origin only from a TrustConfig, which validates it."""
    with pytest.raises(ConfigError, match="SITE_ORIGIN"):
        TrustConfig(
            origin="https://shinsei.example-city.lg.jp/", app_env="production", auth_anchors=(), sign_anchors=()
        )
