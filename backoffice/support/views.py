"""Views: the list of support measures, recording one (clerk) and approving it (a different approver)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from flask import render_template, request
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from backoffice.extensions import db
from backoffice.forms_common import resident_by_atena, save_step, unknown_atena
from backoffice.models import Resident, Role, SupportMeasure
from backoffice.security import access
from backoffice.services import support
from backoffice.support import bp
from core import clock


def _page(errors: dict[str, str] | None = None, status: int = 200) -> Any:
    measures = db.session.execute(select(SupportMeasure, Resident)
                                  .join(Resident, Resident.id == SupportMeasure.resident_id)
                                  .order_by(SupportMeasure.id.desc())).all()
    return render_template("backoffice/support/list.html", measures=measures, errors=errors or {},
                           today=clock.today_jst(), form=request.form), status


def _step(action: Callable[[], Any], message: str) -> Any:
    return save_step(action, (support.SupportError,), _page, "support.index", message)


@bp.route("/")
@access(Role.CLERK, Role.APPROVER)
def index() -> Any:
    """Every measure, newest first, with the one waiting for a second person marked."""
    return _page()


@bp.route("/", methods=["POST"])
@access(Role.CLERK)
def record() -> Any:
    """Record a measure for the person with the 宛名番号 given; it waits for an approver."""
    try:
        starts_on = dt.date.fromisoformat(request.form.get("starts_on", ""))
        ends_on = dt.date.fromisoformat(request.form.get("ends_on", ""))
    except ValueError:
        return _page({"period": _("Enter the first and last day of the period (YYYY-MM-DD).")}, 400)
    person = resident_by_atena(request.form.get("atena_number", ""))
    if person is None:
        return _page(unknown_atena(), 400)
    return _step(lambda: support.request(db.session, resident_id=person.id, covered_ids=[], starts_on=starts_on,
                                         ends_on=ends_on, by=current_user,
                                         hide_from_household=bool(request.form.get("hide_from_household"))),
                 _("The support measure is recorded; a second person must approve it."))


@bp.route("/<int:measure_id>/approve", methods=["POST"])
@access(Role.APPROVER)
def approve(measure_id: int) -> Any:
    """A second person puts the measure in force."""
    return _step(lambda: support.approve(db.session, measure_id, by=current_user),
                 _("The support measure is in force."))
