"""Public pages of the portal that need no sign-in."""

from flask import Blueprint

bp = Blueprint("public", __name__)

from portal.public import views  # noqa: E402,F401
