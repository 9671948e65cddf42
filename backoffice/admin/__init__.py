"""Administrator pages: staff accounts and terminals (no ledger contents)."""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

from backoffice.admin import views  # noqa: E402,F401
