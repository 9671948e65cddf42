"""Who is signed in on the portal: server-side resident sessions, and bearer tokens for the API."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, jsonify, redirect, request, session, url_for
from flask_login import current_user
from jose import JWTError, jwt

from core import clock
from portal.extensions import db, login_manager
from portal.models import PortalAccount
from portal.services import audit, cardauth

F = TypeVar("F", bound=Callable[..., Any])
API_ALGORITHMS = ["HS256"]


@login_manager.request_loader
def _load_resident(_req: Any) -> PortalAccount | None:
    token = session.get("sid")
    if not token:
        return None
    account, reason = cardauth.resume(db.session, token)
    if account is None:
        session.pop("sid", None)
        g.session_end_reason = reason
    db.session.commit()
    return account


def issue_api_token(account: PortalAccount) -> tuple[str, int]:
    """A short-lived bearer token for the JSON API (python-jose, one fixed algorithm)."""
    cfg = current_app.config
    lifetime = int(cfg["API_TOKEN_MINUTES"]) * 60
    now = clock.utcnow()
    claims = {"sub": str(account.id), "iss": cfg["SITE_ORIGIN"], "aud": cfg["SITE_ORIGIN"] + "/api",
              "iat": int(now.timestamp()), "exp": int((now + dt.timedelta(seconds=lifetime)).timestamp()),
              # The account's token version: API sign-out raises it, and every older token is refused.
              "ver": account.token_version}
    return jwt.encode(claims, cfg["API_TOKEN_KEY"], algorithm=API_ALGORITHMS[0]), lifetime


def api_account() -> PortalAccount | None:
    """The account named by a valid bearer token, or None.

    Valid means: signed with our key, ours as issuer and audience, not expired by the app clock, of
    the account's current token version (not signed out since), and issued to a card whose
    authentication certificate still stands in the CRL as read now (not revoked since).
    """
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    cfg = current_app.config
    try:
        claims = jwt.decode(header[7:], cfg["API_TOKEN_KEY"], algorithms=API_ALGORITHMS,
                            audience=cfg["SITE_ORIGIN"] + "/api", issuer=cfg["SITE_ORIGIN"],
                            options={"require_exp": True, "require_sub": True},
                            # python-jose checks exp against the system clock; the app clock is checked below.
                            )
    except JWTError:
        return None
    if int(claims["exp"]) <= int(clock.utcnow().timestamp()):
        return None
    try:
        account_id, version = int(claims["sub"]), int(claims["ver"])
    except (KeyError, TypeError, ValueError):
        return None  # a token of before token versions, or a malformed one
    account = db.session.get(PortalAccount, account_id)
    if account is None or account.token_version != version:
        return None
    reason = cardauth.auth_certificate_in_force(account)
    if reason is not None:
        audit.record(db.session, "resident.api_token", outcome="failure", actor=f"account:{account.id}",
                     actor_id=account.id, detail={"reason": reason})
        db.session.commit()
        return None
    return account


def api_login_required(view: F) -> F:
    """Refuse an API request without a valid bearer token (401, JSON)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        account = api_account()
        if account is None:
            return jsonify({"error": "unauthorized"}), 401, {"WWW-Authenticate": "Bearer"}
        g.api_account = account
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def require_linked_resident() -> Any:
    """before_request of the resident's own pages: signed in, and the card linked to its holder."""
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
    if not current_user.is_linked:
        return redirect(url_for("auth.link"))
    return None
