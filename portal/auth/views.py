"""Views: the card sign-in page, its challenge and login endpoints, identity link, sign-out."""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from core.jpki import AuthTokenError, SignedApplicationError
from core.redisconn import within_global_limit, within_limit
from portal.auth import bp
from portal.extensions import db
from portal.services import cardauth

MAX_BODY = 10_000
HINTS = {
    "certificate_expired": lambda: _("The certificate on your card has expired. Please renew it at the city office."),
    "certificate_revoked": lambda: _("The certificate on your card is no longer valid. Please visit the city office."),
}


def _failure(hint: str | None = None) -> Any:
    message = HINTS[hint]() if hint in HINTS else _("Sign-in failed. Please try again.")
    return jsonify({"error": "authentication_failed", "hint": hint, "message": message}), 401


def _too_many() -> Any:
    return jsonify({"error": "too_many_requests", "message": _("Too many attempts. Wait a minute and try again.")}), 429


@bp.route("/sign-in")
def sign_in() -> Any:
    """The card sign-in page: pick the card file, type the PIN."""
    if current_user.is_authenticated:
        return redirect(url_for("mypage.index"))
    return render_template("portal/auth/sign_in.html")


@bp.route("/challenge", methods=["POST"])
def challenge() -> Any:
    """A fresh one-time nonce for this browser session (the previous one is dropped)."""
    cfg = current_app.config
    if not within_limit("challenge-ip", request.remote_addr or "-", limit=cfg["CARD_CHALLENGE_LIMIT"]) or not (
            within_global_limit("challenge", limit=cfg["CARD_CHALLENGE_GLOBAL_LIMIT"])):
        return _too_many()
    issued = cardauth.nonces("auth").issue()
    session["auth_nonce"] = issued.nonce
    return jsonify({"nonce": issued.nonce, "expires_at": issued.expires_at.isoformat()})


@bp.route("/login", methods=["POST"])
def login() -> Any:
    """Verify the card's token (CSRF was checked before this runs, so a forged post spends no nonce)."""
    nonce = session.pop("auth_nonce", None)
    if request.content_length is None or request.content_length > MAX_BODY:
        return _failure()
    body = request.get_json(silent=True)
    token = body.get("authToken") if isinstance(body, dict) else None
    limit = current_app.config["CARD_LOGIN_LIMIT"]
    # Per address and over all clients before any cryptography; per certificate in cardauth.sign_in, once
    # the token has verified (a certificate alone is no proof: counting it here would let a forger lock a card out).
    if not within_limit("login-ip", request.remote_addr or "-", limit=limit) or not within_global_limit(
            "login", limit=current_app.config["CARD_LOGIN_GLOBAL_LIMIT"]):
        db.session.commit()
        return _too_many()
    try:
        outcome = cardauth.sign_in(db.session, token=token, nonce=nonce, client=request.remote_addr)
    except AuthTokenError as exc:
        db.session.commit()  # the refusal stays in the operation log
        return _failure(exc.user_hint)
    except cardauth.SignInThrottled:
        db.session.commit()  # the refusal stays in the operation log
        return _too_many()
    db.session.commit()
    session.clear()  # a new session at sign-in: nothing from before carries over
    session["sid"] = outcome.session_token
    target = url_for("mypage.index") if outcome.account.is_linked else url_for("auth.link")
    return jsonify({"redirect": target})


@bp.route("/link")
@login_required
def link() -> Any:
    """First sign-in with this card: sign once with the signature certificate so we know whose card it is."""
    if current_user.is_linked:
        return redirect(url_for("mypage.index"))
    return render_template("portal/auth/link.html")


@bp.route("/link/challenge", methods=["POST"])
@login_required
def link_challenge() -> Any:
    """A one-time nonce for the identity-link signature."""
    issued = cardauth.nonces("sign").issue()
    session["sign_nonce"] = issued.nonce
    return jsonify({"nonce": issued.nonce, "aud": current_app.config["SITE_ORIGIN"],
                    "application": {"purpose": cardauth.LINK_PURPOSE}})


@bp.route("/link", methods=["POST"])
@login_required
def link_submit() -> Any:
    """Verify the signature and keep the four basic items it carries."""
    nonce = session.pop("sign_nonce", None)
    body = request.get_json(silent=True)
    jws = body.get("signedApplication") if isinstance(body, dict) else None
    try:
        cardauth.link_identity(db.session, account=current_user, jws=jws if isinstance(jws, str) else "",
                               nonce=nonce)
    except cardauth.IdentityMismatch:
        db.session.commit()  # the refusal stays in the operation log; the link is unchanged
        message = _("This card's signature belongs to another person than this account. "
                    "Please ask at the city office.")
        return jsonify({"error": "identity_mismatch", "message": message}), 409
    except (SignedApplicationError, ValueError) as exc:
        db.session.commit()
        hint = getattr(exc, "user_hint", None)
        return _failure(hint)
    db.session.commit()
    return jsonify({"redirect": url_for("mypage.index")})


@bp.route("/sign-out", methods=["POST"])
def sign_out() -> Any:
    """End the session on the server."""
    token = session.get("sid")
    if token:
        cardauth.sign_out(db.session, token, current_user if current_user.is_authenticated else None)
        db.session.commit()
    session.clear()
    return redirect(url_for("public.index"))
