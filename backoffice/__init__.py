"""The back office (city network zone): ledger, staff, terminals, operation log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from core.app import build_app


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the back-office application."""
    app = build_app(__name__, config=config, secret_key_name="BACKOFFICE_SECRET_KEY", cookie_name="bo_session")
    _check_counter_origin(app)
    from backoffice.extensions import db, login_manager, migrate

    db.init_app(app)
    login_manager.init_app(app)
    login_manager.session_protection = None  # sessions are server-side and bound to the terminal instead
    migrate.init_app(app, db, directory=str(Path(__file__).resolve().parent.parent / "migrations" / "backoffice"),
                     render_as_batch=True, compare_type=True)

    from backoffice import messages, security
    from backoffice.admin import bp as admin_bp
    from backoffice.audit import bp as audit_bp
    from backoffice.auth import bp as auth_bp
    from backoffice.cards import bp as cards_bp
    from backoffice.cases import bp as cases_bp
    from backoffice.certificates import bp as certificates_bp
    from backoffice.cli import register
    from backoffice.counter import bp as counter_bp
    from backoffice.ledger import bp as ledger_bp
    from backoffice.requests import bp as requests_bp
    from backoffice.screenlock import bp as screenlock_bp
    from backoffice.statistics import bp as statistics_bp
    from backoffice.support import bp as support_bp

    app.before_request(security.enforce_access)
    for bp in (auth_bp, ledger_bp, audit_bp, admin_bp, cards_bp, cases_bp, counter_bp, certificates_bp,
               statistics_bp, screenlock_bp, support_bp, requests_bp):
        app.register_blueprint(bp)
    register(app)
    app.jinja_env.globals["zone"] = "backoffice"
    messages.register(app)
    _init_bridge(app)
    return app


def _check_counter_origin(app: Flask) -> None:
    """R9: the counter's card check is bound to this back office's own origin, never the portal's; else no start.

    The card signs SHA-256(origin) of the page it signs in on. Were the counter's origin the portal's, a
    sign-in on the portal (or on a page a compromised portal serves) would also prove that the resident
    stood at the counter. In development the back office also sends a browser that reached it under
    another host name (as ``make run`` serves both apps from one server) to its own origin.
    """
    from core.config import ConfigError
    from core.jpki import validate_site_origin

    origin, env = app.config.get("COUNTER_ORIGIN"), app.config["APP_ENV"]
    if not origin:
        raise ConfigError("COUNTER_ORIGIN must be set to the back office's own origin (the counter pages' "
                          "scheme://host[:port], e.g. https://madoguchi.example-city.lg.jp); it cannot be derived "
                          f"from SITE_ORIGIN {app.config['SITE_ORIGIN']!r} in {env}")
    validate_site_origin(origin, app_env=env, name="COUNTER_ORIGIN")
    if origin == app.config["SITE_ORIGIN"]:
        raise ConfigError("COUNTER_ORIGIN must differ from SITE_ORIGIN: a card signature made for a sign-in on the "
                          "portal must not prove a visit to the counter")
    if env == "development":
        app.wsgi_app = OwnOrigin(app.wsgi_app, origin)  # type: ignore[method-assign]


class OwnOrigin:
    """Development only: a request under another host name is sent to the same path at the app's own origin.

    There, and only there, the counter's card check can succeed (the card signs the page's origin); the
    session and terminal cookies stay apart from another back office's on the same machine.
    """

    def __init__(self, wsgi_app: Any, origin: str) -> None:
        self.wsgi_app = wsgi_app
        self.origin = origin
        self.host = origin.partition("://")[2]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("HTTP_HOST", self.host) == self.host:
            return self.wsgi_app(environ, start_response)
        from urllib.parse import quote

        path = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1")
        query = environ.get("QUERY_STRING", "")
        location = self.origin + quote(path, safe="/") + (f"?{query}" if query else "")
        # 307: temporary (a browser does not keep it once the setting changes), and a POST stays a POST.
        start_response("307 Temporary Redirect", [("Location", location), ("Content-Length", "0"),
                                                  ("Cache-Control", "no-store")])
        return [b""]


def _staff_acting() -> bool:
    """True inside a request of a signed-in staff member (audit.record then names them)."""
    from flask import has_request_context
    from flask_login import current_user

    return has_request_context() and bool(current_user.is_authenticated)


def _init_bridge(app: Flask) -> None:
    """Take part in the bridge as ``muni:<MUNICIPALITY_CODE>``: outbox, processed messages, dead letters, audit."""
    from backoffice.extensions import db
    from backoffice.models import BridgeAlert, DeadLetter, Outbox, ProcessedMessage
    from backoffice.services import audit
    from bridge.binding import init_bridge

    def record(_session: Any, action: str, *, outcome: str, target_type: str, target_id: str,
               detail: dict[str, Any]) -> Any:
        # audit.record writes through db.session, which is the session the bridge passes. An administrator's
        # action on the bridge (a dead letter viewed, retried or discarded) names them; a job's names the bridge.
        return audit.record(action, actor=None if _staff_acting() else "bridge", outcome=outcome,
                            target_type=target_type, target_id=target_id, detail=detail)

    init_bridge(app, zone="backoffice", database=db, outbox=Outbox, processed=ProcessedMessage,
                dead_letters=DeadLetter, audit=record, alerts=BridgeAlert)
    from backoffice.services.intake import register_handlers
    from backoffice.services.moves import register_handlers as register_move_handlers
    from backoffice.services.provision import load_recipients

    register_handlers()
    register_move_handlers()
    from backoffice.services import cancellation

    cancellation.register_handlers()
    from backoffice.services import intake_pause, watch

    intake_pause.register()  # a paused kind's applications are held, not applied
    watch.register_metrics()  # the security officer's alerts, by kind and count only
    import backoffice.services.approval  # noqa: F401  (its check that every kind of case has its effect)
    load_recipients()  # a malformed list of lawful recipients stops the start, not the first provision
