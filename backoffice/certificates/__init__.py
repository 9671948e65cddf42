"""Certificates (F7): eligibility and preview before approval, then print, download, mailing and revocation."""

from flask import Blueprint

bp = Blueprint("certificates", __name__, url_prefix="/certificates")

from backoffice.certificates import views  # noqa: E402,F401
