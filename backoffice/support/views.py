"""Views: the list of support measures, recording one (clerk) and approving it (a different approver)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from backoffice.extensions import db
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


@bp.route("/")
@access(Role.CLERK, Role.APPROVER)
def index() -> Any:
    """Every measure, newest first, with the one waiting for a second person marked."""
    return _page()


@bp.route("/", methods=["POST"])
@access(Role.CLERK)
def record() -> Any:
    """Record a measure for the person with the 宛名番号 given; it waits for an approver."""
    atena = request.form.get("atena_number", "").strip()
    person = db.session.execute(select(Resident).where(Resident.atena_number == atena)).scalar_one_or_none()
    try:
        starts_on = dt.date.fromisoformat(request.form.get("starts_on", ""))
        ends_on = dt.date.fromisoformat(request.form.get("ends_on", ""))
    except ValueError:
        return _page({"period": _("Enter the first and last day of the period (YYYY-MM-DD).")}, 400)
    if person is None:
        return _page({"atena_number": _("No record has this atena number.")}, 400)
    try:
        support.request(db.session, resident_id=person.id, covered_ids=[], starts_on=starts_on, ends_on=ends_on,
                        hide_from_household=bool(request.form.get("hide_from_household")), by=current_user)
    except support.SupportError as exc:
        db.session.rollback()
        return _page({exc.field: exc.message}, 400)
    db.session.commit()
    flash(_("The support measure is recorded; a second person must approve it."), "success")
    return redirect(url_for("support.index"))


@bp.route("/<int:measure_id>/approve", methods=["POST"])
@access(Role.APPROVER)
def approve(measure_id: int) -> Any:
    """A second person puts the measure in force."""
    try:
        support.approve(db.session, measure_id, by=current_user)
    except support.SupportError as exc:
        db.session.rollback()
        return _page({"approve": exc.message}, 400)
    db.session.commit()
    flash(_("The support measure is in force."), "success")
    return redirect(url_for("support.index"))
