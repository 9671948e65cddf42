"""The counter (窓口): the resident's card check and the completion of an approved 転入予約 or 転居予約."""

from flask import Blueprint

bp = Blueprint("counter", __name__, url_prefix="/counter")

from backoffice.counter import views  # noqa: E402,F401
