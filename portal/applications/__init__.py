"""The online applications: the moving journey and the certificate request, page by page."""

from flask import Blueprint

bp = Blueprint("apply", __name__, url_prefix="/apply")

from portal.applications import views  # noqa: E402,F401
