"""Views: the resident's start page after sign-in."""

from typing import Any

from flask import redirect, render_template, url_for
from flask_login import current_user, login_required

from core.i18n import format_date
from portal.mypage import bp


@bp.route("/")
@login_required
def index() -> Any:
    """Who is signed in, and what they can do."""
    if not current_user.is_linked:
        return redirect(url_for("auth.link"))
    return render_template("portal/mypage/index.html", format_date=format_date)
