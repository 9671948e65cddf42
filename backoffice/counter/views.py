"""Views: the reservations waiting at the counter, one case with the card check, and its completion.

The card check runs on the registered counter terminal: the page asks this back office for a
one-time challenge bound to the staff session and the case, the card signs it in the browser, and
the service verifies it (R9). No personal data travels in a URL.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import abort, flash, g, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user

from backoffice.counter import bp
from backoffice.extensions import db
from backoffice.models import Resident, Role
from backoffice.security import access
from backoffice.services import audit as audit_service
from backoffice.services import cards, completion, continuation, counter, ledger
from backoffice.services.cases import CaseError, signed_application
from backoffice.services.records import RecordError
from core.i18n import format_date

MAX_BODY = 10_000
NONCE_KEY = "counter_nonce"


def _refusals() -> dict[str, str]:
    return {
        "not_applicant": _("This card belongs to someone who is neither the applicant nor a mover of this case. "
                           "The case cannot be completed with it."),
        "card_not_active": _("This card is suspended or revoked in the ledger. The case cannot be completed with it."),
        "card_unknown": _("The card authority does not know this card."),
        "under_fifteen": _("The card of a person under 15 does not prove that the movers are here. A mover aged 15 "
                           "or over, or a member of the household who brings the movers' cards, checks their "
                           "own card."),
        "certificate_revoked": _("The certificate on this card is revoked. The resident needs a new certificate "
                                 "before the case can be completed."),
        "certificate_expired": _("The certificate on this card has expired. The resident needs a new certificate "
                                 "before the case can be completed."),
    }


def _field_label(field: str) -> str:
    labels = {
        "visit": _("Card check"), "case": _("Case"), "destination": _("New address"),
        "destination.machiazaCode": _("New address"), "destination.banchi": _("New address"),
        "destination.address": _("New address"), "moveout_certificate": _("Certificate of moving out"),
        "moveDate": _("Date of the move"), "moved_on": _("Day the resident moved"), "movers": _("Movers"),
        "newHouseholder": _("New householder"), "paper_certificate": _("Paper certificate of moving out"),
        "my_number": _("My Number"), "juminhyo_code": _("Resident record code"),
        "remainingHouseholder": _("Householder of the remaining household"),
        "machiaza_code": _("New address"), "status": _("Record"),
        "relationship": _("Relationship to the new householder"),
    }
    if field in labels:
        return labels[field]
    if field.startswith("movers["):
        return _("Mover %(n)s", n=int(field[7:field.index("]")]) + 1)
    return field


def _message(exc: counter.CounterError) -> str:
    if exc.field.startswith("movers[") and "." in exc.field:
        item = exc.field.split(".", 1)[1]
        label = {"name": _("name"), "name_kana": _("name in kana"), "birth_date": _("birth date"),
                 "sex": _("sex")}.get(item, item)
        return _("A 転居 changes only the address and household, but this application would change the "
                 "%(item)s. Nothing was changed.", item=label)
    if exc.field.startswith("movers["):
        return _("This person is not a current resident of this city. Nothing was changed.")
    messages = {
        "visit": _("The resident's card has not been checked at this counter within the last %(m)s minutes. "
                   "Check the card first.", m=int(counter.visit_window().total_seconds() // 60)),
        "case": _("This case cannot be completed at the counter in its present state."),
        "newHouseholder": _("No householder of that name lives at the new address. Nothing was changed."),
        "moveDate": _("The move is still ahead: a 転居届 is completed on or after the day of the move."),
        "moved_on": _("Enter the day the resident moved, as they state it: a real date, not after today. "
                      "Nothing was changed."),
    }
    return messages.get(exc.field, _("The new address or the application is not complete. Nothing was changed."))


def _case_or_404(case_id: int) -> Any:
    case = counter.counter_case(db.session, case_id)
    if case is None:
        abort(404)
    return case


@bp.route("/")
@access(Role.CLERK)
def index() -> Any:
    """Approved 転入予約 and 転居予約 waiting for the resident, oldest first."""
    rows = counter.ready_cases(db.session)
    return render_template("backoffice/counter/index.html", rows=rows, kinds=counter.COUNTER_KINDS)


@bp.route("/<int:case_id>")
@access(Role.CLERK)
def case(case_id: int) -> Any:
    """The reservation beside the ledger records of its movers, the card check and the completion."""
    item = _case_or_404(case_id)
    movers = [db.session.get(Resident, i) if i is not None else None for i in counter.mover_ids(item)]
    audit_service.record("counter.view", target_type="case", target_id=item.id)
    visit = counter.current_visit(db.session, item, terminal_id=g.terminal.id)
    db.session.commit()
    application = signed_application(item)
    successions = completion.in_city_successions(db.session, item) if item.kind == "in_city_reservation" else []
    return render_template("backoffice/counter/case.html", case=item, kind=counter.COUNTER_KINDS[item.kind],
                           application=application, destination=counter.destination_text(application),
                           movers=movers, visit=visit, address_text=ledger.address_text, successions=successions,
                           window=int(counter.visit_window().total_seconds() // 60))


@bp.route("/<int:case_id>/challenge", methods=["POST"])
@access(Role.CLERK)
def challenge(case_id: int) -> Any:
    """A fresh one-time challenge for the card at this counter, bound to this session and this case."""
    item = _case_or_404(case_id)
    return _issue_challenge(NONCE_KEY, {"case": item.id})


def _issue_challenge(key: str, bound: dict[str, int]) -> Any:
    """A one-time challenge of the counter, kept in the staff session with what it is ``bound`` to."""
    issued = counter.nonces().issue()
    session[key] = {**bound, "nonce": issued.nonce}
    return jsonify({"nonce": issued.nonce, "expires_at": issued.expires_at.isoformat()})


def _posted_token(key: str, bound: dict[str, int]) -> tuple[str | None, Any]:
    """(the challenge kept under ``key`` if it was issued for ``bound``, used up either way; the posted authToken)."""
    kept = session.pop(key, None)
    matches = isinstance(kept, dict) and all(kept.get(name) == value for name, value in bound.items())
    nonce = kept.get("nonce") if matches and isinstance(kept, dict) else None
    body = request.get_json(silent=True) if (request.content_length or 0) <= MAX_BODY else None
    return nonce, body.get("authToken") if isinstance(body, dict) else None


@bp.route("/<int:case_id>/card", methods=["POST"])
@access(Role.CLERK)
def card(case_id: int) -> Any:
    """Verify the card that signed the challenge and that it is the applicant's or a mover's."""
    item = _case_or_404(case_id)
    nonce, token = _posted_token(NONCE_KEY, {"case": item.id})
    try:
        counter.check_visit(db.session, item, token=token, nonce=nonce, staff_id=current_user.id,
                            terminal_id=g.terminal.id)
    except counter.VisitRefused as exc:
        db.session.commit()  # the refused check stays on record
        message = _refusals().get(exc.hint, _("The card could not be verified. Please try again."))
        return jsonify({"error": "card_refused", "message": message}), 403
    except counter.CounterError:
        db.session.rollback()
        return jsonify({"error": "case_not_ready", "message": _(
            "This case cannot be completed at the counter in its present state.")}), 409
    db.session.commit()
    return jsonify({"redirect": url_for("counter.case", case_id=item.id)})


def _moved_on(value: str) -> dt.date:
    """The day the resident states they moved (住み始めた日), which the clerk types: required, a real date."""
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise counter.CounterError("moved_on", "enter the day the resident moved (住み始めた日)") from None


@bp.route("/<int:case_id>/complete", methods=["POST"])
@access(Role.CLERK)
def complete(case_id: int) -> Any:
    """Complete the 転入 or 転居 in one transaction, or change nothing and say why."""
    item = _case_or_404(case_id)
    visit = counter.current_visit(db.session, item, terminal_id=g.terminal.id)
    staff = current_user._get_current_object()
    try:
        moved_on = _moved_on(request.form.get("moved_on", ""))
        if item.kind == "in_city_reservation":
            chosen = request.form.get("remaining_householder", "")
            relationships = {int(name.removeprefix("relationship_")): value for name, value in request.form.items()
                             if name.startswith("relationship_") and name.removeprefix("relationship_").isdigit()}
            counter.complete_in_city_move(db.session, item, by=staff, visit=visit,
                                          remaining_householder=int(chosen) if chosen.isdigit() else None,
                                          relationships=relationships, moved_on=moved_on)
        else:
            number = request.form.get("paper_certificate_number", "").strip()
            issuer = request.form.get("paper_certificate_issuer", "").strip()
            counter.complete_move_in(db.session, item, by=staff, visit=visit, moved_on=moved_on,
                                     paper_certificate=(number, issuer) if number or issuer else None)
    except (counter.CounterError, CaseError, RecordError) as exc:
        db.session.rollback()
        audit_service.record("counter.complete", outcome="denied", target_type="case", target_id=case_id,
                             detail={"field": exc.field})
        db.session.commit()
        # The workflow's, the moves service's and the ledger's refusals carry their own message (the page's language).
        text = _message(exc) if isinstance(exc, counter.CounterError) else exc.message
        flash(f"{_field_label(exc.field)}: {text}", "error")
        return redirect(url_for("counter.case", case_id=case_id))
    db.session.commit()
    flash(_("The %(kind)s is complete.", kind=counter.COUNTER_KINDS[item.kind]), "success")
    return redirect(url_for("counter.case", case_id=item.id))


# -- 継続利用: a card kept after a 転入, presented with its PIN within the 90 days ------------------------

CARD_NONCE_KEY = "counter_card_nonce"


def _continuation_refusals(card: Any) -> dict[str, str]:
    due = format_date(card.continuation_due)
    return {
        "not_this_card": _("The card that was checked is not this card. Check the card named on this page."),
        "no_continuation": _("No continued use is pending for this card."),
        "renewal_required": _("The 90 days for presenting this card ended on %(date)s. The card cannot be "
                              "continued: it is marked for renewal, and the resident applies for a new card.",
                              date=due),
    }


def _card_or_404(card_id: int) -> Any:
    card = cards.view_card(db.session, card_id)
    if card is None:
        abort(404)
    return card


@bp.route("/cards")
@access(Role.CLERK)
def cards_pending() -> Any:
    """Cards taken over at a 転入 and still to be presented at the counter, due first."""
    rows = continuation.pending_cards(db.session)
    audit_service.record("card.list_pending", detail={"count": len(rows)})
    db.session.commit()
    return render_template("backoffice/counter/cards.html", rows=rows, moved_from=continuation.moved_from,
                           format_date=format_date)


@bp.route("/cards/<int:card_id>")
@access(Role.CLERK)
def card_continuation(card_id: int) -> Any:
    """One kept card: whose it is, by when it is to be presented, and the card check that continues it."""
    card = _card_or_404(card_id)
    resident = db.session.get(Resident, card.resident_id)
    db.session.commit()
    return render_template("backoffice/counter/card_continuation.html", card=card, resident=resident,
                           moved_from=continuation.moved_from(card), format_date=format_date)


@bp.route("/cards/<int:card_id>/challenge", methods=["POST"])
@access(Role.CLERK)
def card_challenge(card_id: int) -> Any:
    """A fresh one-time challenge for the card at this counter, bound to this session and this card."""
    card = _card_or_404(card_id)
    db.session.commit()
    return _issue_challenge(CARD_NONCE_KEY, {"card": card.id})


@bp.route("/cards/<int:card_id>/present", methods=["POST"])
@access(Role.CLERK)
def card_present(card_id: int) -> Any:
    """Verify the card that signed the challenge and continue the card with it, or say why not."""
    card = _card_or_404(card_id)
    nonce, token = _posted_token(CARD_NONCE_KEY, {"card": card.id})
    try:
        continuation.present_card(db.session, card, token=token, nonce=nonce, by=current_user.login_id)
    except continuation.PresentationRefused as exc:
        db.session.commit()  # the refused check stays in the operation log
        message = _refusals().get(exc.hint, _("The card could not be verified. Please try again."))
        return jsonify({"error": "card_refused", "message": message}), 403
    except cards.CardError as exc:
        # continue_card changes nothing before refusing, except marking a card past the 90 days for renewal,
        # which stays; the check and the refusal stay in the operation log.
        audit_service.record("card.continue", outcome="denied", target_type="card", target_id=card_id,
                             detail={"reason": exc.code})
        db.session.commit()
        text = _continuation_refusals(card).get(exc.code, _("The card could not be continued."))
        return jsonify({"error": exc.code, "message": text}), 409
    db.session.commit()
    flash(_("The card is continued (継続利用). It stays valid at this city."), "success")
    return jsonify({"redirect": url_for("counter.card_continuation", card_id=card.id)})
