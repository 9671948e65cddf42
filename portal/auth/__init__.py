"""Residents sign in with the My Number Card (simulated card file and PIN in the browser)."""

from flask import Blueprint

bp = Blueprint("auth", __name__, url_prefix="/auth")

from portal.auth import views  # noqa: E402,F401
