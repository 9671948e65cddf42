"""Start-up validation of SITE_ORIGIN, the one origin card signatures are bound to."""

from __future__ import annotations

import ipaddress
import re

from core.config import ConfigError

_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
_LOCAL_ENVS = frozenset({"development", "test"})
_DEFAULT_PORTS = {"https": 443, "http": 80}
# A DNS name in the form browsers serialise it in location.origin: lower-case ASCII (IDNs as punycode).
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_ORIGIN = re.compile(r"^(?P<scheme>[a-z]+)://(?P<host>\[[0-9a-f:.]+\]|[^/:?#\[\]@]+)(?::(?P<port>[0-9]{1,5}))?$")


def validate_site_origin(origin: object, *, app_env: str, name: str = "SITE_ORIGIN") -> str:
    """Return ``origin`` if it is exactly what a browser's ``location.origin`` would be; raise ConfigError otherwise.

    The signed login data includes SHA-256 of this string, so it must match byte for byte what the
    browser (or a real card host) computes: scheme and host in lower case, no default port, no path,
    no trailing slash. Plain http is accepted only for 127.0.0.1/localhost in development and test.
    ``name`` is the setting the messages name (the back office checks its COUNTER_ORIGIN by the same rules).
    """
    if not isinstance(origin, str) or not origin:
        raise ConfigError(f"{name} must be set, e.g. https://shinsei.example-city.lg.jp")
    match = _ORIGIN.match(origin)
    if match is None:
        raise ConfigError(f"{name} must be scheme://host[:port] with no path or trailing slash, got {origin!r}")
    scheme, host, port = match["scheme"], match["host"], match["port"]
    if scheme == "http":
        if host not in _LOCAL_HOSTS or app_env not in _LOCAL_ENVS:
            raise ConfigError(f"{name} must use https (http only for localhost in development and test)")
    elif scheme != "https":
        raise ConfigError(f"{name} must use https, got {scheme!r}")
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError as exc:
            raise ConfigError(f"{name} has an invalid IPv6 host {host!r}") from exc
    elif not all(_HOST_LABEL.match(label) for label in host.split(".")):
        raise ConfigError(f"{name} host must be lower-case ASCII (punycode for IDNs), got {host!r}")
    if port is not None:
        number = int(port)
        if port != str(number) or not 1 <= number <= 65535:
            raise ConfigError(f"{name} has an invalid port {port!r}")
        if number == _DEFAULT_PORTS[scheme]:
            raise ConfigError(f"{name} must omit the default port, as browsers do")
    return origin
