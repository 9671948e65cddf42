"""Views: the operation log with filters, its CSV export and a chain check."""

from __future__ import annotations

from typing import Any

from flask import Response, flash, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, IntegerField, SelectChoice, SelectField, StringField
from wtforms.validators import Length, NumberRange, Optional

from backoffice.audit import bp
from backoffice.extensions import db
from backoffice.forms_common import date_in_range
from backoffice.models import Role
from backoffice.security import access
from backoffice.services import audit, audit_reader, watch
from core import clock
from core.csvsafe import to_csv

MAX_PAGE = 10_000_000  # 500 million rows at 50 a page


class FilterForm(FlaskForm):
    """Filters of the log view (GET: they hold no personal data)."""

    class Meta:
        csrf = False

    action = StringField(_l("Action"), validators=[Optional(), Length(max=50)])
    actor = StringField(_l("Staff login ID"), validators=[Optional(), Length(max=50)])
    outcome = SelectField(
        _l("Outcome"),
        choices=[SelectChoice("", _l("Any")), SelectChoice("success", _l("Success")),
                 SelectChoice("failure", _l("Failure")), SelectChoice("denied", _l("Denied"))],
        validators=[Optional()],
    )
    date_from = DateField(_l("From"), validators=[Optional(), date_in_range])
    date_to = DateField(_l("To"), validators=[Optional(), date_in_range])
    # Not a filter the form shows, but checked with them: an OFFSET past PostgreSQL's BIGINT is a server error.
    page = IntegerField(_l("Page"), validators=[
        Optional(), NumberRange(min=1, max=MAX_PAGE, message=_l("Enter a page from 1 to %(max)d.", max=MAX_PAGE))])


def _filter(form: FilterForm) -> audit_reader.LogFilter:
    return audit_reader.LogFilter(action=form.action.data or "", actor=form.actor.data or "",
                                  outcome=form.outcome.data or "", date_from=form.date_from.data,
                                  date_to=form.date_to.data)


@bp.route("/")
@access(Role.AUDITOR)
def log() -> Any:
    """Browse the log, newest first."""
    form = FilterForm(request.args)
    if not form.validate():
        return render_template("backoffice/audit/log.html", form=form, rows=[], total=0, page=1, result=None), 400
    page = form.page.data or 1
    rows, total = audit_reader.browse(db.session, _filter(form), page=page)
    db.session.commit()
    return render_template("backoffice/audit/log.html", form=form, rows=rows, total=total, page=page, result=None)


@bp.route("/export", methods=["POST"])
@access(Role.AUDITOR)
def export() -> Any:
    """Download the filtered log as CSV (formula cells escaped); the export is logged."""
    form = FilterForm(request.args)
    if not form.validate():
        return log()
    rows = audit_reader.export_rows(db.session, _filter(form))
    db.session.commit()
    return Response(to_csv(audit_reader.EXPORT_HEADER, rows), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": "attachment; filename=operation-log.csv"})


@bp.route("/verify", methods=["POST"])
@access(Role.AUDITOR)
def verify() -> Any:
    """Recompute the chain and compare it with the signed checkpoints."""
    result = audit.chain().verify(db.session)
    audit.record("audit.verify", outcome="success" if result.ok else "failure",
                 detail={"rows": result.rows, "first_bad": result.first_bad, "reason": result.reason,
                         "checkpoint_seq": result.checkpoint_seq})
    db.session.commit()
    return render_template("backoffice/audit/log.html", form=FilterForm(), rows=[], total=0, page=1, result=result)


@bp.route("/alerts")
@access(Role.AUDITOR)
def alerts() -> Any:
    """Staff-access alerts (R18), newest first, each with the operation-log rows behind it."""
    items = watch.alerts(db.session)
    audit.record("alert.list", detail={"shown": len(items)})
    db.session.commit()
    return render_template("backoffice/audit/alerts.html", items=items, errors={}, jst=clock.JST)


@bp.route("/alerts/<bigint:alert_id>/acknowledge", methods=["POST"])
@access(Role.AUDITOR)
def acknowledge(alert_id: int) -> Any:
    """Acknowledge an alert with a note; the note goes to the operation log."""
    try:
        watch.acknowledge(db.session, alert_id, request.form.get("note", ""))
    except watch.AcknowledgeError as exc:
        db.session.rollback()
        items = watch.alerts(db.session)
        db.session.rollback()
        return render_template("backoffice/audit/alerts.html", items=items, jst=clock.JST,
                               errors={alert_id: exc.message}), 400
    db.session.commit()
    flash(_l("The alert is acknowledged."), "info")
    return redirect(url_for("audit.alerts"))
