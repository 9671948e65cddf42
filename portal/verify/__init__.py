"""The public page that checks a certificate's verification code (no sign-in, no personal data)."""

from flask import Blueprint

bp = Blueprint("verify", __name__, url_prefix="/certificates")

from portal.verify import views  # noqa: E402,F401
