"""A resident's signature posted by the pages' card.js: read it, act on it, answer in JSON.

Applying and withdrawing post ``{"signedApplication": <JWS>}``; either way a refused signature
keeps its operation-log row (commit) and a broken rule keeps nothing (rollback), and the page
reads the same JSON refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import jsonify, request
from flask_babel import gettext as _

from core.jpki import SignedApplicationError
from portal.extensions import db
from portal.services import applications as apps

T = TypeVar("T")


def run_signed(action: Callable[[str], T]) -> tuple[T | None, Any]:
    """``(result, None)`` of ``action`` on the posted JWS, or ``(None, the JSON refusal)``, the transaction settled."""
    body = request.get_json(silent=True)
    jws = body.get("signedApplication") if isinstance(body, dict) else None
    try:
        return action(jws if isinstance(jws, str) else ""), None
    except SignedApplicationError as exc:
        db.session.commit()
        return None, (jsonify({"error": "signature_refused", "hint": exc.user_hint,
                               "message": _("The signature could not be verified. Please try again.")}), 400)
    except apps.ApplicationInvalid as exc:
        db.session.rollback()
        return None, (jsonify({"error": "invalid", "message": str(exc.errors[0].message),
                               "fields": [e.field for e in exc.errors]}), 400)
