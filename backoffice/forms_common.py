"""What the pages of the controls share: the person a clerk names by 宛名番号, and a step that saves or re-shows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, flash, redirect, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from wtforms import Field, Form
from wtforms.validators import ValidationError

from backoffice.extensions import db
from backoffice.models import Resident, Role
from backoffice.security import access
from core.clock import EARLIEST_DATE, LATEST_DATE


def date_in_range(_form: Form, field: Field) -> None:
    """WTForms validator: a date from EARLIEST_DATE to LATEST_DATE (an empty field is left to Optional)."""
    if field.data is not None and not EARLIEST_DATE <= field.data <= LATEST_DATE:
        raise ValidationError(_("Enter a date from %(first)s to %(last)s.", first=EARLIEST_DATE.isoformat(),
                                last=LATEST_DATE.isoformat()))


def resident_by_atena(value: str) -> Resident | None:
    """The record with this 宛名番号 (typed by a clerk, sent in a form body, never a URL)."""
    return db.session.execute(select(Resident).where(Resident.atena_number == value.strip())).scalar_one_or_none()


def unknown_atena() -> dict[str, str]:
    """The error of a 宛名番号 that names no record."""
    return {"atena_number": _("No record has this atena number.")}


def save_step(action: Callable[[], Any], errors: tuple[type[Exception], ...], page: Callable[..., Any],
              done: str, message: str, **done_values: Any) -> Any:
    """Run ``action``; on a refusal roll back and show ``page`` with it (400), else commit and go to ``done``
    (with ``done_values`` in its URL)."""
    try:
        action()
    except errors as exc:
        db.session.rollback()
        return page({getattr(exc, "field", "-"): getattr(exc, "message", str(exc))}, 400)
    db.session.commit()
    flash(message, "success")
    return redirect(url_for(done, **done_values))


def list_page(bp: Blueprint, page: Callable[..., Any], errors: tuple[type[Exception], ...],
              summary: str) -> Callable[[Callable[[], Any], str], Any]:
    """Serve ``page`` as ``bp``'s list (GET /, for clerks and approvers) and return the step of its forms:
    run an action, then show the list again with the refusal (400) or go back to it with ``message``."""
    def index() -> Any:
        return page()

    index.__doc__ = summary
    bp.add_url_rule("/", "index", access(Role.CLERK, Role.APPROVER)(index))

    def step(action: Callable[[], Any], message: str) -> Any:
        return save_step(action, errors, page, f"{bp.name}.index", message)

    return step
