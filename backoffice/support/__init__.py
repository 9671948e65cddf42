"""Support measures (支援措置, R22): a clerk records one, a different approver puts it in force."""

from flask import Blueprint

bp = Blueprint("support", __name__, url_prefix="/support-measures")

from backoffice.support import views  # noqa: E402,F401
