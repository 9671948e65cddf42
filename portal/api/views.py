"""API: card sign-in (challenge, token) and who the token belongs to."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, jsonify, request

from core.jpki import AuthTokenError, SignedApplicationError
from core.redisconn import within_limit
from portal.api import bp
from portal.extensions import db
from portal.security import api_login_required, issue_api_token
from portal.services import cardauth


def _error(status: int, error: str, hint: str | None = None) -> Any:
    return jsonify({"error": error, "hint": hint}), status


@bp.route("/auth/challenge", methods=["POST"])
def challenge() -> Any:
    """A one-time nonce; the client signs it with the card and sends it back with the token."""
    if not within_limit("challenge-ip", request.remote_addr or "-", limit=current_app.config["CARD_CHALLENGE_LIMIT"]):
        return _error(429, "too_many_requests")
    issued = cardauth.nonces("auth").issue()
    return jsonify({"nonce": issued.nonce, "expires_at": issued.expires_at.isoformat()})


@bp.route("/auth/token", methods=["POST"])
def token() -> Any:
    """Exchange a Web eID token (over the nonce of /auth/challenge) for a short-lived bearer token."""
    if request.content_length is None or request.content_length > 10_000:
        return _error(401, "authentication_failed")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(401, "authentication_failed")
    auth_token, nonce = body.get("authToken"), body.get("nonce")
    limit = current_app.config["CARD_LOGIN_LIMIT"]
    if not within_limit("login-ip", request.remote_addr or "-", limit=limit) or not within_limit(
            "login-cert", cardauth.certificate_subject(auth_token), limit=limit):
        return _error(429, "too_many_requests")
    try:
        outcome = cardauth.sign_in(db.session, token=auth_token, nonce=nonce if isinstance(nonce, str) else None,
                                   client=request.remote_addr, open_session=False)
    except AuthTokenError as exc:
        db.session.commit()
        return _error(401, "authentication_failed", exc.user_hint)
    access_token, lifetime = issue_api_token(outcome.account)
    db.session.commit()
    return jsonify({"access_token": access_token, "token_type": "Bearer", "expires_in": lifetime})


@bp.route("/me")
@api_login_required
def me() -> Any:
    """The account the bearer token belongs to."""
    account = g.api_account
    return jsonify({"account_id": account.id, "linked": account.is_linked,
                    "name": account.name if account.is_linked else None})


@bp.route("/identity/challenge", methods=["POST"])
@api_login_required
def identity_challenge() -> Any:
    """What to sign to link this account to the four basic items of the card's signature certificate."""
    issued = cardauth.nonces("sign").issue()
    return jsonify({"nonce": issued.nonce, "expires_at": issued.expires_at.isoformat(),
                    "aud": current_app.config["SITE_ORIGIN"], "application": {"purpose": cardauth.LINK_PURPOSE}})


@bp.route("/identity", methods=["POST"])
@api_login_required
def identity() -> Any:
    """Verify the signed identity link (RS256 JWS, x5c = signature certificate) and keep the four items."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("signedApplication"), str):
        return _error(400, "invalid_request")
    nonce = body.get("nonce")
    try:
        account = cardauth.link_identity(db.session, account=g.api_account, jws=body["signedApplication"],
                                         nonce=nonce if isinstance(nonce, str) else None)
    except (SignedApplicationError, ValueError) as exc:
        db.session.commit()
        return _error(401, "signature_refused", getattr(exc, "user_hint", None))
    db.session.commit()
    return jsonify({"linked": True, "name": account.name})
