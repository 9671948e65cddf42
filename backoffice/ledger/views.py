"""Views: search, record, unmask, export, and the record as JSON."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, jsonify, render_template
from flask_babel import gettext as _
from flask_login import current_user

from backoffice.extensions import db
from backoffice.ledger import bp
from backoffice.ledger.forms import SearchForm
from backoffice.models import Resident, Role, Sex
from backoffice.security import access
from backoffice.services import ledger
from core.csvsafe import to_csv
from core.i18n import format_date

READERS = tuple(ledger.LEDGER_READERS)
REFUSALS = {
    "two_of_four": lambda: _("Enter at least two of name, address and date of birth (sex does not count), "
                             "or the resident record code."),
    "invalid_juminhyo_code": lambda: _("The resident record code is not valid (check digit)."),
    "name_too_short": lambda: _("Enter at least %(n)d characters of the name.", n=ledger.NAME_MIN_CHARS),
    "address_too_short": lambda: _("Enter the address from the start of a whole town area (町字), e.g. 花城町."),
}
EXPORT_REFUSALS = {
    "too_many_rows": lambda exc: _("The search matches %(rows)d records; an export holds at most %(max)d. "
                                   "Narrow the search and try again.", rows=exc.rows, max=exc.limit),
    "hourly_limit": lambda exc: _("You have made %(n)d exports in the last hour, the most allowed. "
                                  "Try again later.", n=exc.limit),
}


def _criteria(form: SearchForm) -> ledger.SearchCriteria:
    return ledger.SearchCriteria(
        juminhyo_code=(form.juminhyo_code.data or "").strip(),
        name=(form.name.data or "").strip(),
        address=(form.address.data or "").strip(),
        birth_date=form.birth_date.data,
        sex=Sex(form.sex.data) if form.sex.data else None,
    )


@bp.route("/search", methods=["GET", "POST"])
@access(*READERS)
def search() -> Any:
    """Search form and results (POST, so no personal data ever sits in a URL)."""
    form = SearchForm()
    results = None
    if form.validate_on_submit():
        criteria = _criteria(form)
        try:
            if form.export.data == "csv":
                return _export(criteria)
            results = ledger.search(db.session, criteria, page=form.page.data or 1)
        except ledger.SearchRefused as exc:
            getattr(form, exc.field).errors = [REFUSALS[exc.code]()]
        except ledger.ExportRefused as exc:
            form.form_errors.append(EXPORT_REFUSALS[exc.code](exc))
        db.session.commit()
    return render_template("backoffice/ledger/search.html", form=form, results=results,
                           masked=ledger.masked_my_number, address_text=ledger.address_text, format_date=format_date,
                           name_min=ledger.NAME_MIN_CHARS)


def _export(criteria: ledger.SearchCriteria) -> Response:
    rows = ledger.export(db.session, criteria, staff_id=current_user.id)
    db.session.commit()
    header = ["住民票コード", "氏名", "カナ氏名", "生年月日", "性別", "住所", "状態", "個人番号"]
    body = to_csv(header, ledger.export_rows(rows))
    return Response(body, mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": "attachment; filename=ledger-search.csv"})


def _record_page(resident: Resident, *, revealed: str | None) -> Any:
    members = ledger.household_members(db.session, resident)
    changes = ledger.history(db.session, resident)
    db.session.commit()
    return render_template("backoffice/ledger/record.html", resident=resident, members=members, changes=changes,
                           masked=ledger.masked_my_number(resident), revealed=revealed,
                           may_unmask=ledger.may_see_my_number(current_user), address_text=ledger.address_text,
                           format_date=format_date)


@bp.route("/residents/<int:resident_id>")
@access(*READERS)
def record(resident_id: int) -> Any:
    """One record with its household and history; the My Number masked."""
    resident = ledger.get_record(db.session, resident_id)
    if resident is None:
        abort(404)
    return _record_page(resident, revealed=None)


@bp.route("/residents/<int:resident_id>/my-number", methods=["POST"])
@access(Role.NUMBER_USE)
def unmask(resident_id: int) -> Any:
    """Show the My Number once, for number-use staff; the reveal is logged."""
    resident = ledger.get_record(db.session, resident_id)
    if resident is None:
        abort(404)
    return _record_page(resident, revealed=ledger.reveal_my_number(resident, current_user))


@bp.route("/api/residents/<int:resident_id>")
@access(*READERS)
def record_json(resident_id: int) -> Any:
    """The record as JSON for other back-office screens; the My Number masked."""
    resident = ledger.get_record(db.session, resident_id)
    if resident is None:
        abort(404)
    db.session.commit()
    return jsonify({
        "id": resident.id,
        "juminhyo_code": resident.juminhyo_code,
        "name": resident.name,
        "name_kana": resident.name_kana,
        "birth_date": resident.birth_date.isoformat(),
        "sex": resident.sex.value,
        "address": ledger.address_text(resident),
        "status": resident.status.value,
        "household_number": resident.household.household_number,
        "my_number": ledger.masked_my_number(resident),
    })
