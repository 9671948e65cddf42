"""The back office (city network zone): ledger, staff, terminals, operation log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from core.app import build_app


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the back-office application."""
    app = build_app(__name__, config=config, secret_key_name="BACKOFFICE_SECRET_KEY", cookie_name="bo_session")
    from backoffice.extensions import db, login_manager, migrate

    db.init_app(app)
    login_manager.init_app(app)
    login_manager.session_protection = None  # sessions are server-side and bound to the terminal instead
    migrate.init_app(app, db, directory=str(Path(__file__).resolve().parent.parent / "migrations" / "backoffice"),
                     render_as_batch=True, compare_type=True)

    from backoffice import security
    from backoffice.admin import bp as admin_bp
    from backoffice.audit import bp as audit_bp
    from backoffice.auth import bp as auth_bp
    from backoffice.cards import bp as cards_bp
    from backoffice.cli import register
    from backoffice.ledger import bp as ledger_bp

    app.before_request(security.enforce_access)
    for bp in (auth_bp, ledger_bp, audit_bp, admin_bp, cards_bp):
        app.register_blueprint(bp)
    register(app)
    app.jinja_env.globals["zone"] = "backoffice"
    return app
