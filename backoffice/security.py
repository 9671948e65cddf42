"""Access rules for every back-office view: sign-in, roles and registered terminal, checked server-side."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import abort, current_app, flash, g, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user

from backoffice.extensions import db, login_manager
from backoffice.models import Role, Staff
from backoffice.services import audit, terminals
from backoffice.services import staff as staff_service

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class AccessRule:
    """Who may reach a view: ``public`` needs no sign-in; ``roles`` (any of) otherwise."""

    roles: frozenset[Role]
    public: bool
    terminal: bool


def access(*roles: Role, public: bool = False, terminal: bool = True) -> Callable[[F], F]:
    """Declare the access rule of a view; a view without one is refused (and fails a test)."""

    def decorate(view: F) -> F:
        view._access_rule = AccessRule(frozenset(roles), public, terminal)  # type: ignore[attr-defined]
        return view

    return decorate


def rule_for(endpoint: str | None) -> AccessRule | None:
    """The access rule of an endpoint, if it declares one."""
    if endpoint is None:
        return None
    view = current_app.view_functions.get(endpoint)
    return getattr(view, "_access_rule", None)


@login_manager.request_loader
def _load_staff(req: Any) -> Staff | None:
    token = session.get("sid")
    if not token:
        return None
    if "terminal" not in g:
        # Loaded before enforce_access ran (an error page, e.g. a CSRF refusal): identify the terminal first,
        # or the session would look as if it had moved terminal and be ended.
        g.terminal = terminals.identify(db.session, req)[0]
    terminal = g.terminal
    staff, reason = staff_service.resume_session(db.session, token, terminal_id=terminal.id if terminal else None)
    g.screen_locked = reason == "locked"
    if staff is None:
        session.pop("sid", None)
        g.session_end_reason = reason
        if reason in ("idle", "expired"):
            audit.record("staff.session_end", detail={"reason": reason})
    db.session.commit()
    return staff


def enforce_access() -> Any:
    """before_request: terminal, then sign-in, then role; every refusal is logged."""
    endpoint = request.endpoint
    if endpoint is None or endpoint == "static":
        return None
    rule = rule_for(endpoint)
    if rule is None:
        # Fail closed: a view that forgot to declare who may see it is served to nobody.
        current_app.logger.error("view %s has no access rule", endpoint)
        abort(500)
    terminal, reason = terminals.identify(db.session, request)
    g.terminal = terminal
    if rule.terminal and terminal is None:
        audit.record("terminal.refused", outcome="denied", detail={"reason": reason, "endpoint": endpoint})
        db.session.commit()
        abort(403)
    if rule.public:
        return None
    if not current_user.is_authenticated:
        if g.get("session_end_reason") == "idle":
            flash(_("You were signed out because the session was idle. Please sign in again."), "info")
        return redirect(url_for("auth.sign_in"))
    if g.get("screen_locked") and endpoint not in OPEN_WHILE_LOCKED:
        return _locked(endpoint)
    if rule.roles and not (rule.roles & current_user.role_set):
        audit.record("access.denied", outcome="denied", detail={"endpoint": endpoint})
        db.session.commit()
        abort(403)
    return None


# What a locked screen still serves: the one-time code that unlocks it, and signing out.
OPEN_WHILE_LOCKED = frozenset({"screenlock.unlock", "auth.sign_out"})


def _locked(endpoint: str) -> Any:
    """The screen locked itself after ``SCREEN_LOCK_MINUTES`` without a request (R19): every page but the unlock
    is this one, whatever the browser asks, so a reload or a new tab shows nothing behind the lock."""
    audit.record("staff.screen_locked", outcome="denied", detail={"endpoint": endpoint})
    db.session.commit()
    if request.accept_mimetypes.best == "application/json" or request.path.startswith("/ledger/api/"):
        return jsonify({"error": "screen_locked"}), 423
    next_path = request.full_path.rstrip("?") if request.method == "GET" else url_for("auth.home")
    return render_template("backoffice/screenlock/locked.html", next_path=next_path), 423
