"""Views: issue a card (the response is its file), show a card, suspend, resume, revoke a certificate."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import Field

from backoffice.cards import bp
from backoffice.cards.forms import REASON_LABELS, IssueForm, RevokeForm
from backoffice.extensions import db
from backoffice.models import CardRecord, Resident, Role
from backoffice.security import access
from backoffice.services import audit
from backoffice.services import cards as card_service
from core.i18n import format_date
from core.jpki.cardauthority import RevocationReason

# The service's refusals in the page's language; its English message is the fallback for anything new.
REFUSALS = {
    "resident_unknown": _l("No resident has this resident record code."),
    "resident_removed": _l("This record is removed (除票). A card cannot be issued to it."),
    "address_unknown": _l("The address of this record is not in the address master. Correct the record first."),
    "issuance_refused": _l("J-LIS refused to issue the certificates for this record."),
    "pin_format": _l("The PIN must be exactly 4 digits (0 to 9)."),
    "password_required": _l("Enter a password: residents aged 15 or older get a signature certificate."),
    "password_format": _l("The password must be 6 to 16 characters, using only A to Z and 0 to 9."),
    "password_mix": _l("The password must contain both letters and digits."),
    "serial_unknown": _l("This certificate does not belong to a card of this municipality."),
    "already_revoked": _l("This certificate is already revoked."),
    "reason_unknown": _l("Choose one of the listed reasons."),
    "not_active": _l("Only an active card can be suspended."),
    "not_suspended": _l("Only a suspended card can be resumed."),
    "not_on_hold": _l("The card's certificates are not on hold, so it cannot be resumed."),
    "authority_unknown": _l("J-LIS has no record of this card's certificates. Contact the system administrator."),
}


def _message(exc: card_service.CardError) -> str:
    return str(REFUSALS[exc.code]) if exc.code in REFUSALS else exc.message


def _show_error(field: Field, exc: card_service.CardError) -> None:
    field.errors = [*field.errors, _message(exc)]


@bp.route("/issue", methods=["GET", "POST"])
@access(Role.CLERK)
def issue() -> Any:
    """The issue form; on success the response is the virtual card file, downloaded once."""
    form = IssueForm()
    if form.validate_on_submit():
        try:
            card, data = card_service.issue_card(
                db.session, resident_code=form.resident_code.data or "", pin=form.pin.data or "",
                password=form.password.data or None, issued_by=current_user.login_id,
            )
        except card_service.CardError as exc:
            db.session.rollback()
            field = {"pin": form.pin, "password": form.password}.get(exc.field, form.resident_code)
            _show_error(field, exc)
        else:
            filename = f"card-{card.card_number}.json"
            audit.record("card.download", target_type="card", target_id=card.id,
                         detail={"card_number": card.card_number, "filename": filename})
            db.session.commit()
            return Response(data, mimetype="application/json", headers={
                "Content-Disposition": f"attachment; filename={filename}",
                "Cache-Control": "no-store",
            })
    return render_template("backoffice/cards/issue.html", form=form)


def _card_or_404(card_id: int) -> CardRecord:
    card = db.session.get(CardRecord, card_id)
    if card is None:
        abort(404)
    return card


def _revoke_form(card: CardRecord) -> RevokeForm:
    form = RevokeForm()
    choices = [("", _("Choose a certificate"))]
    if card.auth_cert_serial:
        choices.append((card.auth_cert_serial, _("User authentication: %(serial)s", serial=card.auth_cert_serial)))
    if card.sign_cert_serial:
        choices.append((card.sign_cert_serial, _("Digital signature: %(serial)s", serial=card.sign_cert_serial)))
    form.serial.choices = choices
    return form


def _card_page(card: CardRecord, revoke_form: RevokeForm) -> Any:
    resident = db.session.get(Resident, card.resident_id)
    states = card_service.certificate_states(card)
    db.session.commit()
    return render_template("backoffice/cards/card.html", card=card, resident=resident, states=states,
                           revoke_form=revoke_form, format_date=format_date)


@bp.route("/<int:card_id>")
@access(Role.CLERK)
def card(card_id: int) -> Any:
    """One card: number, serials, dates, status, and the actions a clerk may take."""
    record = card_service.view_card(db.session, card_id)
    if record is None:
        abort(404)
    return _card_page(record, _revoke_form(record))


def _hold_action(card_id: int, action: Any, done: str) -> Any:
    """Suspend or resume: call the service, commit, and say what happened (or why not)."""
    record = _card_or_404(card_id)
    try:
        action(db.session, card_number=record.card_number, by=current_user.login_id)
    except card_service.CardError as exc:
        db.session.rollback()
        flash(_message(exc), "error")
    else:
        db.session.commit()
        flash(done % {"number": record.card_number}, "info")
    return redirect(url_for("cards.card", card_id=card_id))


@bp.route("/<int:card_id>/suspend", methods=["POST"])
@access(Role.CLERK)
def suspend(card_id: int) -> Any:
    """A lost card: hold its certificates."""
    return _hold_action(card_id, card_service.suspend_card,
                        _("Card %(number)s is suspended: its certificates are on hold."))


@bp.route("/<int:card_id>/resume", methods=["POST"])
@access(Role.CLERK)
def resume(card_id: int) -> Any:
    """A lost card found again: release the holds."""
    return _hold_action(card_id, card_service.resume_card, _("Card %(number)s is active again."))


@bp.route("/<int:card_id>/revoke", methods=["POST"])
@access(Role.CLERK)
def revoke(card_id: int) -> Any:
    """Revoke one certificate of this card with a reason; the CRLs are republished at once."""
    record = _card_or_404(card_id)
    form = _revoke_form(record)
    if form.validate_on_submit():
        try:
            card_service.revoke_certificate(db.session, serial=form.serial.data or "", reason=form.reason.data or "",
                                            by=current_user.login_id)
        except card_service.CardError as exc:
            db.session.rollback()
            _show_error(form.reason if exc.field == "reason" else form.serial, exc)
        else:
            db.session.commit()
            reason = REASON_LABELS[RevocationReason(form.reason.data)]
            flash(_("Certificate %(serial)s is revoked: %(reason)s.", serial=form.serial.data, reason=reason), "info")
            return redirect(url_for("cards.card", card_id=card_id))
    return _card_page(record, form)
