"""The resident portal (internet zone). It never imports the back office."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from core.app import build_app, csrf


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the portal application."""
    app = build_app(__name__, config=config, secret_key_name="PORTAL_SECRET_KEY", cookie_name="portal_session")
    from portal.extensions import db, login_manager, migrate

    db.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.sign_in"
    login_manager.session_protection = None  # sessions are server-side
    migrate.init_app(app, db, directory=str(Path(__file__).resolve().parent.parent / "migrations" / "portal"),
                     render_as_batch=True, compare_type=True)

    from portal import security  # noqa: F401  (registers the session loader)
    from portal.api import bp as api_bp
    from portal.api.procedures import bp as api_procedures_bp
    from portal.applications import bp as apply_bp
    from portal.applications.labels import kind_label, reason_label, status_label, to_date
    from portal.auth import bp as auth_bp
    from portal.mypage import bp as mypage_bp
    from portal.procedures import bp as procedures_bp
    from portal.public import bp as public_bp
    from portal.verify import bp as verify_bp

    _check_card_trust(app)
    csrf.exempt(api_bp)  # bearer tokens only: no cookie the browser could send on its own
    for bp in (public_bp, auth_bp, mypage_bp, apply_bp, api_bp, procedures_bp, api_procedures_bp, verify_bp):
        app.register_blueprint(bp)
    app.jinja_env.globals.update(zone="portal", kind_label=kind_label, status_label=status_label,
                                 reason_label=reason_label)
    app.jinja_env.filters["todate"] = to_date
    _init_bridge(app)
    _register_commands(app)
    return app


def _register_commands(app: Flask) -> None:
    """``audit verify|checkpoint|keygen`` over the portal's own operation log, ``backup``/``restore``, ``db grants``."""
    from core.audit_cli import audit_group
    from core.backup_cli import backup_commands
    from core.grants import register_grants_command
    from portal.extensions import db
    from portal.services import audit

    app.cli.add_command(audit_group(audit.chain, lambda: db.session))
    from core.retention_cli import retention_group
    from portal.services import retention

    for command in backup_commands(lambda: "portal", "PORTAL_DATABASE_URL", audit.chain, lambda: db.session):
        app.cli.add_command(command)
    app.cli.add_command(retention_group(retention.rules, audit.chain, lambda: db.session, lambda: "portal"))
    register_grants_command()


def _check_card_trust(app: Flask) -> None:
    """Validate SITE_ORIGIN now; in production also load the anchors, so simulated CAs stop the start."""
    from core.jpki import validate_site_origin

    validate_site_origin(app.config["SITE_ORIGIN"], app_env=app.config["APP_ENV"])
    if app.config["APP_ENV"] == "production":
        from portal.services import cardauth

        with app.app_context():
            cardauth.trust()


def _init_bridge(app: Flask) -> None:
    """Take part in the bridge as ``portal``: outbox, processed messages, dead letters, the operation log."""
    from functools import partial

    from bridge.binding import init_bridge
    from portal.extensions import db
    from portal.models import BridgeAlert, DeadLetter, Outbox, ProcessedMessage
    from portal.services import audit

    init_bridge(app, zone="portal", database=db, outbox=Outbox, processed=ProcessedMessage, dead_letters=DeadLetter,
                audit=partial(audit.record, actor="bridge"), alerts=BridgeAlert)
    from portal.services import verification
    from portal.services.status import register_handlers

    register_handlers()
    verification.register_handlers()
