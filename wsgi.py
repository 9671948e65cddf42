"""WSGI entry points: ``portal_app``, ``backoffice_app`` and ``app`` (both; back office under /backoffice).

``app`` (``make run``) is one server under two host names, two origins: the portal at ``SITE_ORIGIN``
(http://127.0.0.1:5000), the back office at ``COUNTER_ORIGIN`` (http://localhost:5000/backoffice/),
so a card signs a different origin at the counter than on the portal. Each part sends a browser that
reached it under the other's name to its own origin.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

_apps: dict[str, Flask] = {}


def _portal() -> Flask:
    from portal import create_app

    return create_app()


def _backoffice() -> Flask:
    from backoffice import create_app

    return create_app()


def _combined() -> Flask:
    # A portal app of its own whose WSGI callable also serves the back office under /backoffice.
    from backoffice import OwnOrigin

    combined = _portal()
    backoffice = __getattr__("backoffice_app")
    portal = combined.wsgi_app
    if combined.config["APP_ENV"] == "development":
        portal = OwnOrigin(portal, combined.config["SITE_ORIGIN"])
    combined.wsgi_app = DispatcherMiddleware(portal, {"/backoffice": backoffice})  # type: ignore[method-assign]
    return combined


_FACTORIES = {"portal_app": _portal, "backoffice_app": _backoffice, "app": _combined}


def __getattr__(name: str) -> Any:
    # Built on first use, so `flask --app wsgi:backoffice_app` does not build the portal too.
    if name not in _FACTORIES:
        raise AttributeError(name)
    if name not in _apps:
        _apps[name] = _FACTORIES[name]()
    return _apps[name]
