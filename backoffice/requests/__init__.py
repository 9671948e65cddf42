"""Residents' own requests (R20): disclosure, correction, suspension; deadlines and two people."""

from flask import Blueprint

bp = Blueprint("requests", __name__, url_prefix="/resident-requests")

from backoffice.requests import views  # noqa: E402,F401
