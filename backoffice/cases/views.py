"""Views: the inbox (no personal data in its URLs) and one case."""

from __future__ import annotations

import json
from typing import Any

from flask import abort, render_template, request

from backoffice.cases import bp
from backoffice.extensions import db
from backoffice.models import CaseStatus, Role
from backoffice.security import access
from backoffice.services import cases
from core import clock

KINDS = ("move_out", "move_in_reservation", "in_city_reservation", "certificate")


@bp.route("/")
@access(Role.CLERK, Role.APPROVER)
def inbox() -> Any:
    """Cases by status and kind, oldest first, with their age."""
    status_value = request.args.get("status", "")
    kind = request.args.get("kind", "")
    try:
        status = CaseStatus(status_value) if status_value else None
    except ValueError:
        abort(400)
    if kind and kind not in KINDS:
        abort(400)
    rows = cases.inbox(db.session, status=status, kind=kind or None)
    return render_template("backoffice/cases/inbox.html", rows=rows, counts=cases.counts(db.session),
                           status=status_value, kind=kind, kinds=KINDS, now=clock.utcnow())


@bp.route("/<int:case_id>")
@access(Role.CLERK, Role.APPROVER)
def case(case_id: int) -> Any:
    """One case: the application as signed, what intake found, and the signature check."""
    item = cases.get_case(db.session, case_id)
    if item is None:
        abort(404)
    db.session.commit()
    text = json.dumps(cases.signed_application(item), ensure_ascii=False, indent=2)
    return render_template("backoffice/cases/case.html", case=item, application_text=text,
                           findings=json.loads(item.findings))
