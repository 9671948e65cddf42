"""Statistics (F11): 異動集計, as a page and a CSV export."""

from flask import Blueprint

bp = Blueprint("statistics", __name__, url_prefix="/statistics")

from backoffice.statistics import views  # noqa: E402,F401
