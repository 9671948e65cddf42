"""Ledger enquiry: search, record view, My Number unmask, CSV export, JSON."""

from flask import Blueprint

bp = Blueprint("ledger", __name__, url_prefix="/ledger")

from backoffice.ledger import views  # noqa: E402,F401
