"""Screen hygiene (R15, R19): unlocking the screen that went blank after five minutes without input."""

from flask import Blueprint

bp = Blueprint("screenlock", __name__, url_prefix="/screen")

from backoffice.screenlock import views  # noqa: E402,F401
