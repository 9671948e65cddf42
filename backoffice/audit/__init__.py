"""The security officer's pages: browse, export and verify the operation log."""

from flask import Blueprint

bp = Blueprint("audit", __name__, url_prefix="/audit")

from backoffice.audit import views  # noqa: E402,F401
