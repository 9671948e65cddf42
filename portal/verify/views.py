"""Views: the verification form and its answer (POST, so the code never sits in a URL or a server log)."""

from __future__ import annotations

from typing import Any

from flask import current_app, render_template, request
from flask_babel import gettext as _

from core import certcode
from core.i18n import format_date
from core.redisconn import first_in_window, within_global_limit, within_limit
from portal.extensions import db
from portal.services import audit, verification
from portal.verify import bp


def _page(**context: Any) -> str:
    return render_template("portal/verify/verify.html", format_date=format_date, **context)


@bp.route("/verify", methods=["GET", "POST"])
def verify() -> Any:
    """Type (or scan) the code printed on a certificate; see whether it is valid and when it was issued."""
    if request.method == "GET":
        return _page(verdict=None, error=None, checked=False)
    limit, client = current_app.config["CERTIFICATE_VERIFY_LIMIT"], request.remote_addr or "-"
    if not within_limit("verify-ip", client, limit=limit) or not within_global_limit(
            "verify", limit=current_app.config["CERTIFICATE_VERIFY_GLOBAL_LIMIT"]):
        # One row per address and minute says the limit was hit; a row per refused post would let a flood
        # grow the hash-chained log without bound. Every check that runs is still logged (verification.verify).
        if first_in_window("verify-refused", client):
            audit.record(db.session, "certificate.verify", actor="public", outcome="denied",
                         detail={"reason": "rate_limited"})
            db.session.commit()
        return _page(verdict=None, checked=False,
                               error=_("Too many checks from this connection. Please wait a minute and try again.")
                               ), 429, {"Retry-After": "60"}
    code = request.form.get("code", "")
    if not certcode.is_well_formed(code):
        return _page(verdict=None, checked=False,
                               error=_("Enter the 16-character verification code printed on the certificate.")), 400
    verdict = verification.verify(db.session, code)
    db.session.commit()
    return _page(verdict=verdict, error=None,
                           checked=True)
