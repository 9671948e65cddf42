"""The clerk's inbox of cases that arrived from the portal."""

from flask import Blueprint

bp = Blueprint("cases", __name__, url_prefix="/cases")

from backoffice.cases import views  # noqa: E402,F401
