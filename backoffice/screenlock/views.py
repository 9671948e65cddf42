"""Views: unlock the screen with a fresh one-time code; a wrong code ends the session at once."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user

from backoffice.extensions import db
from backoffice.screenlock import bp
from backoffice.security import access
from backoffice.services import audit
from backoffice.services import staff as staff_service
from core.redirects import safe_path


@bp.route("/unlock", methods=["POST"])
@access()
def unlock() -> Any:
    """The person at the terminal proves it is still them; anyone else is signed out, not given three tries."""
    if staff_service.check_second_factor(current_user, request.form.get("totp", "")):
        staff_service.unlock_session(db.session, session.get("sid", ""))
        audit.record("staff.unlock")
        db.session.commit()
        # Only a path of this site: never a host someone slipped into the form.
        return redirect(safe_path(request.form.get("next"), default=url_for("auth.home")))
    token = session.get("sid")
    if token:
        staff_service.end_session(db.session, token, reason="screen_lock")
    audit.record("staff.unlock", outcome="denied", detail={"reason": "totp"})
    db.session.commit()
    session.clear()
    flash(_("The one-time code was not accepted, so you have been signed out. Please sign in again."), "error")
    return redirect(url_for("auth.sign_in"))
