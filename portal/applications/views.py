"""Views: one question per page, a check-answers page, signing in the browser, a confirmation page."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import abort, current_app, jsonify, redirect, render_template, session, url_for
from flask_babel import gettext as _
from flask_login import current_user

from core import clock
from core.addressmaster import load_machiaza, load_municipalities
from core.i18n import format_date
from portal.applications import bp, labels
from portal.applications import forms as f
from portal.extensions import db
from portal.security import require_linked_resident
from portal.services import applications as apps
from portal.services import cardauth, catalog, drafts
from portal.signing import run_signed

MOVE, CERT, REQUEST = "move", "certificate", "request"
JOURNEYS = (MOVE, CERT, REQUEST)
# The pages of the moving journey in order, and which answers each one owns (for "change" links and errors).
MOVE_PAGES = ("where", "address", "dates", "people", "householder", "contact")
FIELD_PAGE = {"destination": "address", "moveDate": "dates", "visitDate": "dates", "movers": "people",
              "newHouseholder": "householder", "contactPhone": "contact", "fromMunicipalityCode": "where"}


bp.before_request(require_linked_resident)


def _draft(journey: str) -> dict[str, Any]:
    return drafts.load(db.session, current_user, journey)


def _save(journey: str, **answers: Any) -> None:
    drafts.save(db.session, current_user, journey, answers)
    db.session.commit()


def _question(form: Any, title: str, **context: Any) -> Any:
    return render_template("portal/apply/question.html", form=form, title=title, **context)


@bp.route("/move")
def move_start() -> Any:
    """Before you start: what can be done online, the rules, what happens next."""
    origin = apps.home_municipality(current_user)
    connected = bool(origin and apps.is_connected(origin))
    return render_template("portal/apply/move_start.html", origin=origin, connected=connected,
                           old_enough=apps.old_enough_to_sign(current_user, clock.today_jst()))


@bp.route("/move/where", methods=["GET", "POST"])
def move_where() -> Any:
    """Within the city, or to another municipality."""
    draft = _draft(MOVE)
    form = f.WhereForm(data={"kind": draft.get("destination", {}).get("kind")})
    if form.validate_on_submit():
        destination = draft.get("destination", {})
        if destination.get("kind") != form.kind.data:
            destination = {"kind": form.kind.data}
        _save(MOVE, destination=destination)
        return redirect(url_for("apply.move_address"))
    return _question(form, _("Where are you moving to?"), back=url_for("apply.move_start"))


@bp.route("/move/address", methods=["GET", "POST"])
def move_address() -> Any:
    """The new address: from the address master in the city, or typed for another municipality."""
    draft = _draft(MOVE)
    destination = draft.get("destination", {})
    if destination.get("kind") not in ("in_city", "elsewhere"):
        return redirect(url_for("apply.move_where"))
    origin = apps.home_municipality(current_user) or current_app.config["MUNICIPALITY_CODE"]
    if destination["kind"] == "in_city":
        form = f.InCityAddressForm(data={"machiaza_code": destination.get("machiazaCode"),
                                         "banchi": destination.get("banchi"), "katagaki": destination.get("katagaki")})
        form.machiaza_code.choices = [("", _("Choose"))] + [(m.code, m.name) for m in load_machiaza(origin)]
        if form.validate_on_submit():
            _save(MOVE, destination={"kind": "in_city", "machiazaCode": form.machiaza_code.data,
                                     "banchi": form.banchi.data.strip(),
                                     "katagaki": (form.katagaki.data or "").strip()})
            return redirect(url_for("apply.move_dates"))
    else:
        form = f.ElsewhereAddressForm(data={
            "postal_code": destination.get("postalCode"), "prefecture": destination.get("prefecture"),
            "municipality": destination.get("municipality"), "address": destination.get("address"),
            "katagaki": destination.get("katagaki")})
        form.prefecture.choices = [("", _("Choose"))] + [(p, p) for p in apps.PREFECTURES]
        if form.validate_on_submit():
            prefecture, name = form.prefecture.data, form.municipality.data.strip()
            known = next((m for m in load_municipalities() if m.prefecture == prefecture and m.name == name), None)
            answer = {"kind": "elsewhere", "postalCode": form.postal_code.data.replace("-", ""),
                      "prefecture": prefecture, "municipality": name, "address": form.address.data.strip(),
                      "katagaki": (form.katagaki.data or "").strip()}
            if known:
                answer["municipalityCode"] = known.code
            _save(MOVE, destination=answer)
            return redirect(url_for("apply.move_dates"))
    return _question(form, _("Your new address"), back=url_for("apply.move_where"))


@bp.route("/move/dates", methods=["GET", "POST"])
def move_dates() -> Any:
    """When you move, and when you plan to visit the counter at the new address."""
    draft = _draft(MOVE)
    form = f.DatesForm(data={"move_date": _as_date(draft.get("moveDate")),
                             "visit_date": _as_date(draft.get("visitDate"))})
    if form.validate_on_submit():
        _save(MOVE, moveDate=form.move_date.data.isoformat(), visitDate=form.visit_date.data.isoformat())
        return redirect(url_for("apply.move_people"))
    return _question(form, _("When are you moving?"), back=url_for("apply.move_address"),
                     hint=_("The move-out notification can be sent from 30 days before to 10 days after the move. "
                            "The visit must be on or after the move date, within 14 days, and at least one business "
                            "day from today."))


@bp.route("/move/people", methods=["GET", "POST"])
def move_people() -> Any:
    """Who moves: you, and the people of your household who move with you."""
    draft = _draft(MOVE)
    movers = draft.get("movers") or [{"name": current_user.name, "kana": "", "relationship": "本人", "keepsCard": True,
                                       "birthDate": current_user.birth_date.isoformat()}]
    rows = [{"name": m["name"], "kana": m["kana"], "birth_date": _as_date(m["birthDate"]),
             "relationship": m["relationship"], "keeps_card": m["keepsCard"]} for m in movers]
    form = f.PeopleForm(data={"movers": rows + [{}] * max(0, 4 - len(rows))})
    if form.validate_on_submit():
        chosen, complete = [], True
        for entry in form.movers.entries:
            row = entry.form
            typed = [row.name.data, row.kana.data, row.birth_date.data, row.relationship.data]
            if not any(typed):
                continue
            for field, value, message in ((row.name, row.name.data, _("Enter the name")),
                                          (row.kana, row.kana.data, _("Enter the name in kana")),
                                          (row.birth_date, row.birth_date.data, _("Enter the date of birth")),
                                          (row.relationship, row.relationship.data, _("Enter the relationship"))):
                if not value:
                    field.errors = [*field.errors, message]
                    complete = False
            if all(typed):
                chosen.append({"name": row.name.data.strip(), "kana": _katakana(row.kana.data.strip()),
                               "birthDate": row.birth_date.data.isoformat(),
                               "relationship": row.relationship.data.strip(), "keepsCard": bool(row.keeps_card.data)})
        if complete and chosen:
            _save(MOVE, movers=chosen)
            return redirect(url_for("apply.move_householder"))
        if not chosen:
            form.movers.entries[0].form.name.errors = [_("Enter at least yourself")]
    return render_template("portal/apply/people.html", form=form, back=url_for("apply.move_dates"))


@bp.route("/move/householder", methods=["GET", "POST"])
def move_householder() -> Any:
    """Who will be the householder at the new address."""
    draft = _draft(MOVE)
    names = [m["name"] for m in draft.get("movers", [])]
    if not names:
        return redirect(url_for("apply.move_people"))
    form = f.HouseholderForm(data={"new_householder": draft.get("newHouseholder")})
    form.new_householder.choices = [(n, n) for n in names] + [
        ("existing", _("The householder already living at the new address"))]
    if form.validate_on_submit():
        _save(MOVE, newHouseholder=form.new_householder.data)
        return redirect(url_for("apply.move_contact"))
    return _question(form, _("Who will be the householder?"), back=url_for("apply.move_people"))


@bp.route("/move/contact", methods=["GET", "POST"])
def move_contact() -> Any:
    """A phone number the city can call about this move."""
    draft = _draft(MOVE)
    form = f.ContactForm(data={"contact_phone": draft.get("contactPhone")})
    if form.validate_on_submit():
        _save(MOVE, contactPhone=form.contact_phone.data.strip())
        return redirect(url_for("apply.move_check"))
    return _question(form, _("How can we contact you?"), back=url_for("apply.move_householder"))


def _move_application() -> dict[str, Any]:
    draft = _draft(MOVE)
    return {"type": "move", "fromMunicipalityCode": apps.home_municipality(current_user) or "",
            "moveDate": draft.get("moveDate", ""), "destination": draft.get("destination", {}),
            "movers": draft.get("movers", []), "newHouseholder": draft.get("newHouseholder", ""),
            "contactPhone": draft.get("contactPhone", ""), "visitDate": draft.get("visitDate", "")}


@bp.route("/move/check")
def move_check() -> Any:
    """Check your answers before signing; every answer has a change link."""
    application = _move_application()
    errors = apps.check_move(application, account=current_user, today=clock.today_jst())
    pages = {e.field: FIELD_PAGE.get(e.field.split(".")[0], "where") for e in errors}
    return render_template("portal/apply/move_check.html", application=application, errors=errors, pages=pages,
                           parts=_parts_preview(application) if not errors else [], format_date=format_date,
                           machiaza=_machiaza_name)


@bp.route("/certificate", methods=["GET", "POST"])
def certificate() -> Any:
    """The certificate request: kind, persons, optional items, copies and purpose on one page."""
    draft = _draft(CERT)
    items = draft.get("items", {})
    form = f.CertificateForm(data={"kind": draft.get("kind"), "persons": draft.get("persons"),
                                   "householder": items.get("householder"), "honseki": items.get("honseki"),
                                   "foreign_resident": items.get("foreignResident"),
                                   "juminhyo_code": items.get("juminhyoCode"), "my_number": items.get("myNumber"),
                                   "copies": draft.get("copies", 1), "purpose": draft.get("purpose")})
    if form.validate_on_submit():
        _save(CERT, kind=form.kind.data, persons=form.persons.data, copies=form.copies.data,
              purpose=form.purpose.data.strip(), items={"householder": form.householder.data,
                                                        "honseki": form.honseki.data,
                                                        "foreignResident": form.foreign_resident.data,
                                                        "juminhyoCode": form.juminhyo_code.data,
                                                        "myNumber": form.my_number.data})
        return redirect(url_for("apply.certificate_check"))
    fee = catalog.certificate_fee("juminhyo", apps.home_municipality(current_user) or "")
    return render_template("portal/apply/certificate.html", form=form, fee=fee)


def _certificate_application() -> dict[str, Any]:
    draft = _draft(CERT)
    return {"type": "certificate", "municipalityCode": apps.home_municipality(current_user) or "",
            "kind": draft.get("kind", ""), "persons": draft.get("persons", ""),
            "items": draft.get("items", {}), "copies": draft.get("copies", 0), "purpose": draft.get("purpose", ""),
            "delivery": "post"}


@bp.route("/certificate/check")
def certificate_check() -> Any:
    """Check the request, the fee and the delivery address before signing."""
    application = _certificate_application()
    errors = apps.check_certificate(application, account=current_user, today=clock.today_jst())
    fee = apps.certificate_fee(application) if not errors else 0
    return render_template("portal/apply/certificate_check.html", application=application, errors=errors, fee=fee)


@bp.route("/request", methods=["GET", "POST"])
def resident_request() -> Any:
    """A request about your own record: disclosure, correction of one item, or suspension of its use (R20)."""
    draft = _draft(REQUEST)
    form = f.RequestForm(data={"kind": draft.get("type"), "item": draft.get("item"),
                               "correct_value": draft.get("correctValue"), "use": draft.get("use"),
                               "reason": draft.get("reason")})
    form.item.choices = [("", _("Choose"))] + [(k, str(v)) for k, v in labels.RECORD_ITEMS.items()]
    form.use.choices = [(k, str(v)) for k, v in labels.SUSPENSION_USES.items()]
    if form.validate_on_submit():
        kind = form.kind.data
        needed = {"correction_request": ((form.item, _("Choose the item to correct")),
                                         (form.correct_value, _("Enter the correct value")),
                                         (form.reason, _("Enter your reason"))),
                  "suspension_request": ((form.use, _("Choose what should stop")),
                                         (form.reason, _("Enter your reason")))}.get(kind, ())
        missing = [(field, message) for field, message in needed if not (field.data or "").strip()]
        for field, message in missing:
            field.errors = [*field.errors, message]
        if not missing:
            answers: dict[str, Any] = {"type": kind}
            if kind == "correction_request":
                answers.update(item=form.item.data, correctValue=form.correct_value.data.strip(),
                               reason=form.reason.data.strip())
            elif kind == "suspension_request":
                answers.update(use=form.use.data, reason=form.reason.data.strip())
            drafts.clear(db.session, current_user, REQUEST)
            _save(REQUEST, **answers)
            return redirect(url_for("apply.request_check"))
    return render_template("portal/apply/request.html", form=form)


def _request_application() -> dict[str, Any]:
    draft = _draft(REQUEST)
    return {"type": draft.get("type", ""), "municipalityCode": apps.home_municipality(current_user) or "",
            **{k: draft[k] for k in ("item", "correctValue", "use", "reason") if k in draft}}


@bp.route("/request/check")
def request_check() -> Any:
    """Check the request before signing it with the card."""
    application = _request_application()
    errors = apps.check_request(application, account=current_user, today=clock.today_jst())
    return render_template("portal/apply/request_check.html", application=application, errors=errors,
                           items=labels.RECORD_ITEMS, uses=labels.SUSPENSION_USES)


def _application(journey: str) -> dict[str, Any]:
    return {MOVE: _move_application, CERT: _certificate_application, REQUEST: _request_application}[journey]()


@bp.route("/<journey>/sign")
def sign(journey: str) -> Any:
    """Sign and send: the browser asks for the signature password and signs the checked application."""
    if journey not in JOURNEYS:
        abort(404)
    return render_template("portal/apply/sign.html", journey=journey)


@bp.route("/<journey>/sign/challenge", methods=["POST"])
def sign_challenge(journey: str) -> Any:
    """The exact application to sign (built from the checked answers) with a one-time nonce."""
    if journey not in JOURNEYS:
        abort(404)
    issued = cardauth.nonces("sign").issue()
    session["apply_nonce"] = issued.nonce
    application = _application(journey)
    # The signing time, the move id and the parts are signed too: each municipality acts only on signed values.
    return jsonify({"nonce": issued.nonce, "aud": current_app.config["SITE_ORIGIN"], "application": application,
                    **apps.signing_claims(application, current_user)})


@bp.route("/<journey>/submit", methods=["POST"])
def submit(journey: str) -> Any:
    """Verify the signature and store everything in one transaction, or nothing."""
    if journey not in JOURNEYS:
        abort(404)
    nonce = session.pop("apply_nonce", None)
    expected = _application(journey)
    stored, refused = run_signed(lambda jws: apps.submit(db.session, account=current_user, jws=jws, nonce=nonce,
                                                         expected=expected))
    if stored is None:
        return refused
    drafts.clear(db.session, current_user, journey)
    db.session.commit()
    return jsonify({"redirect": url_for("apply.done", receipt=stored[0].receipt_number)})


@bp.route("/done/<receipt>")
def done(receipt: str) -> Any:
    """Confirmation: the receipt number of each part and what happens next."""
    application = apps.get_own(db.session, current_user, receipt)
    if application is None:
        db.session.commit()
        abort(404)
    parts = apps.move_parts(db.session, application)
    return render_template("portal/apply/done.html", parts=parts, content=apps.signed_content(application),
                           format_date=format_date)


def _as_date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _katakana(text: str) -> str:
    return "".join(chr(ord(c) + 0x60) if "ぁ" <= c <= "ゖ" else c for c in text)


def _machiaza_name(code: str) -> str:
    origin = apps.home_municipality(current_user) or current_app.config["MUNICIPALITY_CODE"]
    return next((m.name for m in load_machiaza(origin) if m.code == code), code)


def _parts_preview(application: dict[str, Any]) -> list[str]:
    dest = application["destination"]
    if dest.get("kind") == "in_city":
        return [_("In-city move reservation (転居予約)")]
    parts = [_("Move-out notification (転出届)")]
    if dest.get("municipalityCode") and apps.is_connected(dest["municipalityCode"]):
        parts.append(_("Move-in reservation (転入予約) to %(name)s", name=dest["municipality"]))
    return parts
