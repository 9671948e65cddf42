"""Views: the inbox (ids and enum values only in its URLs), one case, and the workflow steps (POST, then redirect)."""

from __future__ import annotations

import json
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm

from backoffice.cases import bp
from backoffice.cases.forms import ApproveForm, NoteForm, ReasonForm, StepForm
from backoffice.extensions import db
from backoffice.messages import (
    ACTION_LABELS,
    APPLICATION_LABELS,
    CERTIFICATE_ITEMS,
    DESTINATION_LABELS,
    FINDING_LABELS,
    FINDINGS_SAID_BY_THE_LABEL,
    ITEM_LABELS,
    KIND_LABELS,
    STATUS_LABELS,
    VALUE_LABELS,
)
from backoffice.models import Case, CaseStatus, Role
from backoffice.security import access
from backoffice.services import cancellation, cases, ledger, support
from backoffice.services.cases import CaseError
from core import clock
from core.i18n import format_date, format_moment

KINDS = cases.KINDS
STAFF = (Role.CLERK, Role.APPROVER)
jst = format_moment  # a moment in Japan time, as the clerks and the working hours count it


def _flag(name: str) -> bool:
    return request.args.get(name, "") == "1"


@bp.route("/")
@access(*STAFF)
def inbox() -> Any:
    """Cases by status and kind, oldest first, with their age in working hours against the SLA."""
    status_value = request.args.get("status", "")
    kind = request.args.get("kind", "")
    try:
        status = CaseStatus(status_value) if status_value else None
    except ValueError:
        abort(400)
    if kind and kind not in KINDS:
        abort(400)
    mine, sensitive = _flag("mine"), _flag("sensitive")
    rows = cases.inbox(db.session, status=status, kind=kind or None,
                       claimed_by=current_user.id if mine else None, sensitive=sensitive)
    now = clock.utcnow()
    return render_template("backoffice/cases/inbox.html", rows=rows, ages={c.id: cases.age(c, now) for c in rows},
                           counts=cases.counts(db.session), status=status_value, kind=kind, mine=mine,
                           sensitive=sensitive, kinds=KINDS, kind_labels=KIND_LABELS, status_labels=STATUS_LABELS,
                           open_statuses=cases.OPEN, sla_hours=cases.sla_hours(), jst=jst)


def _forms() -> dict[str, FlaskForm]:
    return {"step": StepForm(), "return_form": ReasonForm(prefix="return"), "reject_form": ReasonForm(prefix="reject"),
            "approve_form": ApproveForm(prefix="approve"), "note_form": NoteForm(prefix="note"),
            "cancel_form": ApproveForm(prefix="cancel")}


def _render(item: Case, *, forms: dict[str, FlaskForm] | None = None, errors: list[str] | None = None,
            status: int = 200) -> Any:
    application = cases.signed_application(item)
    people = cases.sides(db.session, item)
    history = cases.events(db.session, item)
    notes = cases.notes(db.session, item)
    findings = json.loads(item.findings)
    refused = next((f for f in findings if f.get("code") == "signature_refused"), None)
    roles = current_user.role_set
    # Asked once: whether the move can still be cancelled (its own queries), and only then today's request.
    cancellable = bool({Role.CLERK, Role.APPROVER} & roles) and cancellation.cancellable(db.session, item)
    cancel_request = cancellation.counter_request(db.session, item) if cancellable else None
    db.session.commit()  # the case view and every ledger record shown are in the operation log
    page = render_template(
        "backoffice/cases/case.html", case=item, application=application,
        application_text=json.dumps(application, ensure_ascii=False, indent=2), findings=findings,
        signature_refused=refused, people=people, history=history, notes=notes, age=cases.age(item),
        requested_items=application.get("items") if isinstance(application.get("items"), dict) else {},
        event_details={e.id: json.loads(e.detail) if e.detail else {} for e in history},
        errors=errors or [], may_confirm=Role.CLERK in roles, may_approve=Role.APPROVER in roles,
        may_cancel=cancellable and Role.APPROVER in roles, may_request_cancel=cancellable and Role.CLERK in roles,
        cancel_request=cancel_request,
        may_unmask=ledger.may_see_my_number(current_user), masked=ledger.masked_my_number,
        address_text=ledger.address_text, format_date=format_date, kind_labels=KIND_LABELS,
        status_labels=STATUS_LABELS, action_labels=ACTION_LABELS, finding_labels=FINDING_LABELS,
        finding_labels_alone=FINDINGS_SAID_BY_THE_LABEL,
        item_labels=ITEM_LABELS, application_labels=APPLICATION_LABELS, destination_labels=DESTINATION_LABELS,
        value_labels=VALUE_LABELS, jst=jst, certificate_items=CERTIFICATE_ITEMS, open_statuses=cases.OPEN,
        shielded=support.shields(db.session, item), **(forms or _forms()))
    return page, status


def _load(case_id: int) -> Case:
    item = cases.get_case(db.session, case_id)
    if item is None:
        abort(404)
    return item


