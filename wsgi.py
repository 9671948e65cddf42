"""WSGI entry points: ``portal_app``, ``backoffice_app`` and ``app`` (both; back office under /backoffice)."""

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
    combined = _portal()
    combined.wsgi_app = DispatcherMiddleware(combined.wsgi_app, {"/backoffice": __getattr__("backoffice_app")})  # type: ignore[method-assign]
    return combined


_FACTORIES = {"portal_app": _portal, "backoffice_app": _backoffice, "app": _combined}


def __getattr__(name: str) -> Any:
    # Built on first use, so `flask --app wsgi:backoffice_app` does not build the portal too.
    if name not in _FACTORIES:
        raise AttributeError(name)
    if name not in _apps:
        _apps[name] = _FACTORIES[name]()
    return _apps[name]
