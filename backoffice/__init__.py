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
    from backoffice.cases import bp as cases_bp
    from backoffice.certificates import bp as certificates_bp
    from backoffice.cli import register
    from backoffice.counter import bp as counter_bp
    from backoffice.ledger import bp as ledger_bp
    from backoffice.screenlock import bp as screenlock_bp
    from backoffice.statistics import bp as statistics_bp

    app.before_request(security.enforce_access)
    for bp in (auth_bp, ledger_bp, audit_bp, admin_bp, cards_bp, cases_bp, counter_bp, certificates_bp,
               statistics_bp, screenlock_bp):
        app.register_blueprint(bp)
    register(app)
    app.jinja_env.globals["zone"] = "backoffice"
    _init_bridge(app)
    return app


def _init_bridge(app: Flask) -> None:
    """Take part in the bridge as ``muni:<MUNICIPALITY_CODE>``: outbox, processed messages, dead letters, audit."""
    from backoffice.extensions import db
    from backoffice.models import BridgeAlert, DeadLetter, Outbox, ProcessedMessage
    from backoffice.services import audit
    from bridge.binding import init_bridge

    def record(_session: Any, action: str, *, outcome: str, target_type: str, target_id: str,
               detail: dict[str, Any]) -> Any:
        # audit.record writes through db.session, which is the session the bridge passes.
        return audit.record(action, actor="bridge", outcome=outcome, target_type=target_type, target_id=target_id,
                            detail=detail)

    init_bridge(app, zone="backoffice", database=db, outbox=Outbox, processed=ProcessedMessage,
                dead_letters=DeadLetter, audit=record, alerts=BridgeAlert)
    from backoffice.services.intake import register_handlers
    from backoffice.services.moves import register_handlers as register_move_handlers
    from backoffice.services.provision import load_recipients

    register_handlers()
    register_move_handlers()
    import backoffice.services.certificates  # noqa: F401  (registers what approving a certificate request does)
    load_recipients()  # a malformed list of lawful recipients stops the start, not the first provision
