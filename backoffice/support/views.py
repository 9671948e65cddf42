"""Views: the list of support measures, recording one (clerk) and approving it (a different approver); a measure's
page, where its extensions (延長) and the household members it covers are asked for and approved the same way."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from flask import abort, render_template, request
from flask_babel import gettext as _
from flask_login import current_user

from backoffice.extensions import db
from backoffice.forms_common import list_page, resident_by_atena, save_step, unknown_atena
from backoffice.models import Resident, Role, SupportMeasure
from backoffice.security import access
from backoffice.services import audit, support
from backoffice.support import bp
from core import clock


def _page(errors: dict[str, str] | None = None, status: int = 200) -> Any:
    measures = support.newest_first(db.session)
    # The list names every protected person: each look at it is in the operation log (R6), and counts as views
    # for the access watch (R18).
    audit.record("support_measure.list", target_type="support_measure",
                 detail={"shown": [measure.id for measure, _person in measures]})
    db.session.commit()
    return render_template("backoffice/support/list.html", measures=measures, errors=errors or {},
                           today=clock.today_jst(), form=request.form), status


_step = list_page(bp, _page, (support.SupportError,),
                  "Every measure, newest first, with the one waiting for a second person marked.")


def _measure_page(measure_id: int) -> Callable[..., Any]:
    """The page of one measure, shown again with ``errors`` when a step on it is refused."""
    def page(errors: dict[str, str] | None = None, status: int = 200) -> Any:
        measure = db.session.get(SupportMeasure, measure_id)
        if measure is None:
            abort(404)
        person = db.session.get(Resident, measure.resident_id)
        members = support.household(db.session, measure)
        names = {m.id: m.name for m in members}
        audit.record("support_measure.view", target_type="support_measure", target_id=measure.id)
        db.session.commit()
        pending_covered = support.pending_covered(measure)
        return render_template(
            "backoffice/support/measure.html", measure=measure, person=person, members=members,
            covered=support.covered(measure), names=names, history=support.history(measure),
            pending_covered=pending_covered, errors=errors or {}, today=clock.today_jst(),
            form=request.form), status
    return page


def _measure_step(measure_id: int, action: Callable[[], Any], message: str) -> Any:
    return save_step(action, (support.SupportError,), _measure_page(measure_id), "support.measure", message,
                     measure_id=measure_id)


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


@bp.route("/<int:measure_id>")
@access(Role.CLERK, Role.APPROVER)
def measure(measure_id: int) -> Any:
    """One measure: its period, the members it covers, its approved changes and the one waiting, if any."""
    return _measure_page(measure_id)()


@bp.route("/<int:measure_id>/extension", methods=["POST"])
@access(Role.CLERK)
def extension(measure_id: int) -> Any:
    """A clerk asks to extend the measure to a new last day, with the reason; a second person approves it."""
    try:
        ends_on = dt.date.fromisoformat(request.form.get("ends_on", ""))
    except ValueError:
        return _measure_page(measure_id)({"ends_on": _("Enter the new last day (YYYY-MM-DD).")}, 400)
    return _measure_step(measure_id, lambda: support.request_extension(
        db.session, measure_id, ends_on=ends_on, reason=request.form.get("reason", ""), by=current_user),
        _("The extension is recorded; a second person must approve it."))


@bp.route("/<int:measure_id>/extension/approve", methods=["POST"])
@access(Role.APPROVER)
def approve_extension(measure_id: int) -> Any:
    """A second person approves the extension."""
    return _measure_step(measure_id, lambda: support.approve_extension(db.session, measure_id, by=current_user),
                         _("The support measure is extended."))


@bp.route("/<int:measure_id>/covered", methods=["POST"])
@access(Role.CLERK)
def covered(measure_id: int) -> Any:
    """A clerk asks to change which household members the measure covers; a second person approves it."""
    try:
        wanted = [int(v) for v in request.form.getlist("covered")]
    except ValueError:
        return _measure_page(measure_id)({"covered_ids": support.MESSAGES["covered_ids"]}, 400)
    return _measure_step(measure_id, lambda: support.request_covered(db.session, measure_id, covered_ids=wanted,
                                                                     by=current_user),
                         _("The change of the members covered is recorded; a second person must approve it."))


@bp.route("/<int:measure_id>/covered/approve", methods=["POST"])
@access(Role.APPROVER)
def approve_covered(measure_id: int) -> Any:
    """A second person approves the change of the members covered."""
    return _measure_step(measure_id, lambda: support.approve_covered(db.session, measure_id, by=current_user),
                         _("The members covered are changed."))
