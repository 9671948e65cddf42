"""My page: what the signed-in resident can do and has filed."""

from flask import Blueprint

bp = Blueprint("mypage", __name__, url_prefix="/mypage")

from portal.mypage import views  # noqa: E402,F401
