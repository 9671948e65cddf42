"""Views: the service search page and the page of one procedure."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, render_template, request
from flask_babel import get_locale

from portal.procedures import bp
from portal.procedures.forms import SearchForm
from portal.services import catalog


@bp.route("")
def search() -> Any:
    """Search the catalog; with no words or filters it lists every procedure."""
    form = SearchForm(request.args)
    lang = str(get_locale())
    if not form.validate():
        # A bad filter (a stale or edited link) gets the form back with the reason, never a server error.
        return render_template("portal/procedures/search.html", form=form, results=None, lang=lang), 400
    results = catalog.search(form.q.data or "", category=form.category.data or None,
                             life_event=form.life_event.data or None, lang=lang)
    return render_template("portal/procedures/search.html", form=form, results=results, lang=lang,
                           filtered=bool(form.q.data or form.category.data or form.life_event.data))


@bp.route("/<service_id>")
def detail(service_id: str) -> Any:
    """Everything about one procedure, and the way in when it can be applied for online."""
    service = catalog.get(service_id)
    if service is None:
        abort(404)
    return render_template(
        "portal/procedures/detail.html", service=service, lang=str(get_locale()),
        category=catalog.category(service.category),
        life_events=[event for event in catalog.life_events() if event.code in service.life_events],
        fee=catalog.fee_for(service, current_app.config["MUNICIPALITY_CODE"]),
    )
