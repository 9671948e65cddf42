"""Views: sign in, sign out, enroll this terminal, the start page."""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, g, make_response, redirect, render_template, session, url_for
from flask_babel import gettext as _
from flask_login import current_user

from backoffice.auth import bp
from backoffice.auth.forms import EnrollForm, SignInForm
from backoffice.extensions import db
from backoffice.security import access
from backoffice.services import audit, terminals
from backoffice.services import staff as staff_service


@bp.route("/")
@access()
def home() -> Any:
    """Start page after sign-in: what this person may do."""
    return render_template("backoffice/auth/home.html")


@bp.route("/sign-in", methods=["GET", "POST"])
@access(public=True)
def sign_in() -> Any:
    """Sign in with login ID, password and one-time code, from a registered terminal."""
    if current_user.is_authenticated:
        return redirect(url_for("auth.home"))
    form = SignInForm()
    if form.validate_on_submit():
        result = staff_service.authenticate(
            db.session, login_id=form.login_id.data, password=form.password.data, totp_code=form.totp.data
        )
        if result.staff is not None:
            old = session.get("sid")
            if old:
                staff_service.end_session(db.session, old, reason="replaced")
            session.clear()  # a new session at every sign-in: no fixation
            session["sid"] = staff_service.start_session(db.session, staff=result.staff, terminal=g.terminal)
            db.session.commit()
            return redirect(url_for("auth.home"))
        db.session.commit()  # the failure count and the audit row stay
        if result.reason in ("locked", "now_locked"):
            form.form_errors.append(_("This account is locked. Ask an administrator to unlock it."))
        else:
            form.form_errors.append(_("Sign-in failed. Check your login ID, password and one-time code."))
    return render_template("backoffice/auth/sign_in.html", form=form)


@bp.route("/sign-out", methods=["POST"])
@access()
def sign_out() -> Any:
    """End this session on the server, so the cookie is worthless from now on."""
    token = session.get("sid")
    if token:
        staff_service.end_session(db.session, token)
    audit.record("staff.sign_out")
    db.session.commit()
    session.clear()
    flash(_("You have signed out."), "info")
    return redirect(url_for("auth.sign_in"))


@bp.route("/terminal/enroll", methods=["GET", "POST"])
@access(public=True, terminal=False)
def enroll_terminal() -> Any:
    """Register this browser as a terminal with a one-time code from an administrator."""
    form = EnrollForm()
    if form.validate_on_submit():
        result = terminals.enroll(db.session, form.code.data)
        db.session.commit()
        if result is not None:
            terminal, cookie = result
            flash(_("This terminal is now registered as %(name)s.", name=terminal.name), "info")
            response = make_response(redirect(url_for("auth.sign_in")))
            response.set_cookie(terminals.COOKIE_NAME, cookie, max_age=5 * 365 * 86400, httponly=True,
                                samesite="Strict", secure=current_app.config["SESSION_COOKIE_SECURE"])
            return response
        form.code.errors = [*form.code.errors,
                            _("This enrollment code is not valid. Ask an administrator for a new one.")]
    return render_template("backoffice/auth/enroll.html", form=form)
