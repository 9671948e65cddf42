"""Card issuance at the counter: issue a card and download its file; view, suspend, resume and revoke a card."""

from flask import Blueprint

bp = Blueprint("cards", __name__, url_prefix="/cards")

from backoffice.cards import views  # noqa: E402,F401
