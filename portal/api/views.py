"""API: card sign-in (challenge, token) and who the token belongs to."""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, g, jsonify, request

from bridge import reasons
from core.jpki import AuthTokenError, SignedApplicationError
from core.redisconn import within_global_limit, within_limit
from portal.api import bp
from portal.extensions import db
from portal.security import api_login_required, issue_api_token
from portal.services import applications as apps
from portal.services import cardauth


def _error(status: int, error: str, hint: str | None = None) -> Any:
    return jsonify({"error": error, "hint": hint}), status


@bp.route("/auth/challenge", methods=["POST"])
def challenge() -> Any:
    """A one-time nonce; the client signs it with the card and sends it back with the token."""
    cfg = current_app.config
    if not within_limit("challenge-ip", request.remote_addr or "-", limit=cfg["CARD_CHALLENGE_LIMIT"]) or not (
            within_global_limit("challenge", limit=cfg["CARD_CHALLENGE_GLOBAL_LIMIT"])):
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
    # Per address and over all clients before any cryptography; per certificate in cardauth.sign_in, once
    # the token has verified (a certificate alone is no proof: counting it here would let a forger lock a card out).
    if not within_limit("login-ip", request.remote_addr or "-", limit=limit) or not within_global_limit(
            "login", limit=current_app.config["CARD_LOGIN_GLOBAL_LIMIT"]):
        return _error(429, "too_many_requests")
    try:
        outcome = cardauth.sign_in(db.session, token=auth_token, nonce=nonce if isinstance(nonce, str) else None,
                                   client=request.remote_addr, open_session=False)
    except AuthTokenError as exc:
        db.session.commit()
        return _error(401, "authentication_failed", exc.user_hint)
    except cardauth.SignInThrottled:
        db.session.commit()  # the refusal stays in the operation log
        return _error(429, "too_many_requests")
    access_token, lifetime = issue_api_token(outcome.account)
    db.session.commit()
    return jsonify({"access_token": access_token, "token_type": "Bearer", "expires_in": lifetime})


@bp.route("/auth/sign-out", methods=["POST"])
@api_login_required
def sign_out() -> Any:
    """Revoke every bearer token of the caller's account (the one sent included): 204."""
    cardauth.api_sign_out(db.session, g.api_account)
    db.session.commit()
    return "", 204


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
    except cardauth.IdentityMismatch:
        db.session.commit()  # the refusal stays in the operation log; the link is unchanged
        return _error(409, "identity_mismatch")
    except (SignedApplicationError, ValueError) as exc:
        db.session.commit()
        return _error(401, "signature_refused", getattr(exc, "user_hint", None))
    db.session.commit()
    return jsonify({"linked": True, "name": account.name})


def _application_json(application: Any) -> dict[str, Any]:
    return {
        "receipt_number": application.receipt_number,
        "kind": application.kind.value,
        "status": application.status.value,
        "status_reason": _reason(application.status_reason_code, application.status_reason),
        "status_reason_code": application.status_reason_code,
        "municipality_code": application.municipality_code,
        "move_id": application.move_id,
        "submitted_at": application.submitted_at.isoformat(),
        "history": [{"status": e.status.value, "reason": _reason(e.reason_code, e.reason), "reason_code": e.reason_code,
                     "at": e.at.isoformat()} for e in application.events],
        "answer": json.loads(application.answer) if application.answer else None,
    }


def _reason(code: str | None, text: str | None) -> str | None:
    """A status reason in the request's language (a clerk's as typed), or None."""
    return str(reasons.label(code, text)) if code or text else None


def _refused(exc: Exception, *, invalid_status: int) -> Any:
    """A refused signature (its audit row is kept) or a broken rule (nothing is kept), as JSON."""
    if isinstance(exc, SignedApplicationError):
        db.session.commit()
        return jsonify({"error": "signature_refused", "hint": exc.user_hint}), 400
    db.session.rollback()
    errors = exc.errors if isinstance(exc, apps.ApplicationInvalid) else []
    return jsonify({"error": "invalid_application",
                    "fields": [{"field": e.field, "pointer": e.pointer, "message": str(e.message)}
                               for e in errors]}), invalid_status


