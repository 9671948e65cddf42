"""Views: open requests with their deadlines, recording one, extending its deadline, confirming (clerk) and deciding
(another approver)."""

from __future__ import annotations

from typing import Any

from flask import render_template, request
from flask_babel import gettext as _
from flask_login import current_user

from backoffice import messages
from backoffice.extensions import db
from backoffice.forms_common import list_page, resident_by_atena, unknown_atena
from backoffice.models import Role
from backoffice.requests import bp
from backoffice.security import access
from backoffice.services import audit
from backoffice.services import resident_requests as service
from core import clock


def _page(errors: dict[str, str] | None = None, status: int = 200) -> Any:
    rows = service.by_deadline(db.session)
    # The list names everyone who asked about their own record: each look at it is in the operation log (R6).
    audit.record("resident_request.list", target_type="resident_request",
                 detail={"shown": [row.id for row, _person in rows]})
    db.session.commit()
    return render_template("backoffice/requests/list.html", rows=rows, errors=errors or {}, form=request.form,
                           today=clock.today_jst(), kinds=service.KINDS, items=service.CORRECTABLE,
                           kind_labels=messages.REQUEST_KIND_LABELS, status_labels=messages.REQUEST_STATUS_LABELS,
                           item_labels={**messages.RECORD_ITEM_LABELS, **messages.SUSPENSION_USE_LABELS}), status


_step = list_page(bp, _page, (service.RequestError,), "Every request by deadline; the overdue ones marked.")


@bp.route("/", methods=["POST"])
@access(Role.CLERK)
def receive() -> Any:
    """Record a request made at the counter or by post, for the person with the 宛名番号 given."""
    person = resident_by_atena(request.form.get("atena_number", ""))
    if person is None:
        return _page(unknown_atena(), 400)
    return _step(lambda: service.receive(db.session, kind=request.form.get("kind", ""), resident_id=person.id,
                                         by=current_user, item=request.form.get("item") or None,
                                         correct_value=request.form.get("correct_value")),
                 _("The request is recorded with its deadline."))


@bp.route("/<int:request_id>/confirm", methods=["POST"])
@access(Role.CLERK)
def confirm(request_id: int) -> Any:
    """The first person checks the request."""
    return _step(lambda: service.confirm(db.session, request_id, by=current_user), _("Saved."))


@bp.route("/<int:request_id>/extend", methods=["POST"])
@access(Role.CLERK)
def extend(request_id: int) -> Any:
    """Extend the deadline once, by up to 30 days, with the reason the resident is told."""
    try:
        days = int(request.form.get("days", ""))
    except ValueError:
        days = 0
    return _step(lambda: service.extend(db.session, request_id, days=days, reason=request.form.get("reason", ""),
                                        by=current_user), _("Saved."))


@bp.route("/<int:request_id>/decide", methods=["POST"])
@access(Role.APPROVER)
def decide(request_id: int) -> Any:
    """The second person grants or refuses, with the reason."""
    grant = request.form.get("decision") == "grant"
    return _step(lambda: service.decide(db.session, request_id, grant=grant, reason=request.form.get("reason", ""),
                                        by=current_user), _("Saved."))
