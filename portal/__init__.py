"""The resident portal (internet zone). It never imports the back office."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from core.app import build_app


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the portal application."""
    app = build_app(__name__, config=config, secret_key_name="PORTAL_SECRET_KEY", cookie_name="portal_session")
    from portal.extensions import db, login_manager, migrate
    from portal.models import PortalAccount

    db.init_app(app)
    login_manager.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).resolve().parent.parent / "migrations" / "portal"),
                     render_as_batch=True, compare_type=True)

    @login_manager.user_loader
    def _load(account_id: str) -> PortalAccount | None:
        return db.session.get(PortalAccount, int(account_id))

    from portal.public import bp as public_bp

    app.register_blueprint(public_bp)
    app.jinja_env.globals["zone"] = "portal"
    return app
