"""Views: the portal's start page."""

from typing import Any

from flask import render_template

from portal.public import bp


@bp.route("/")
def index() -> Any:
    """What residents can do here."""
    return render_template("portal/public/index.html")
