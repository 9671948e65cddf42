"""Views: My page, My applications (list, detail with its history), and withdrawal on the resident's signature."""

from __future__ import annotations

import json
from typing import Any

from flask import abort, current_app, jsonify, redirect, render_template, session, url_for
from flask_login import current_user

from core import clock
from core.i18n import format_date
from portal.applications import labels
from portal.extensions import db
from portal.mypage import bp
from portal.security import require_linked_resident
from portal.services import applications as apps
from portal.services import cardauth
from portal.signing import run_signed

bp.before_request(require_linked_resident)


@bp.route("/")
def index() -> Any:
    """Who is signed in, and what they can do."""
    return render_template("portal/mypage/index.html", format_date=format_date)


@bp.route("/applications")
def applications() -> Any:
    """Everything the resident filed, newest first, the parts of a move together."""
    rows = apps.for_account(db.session, current_user)
    late = _delayed(rows)
    return render_template("portal/mypage/applications.html", applications=rows, format_date=format_date, late=late)


def _delayed(rows: list[Any]) -> set[str]:
    """The receipts among ``rows`` that wait while their municipality has paused their kind's intake."""
    from portal.services.status import delayed

    paused = delayed(db.session)
    return {a.receipt_number for a in rows if (a.municipality_code, a.kind.value) in paused
            and a.status.value in ("submitted", "received")}


def _own_or_404(receipt: str) -> Any:
    application = apps.get_own(db.session, current_user, receipt)
    if application is None:
        db.session.commit()  # the refused attempt on another resident's application stays in the log
        abort(404)
    return application


@bp.route("/applications/<receipt>")
def application(receipt: str) -> Any:
    """One application: what was signed, every step, the other parts of the same move, and a disclosure's answer."""
    item = _own_or_404(receipt)
    return render_template("portal/mypage/application.html", application=item, content=apps.signed_content(item),
                           late=bool(_delayed([item])), answer=json.loads(item.answer) if item.answer else None,
                           answer_items=labels.ANSWER_ITEMS, sexes=labels.SEXES, role_label=labels.role_label,
                           parts=apps.move_parts(db.session, item), withdrawable=apps.may_withdraw(item),
                           format_date=format_date)


@bp.route("/applications/<receipt>/withdraw")
def withdraw(receipt: str) -> Any:
    """Withdraw: the resident signs the withdrawal with the card."""
    item = _own_or_404(receipt)
    if not apps.may_withdraw(item):
        return redirect(url_for("mypage.application", receipt=receipt))
    return render_template("portal/mypage/withdraw.html", application=item)


@bp.route("/applications/<receipt>/withdraw/challenge", methods=["POST"])
def withdraw_challenge(receipt: str) -> Any:
    """The withdrawal to sign, with a one-time nonce."""
    _own_or_404(receipt)
    issued = cardauth.nonces("sign").issue()
    session["withdraw_nonce"] = issued.nonce
    return jsonify({"nonce": issued.nonce, "aud": current_app.config["SITE_ORIGIN"],
                    "iat": int(clock.utcnow().timestamp()),
                    "application": {"type": "withdrawal", "receiptNumber": receipt}})


@bp.route("/applications/<receipt>/withdraw", methods=["POST"])
def withdraw_submit(receipt: str) -> Any:
    """Verify the signed withdrawal and record it (only while the city has not started checking)."""
    _own_or_404(receipt)
    nonce = session.pop("withdraw_nonce", None)
    _withdrawn, refused = run_signed(lambda jws: apps.withdraw(db.session, account=current_user,
                                                               receipt_number=receipt, jws=jws, nonce=nonce))
    if refused is not None:
        return refused
    db.session.commit()
    return jsonify({"redirect": url_for("mypage.application", receipt=receipt)})