def _signed_body() -> tuple[dict[str, Any], str | None]:
    """The JSON body and its signed JWS: ``signedApplication``, as every request body of the API names its keys
    (camelCase); ``signed_application`` is still read, deprecated in the OpenAPI document (API version 1.x only)."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return {}, None
    jws = body.get("signedApplication", body.get("signed_application"))
    return body, jws if isinstance(jws, str) else None


@bp.route("/applications/challenge", methods=["POST"])
@api_login_required
def application_challenge() -> Any:
    """A one-time nonce, the audience and the signing time for the next signed application or withdrawal.

    Given ``{"application": {...}}``, also the ``moveId`` and ``parts`` to sign with it (the signed
    payload is ``{aud, nonce, iat, moveId, parts, application}``; a withdrawal's is ``{aud, nonce, iat,
    application}``).
    """
    issued = cardauth.nonces("sign").issue()
    body = request.get_json(silent=True)
    application = body.get("application") if isinstance(body, dict) else None
    claims = apps.signing_claims(application, g.api_account)
    extra = claims if isinstance(application, dict) else {"iat": claims["iat"]}
    return jsonify({"nonce": issued.nonce, "expires_at": issued.expires_at.isoformat(),
                    "aud": current_app.config["SITE_ORIGIN"], **extra})


@bp.route("/applications", methods=["POST"])
@api_login_required
def submit_application() -> Any:
    """Submit a signed application (JWS; schema per type in the OpenAPI document): 202 with its receipt numbers."""
    body, jws = _signed_body()
    if jws is None:
        return jsonify({"error": "invalid_request", "field": "signedApplication", "pointer": "/signedApplication"}), 400
    nonce = body.get("nonce")
    try:
        stored = apps.submit(db.session, account=g.api_account, jws=jws,
                             nonce=nonce if isinstance(nonce, str) else None)
    except (SignedApplicationError, apps.ApplicationInvalid) as exc:
        return _refused(exc, invalid_status=422)
    db.session.commit()
    return jsonify({"receipt_number": stored[0].receipt_number, "status": stored[0].status.value,
                    "parts": [{"receipt_number": a.receipt_number, "kind": a.kind.value} for a in stored]}), 202


@bp.route("/applications")
@api_login_required
def list_applications() -> Any:
    """The caller's applications, newest first."""
    return jsonify({"applications": [_application_json(a) for a in apps.for_account(db.session, g.api_account)]})


def _own_or_404(receipt: str) -> Any:
    application = apps.get_own(db.session, g.api_account, receipt)
    if application is None:
        db.session.commit()  # a refused look at another resident's application stays in the log
        return None
    return application


@bp.route("/applications/<receipt>")
@api_login_required
def get_application(receipt: str) -> Any:
    """One of the caller's applications with its history; another resident's is 404."""
    application = _own_or_404(receipt)
    if application is None:
        return _error(404, "not_found")
    return jsonify(_application_json(application))


@bp.route("/applications/<receipt>/withdraw", methods=["POST"])
@api_login_required
def withdraw_application(receipt: str) -> Any:
    """Withdraw on a signed withdrawal `{"type": "withdrawal", "receiptNumber": ...}` while not yet in review."""
    if _own_or_404(receipt) is None:
        return _error(404, "not_found")
    body, jws = _signed_body()
    if jws is None:
        return jsonify({"error": "invalid_request", "field": "signedApplication", "pointer": "/signedApplication"}), 400
    nonce = body.get("nonce")
    try:
        application = apps.withdraw(db.session, account=g.api_account, receipt_number=receipt,
                                     jws=jws, nonce=nonce if isinstance(nonce, str) else None)
    except (SignedApplicationError, apps.ApplicationInvalid) as exc:
        return _refused(exc, invalid_status=409)
    db.session.commit()
    return jsonify(_application_json(application))


@bp.route("/openapi.json")
def openapi() -> Any:
    """The OpenAPI 3.1 document of this API."""
    from portal.api.openapi import document

    return jsonify(document(current_app.config["SITE_ORIGIN"]))