@bp.route("/<int:case_id>")
@access(*STAFF)
def case(case_id: int) -> Any:
    """One case: the application as signed, the signature check, the ledger beside it, history, notes, steps."""
    return _render(_load(case_id))


def _step(case_id: int, action: str, run: Any, *, form: FlaskForm, form_key: str, done: str) -> Any:
    """Run one step in one transaction; on refusal roll back, log the attempt and show the error by its field."""
    if not form.validate_on_submit():
        abort(400)
    try:
        run()
    except CaseError as exc:
        db.session.rollback()
        cases.refused(db.session, case_id, action, by=current_user, error=exc)
        db.session.commit()
        forms = _forms()
        forms[form_key] = form
        field = getattr(form, exc.field, None)
        if field is not None and exc.field != "csrf_token":
            field.errors = [exc.message]
            errors = []
        else:
            errors = [exc.message]
        return _render(_load(case_id), forms=forms, errors=errors, status=400)
    db.session.commit()
    flash(done, "info")
    if request.form.get("back") == "inbox":  # claim and release are offered in the inbox too
        return redirect(url_for("cases.inbox"))
    return redirect(url_for("cases.case", case_id=case_id))


@bp.route("/<int:case_id>/claim", methods=["POST"])
@access(*STAFF)
def claim(case_id: int) -> Any:
    """Take the case to work on it."""
    return _step(case_id, "claim", lambda: cases.claim(db.session, case_id, by=current_user), form=StepForm(),
                 form_key="step", done=_("You have claimed this case."))


@bp.route("/<int:case_id>/release", methods=["POST"])
@access(*STAFF)
def release(case_id: int) -> Any:
    """Give the case back to the inbox."""
    return _step(case_id, "release", lambda: cases.release(db.session, case_id, by=current_user), form=StepForm(),
                 form_key="step", done=_("You have released this case."))


@bp.route("/<int:case_id>/confirm", methods=["POST"])
@access(Role.CLERK)
def confirm(case_id: int) -> Any:
    """確認: checked against the ledger; another person must approve."""
    return _step(case_id, "confirm", lambda: cases.confirm(db.session, case_id, by=current_user), form=StepForm(),
                 form_key="step", done=_("Confirmed. Another person with the approver role must now approve it."))


@bp.route("/<int:case_id>/return", methods=["POST"])
@access(*STAFF)
def return_case(case_id: int) -> Any:
    """差戻し with a reason the applicant sees."""
    form = ReasonForm(prefix="return")
    return _step(case_id, "return",
                 lambda: cases.return_case(db.session, case_id, by=current_user, reason=form.reason.data or ""),
                 form=form, form_key="return_form", done=_("Returned to the applicant with your reason."))


@bp.route("/<int:case_id>/reject", methods=["POST"])
@access(*STAFF)
def reject(case_id: int) -> Any:
    """却下 with a reason."""
    form = ReasonForm(prefix="reject")
    return _step(case_id, "reject",
                 lambda: cases.reject(db.session, case_id, by=current_user, reason=form.reason.data or ""),
                 form=form, form_key="reject_form", done=_("Rejected. The applicant is told the reason."))


@bp.route("/<int:case_id>/approve", methods=["POST"])
@access(Role.APPROVER)
def approve(case_id: int) -> Any:
    """承認 with a fresh one-time code (step-up); the approval's effect runs in the same transaction."""
    form = ApproveForm(prefix="approve")
    return _step(case_id, "approve",
                 lambda: cases.approve(db.session, case_id, by=current_user, totp_code=form.totp_code.data or ""),
                 form=form, form_key="approve_form", done=_("Approved."))


@bp.route("/<int:case_id>/cancel-request", methods=["POST"])
@access(Role.CLERK)
def cancel_request(case_id: int) -> Any:
    """The resident asks at the counter to cancel the approved move: a clerk, having checked who asks, records it."""
    return _step(case_id, "cancel_request",
                 lambda: cancellation.request_counter_cancellation(db.session, case_id, by=current_user),
                 form=StepForm(), form_key="step",
                 done=_("The request is recorded. Another person with the approver role now cancels the move."))


@bp.route("/<int:case_id>/cancel-move", methods=["POST"])
@access(Role.APPROVER)
def cancel_move(case_id: int) -> Any:
    """転出取消 or 予約取消 a clerk recorded today as asked at the counter, before the 転入: another person with the
    approver role and a fresh one-time code (step-up)."""
    form = ApproveForm(prefix="cancel")
    return _step(case_id, "cancel_move",
                 lambda: cancellation.cancel_at_counter(db.session, case_id, by=current_user,
                                                        totp_code=form.totp_code.data or ""),
                 form=form, form_key="cancel_form", done=_("The move is cancelled."))


@bp.route("/<int:case_id>/notes", methods=["POST"])
@access(*STAFF)
def add_note(case_id: int) -> Any:
    """A note for other staff."""
    form = NoteForm(prefix="note")
    return _step(case_id, "note",
                 lambda: cases.add_note(db.session, case_id, by=current_user, text=form.text.data or ""),
                 form=form, form_key="note_form", done=_("Note added."))
