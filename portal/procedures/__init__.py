"""The procedure search: residents find procedures by keyword, category and life event, without signing in."""

from flask import Blueprint
from flask.blueprints import BlueprintSetupState

bp = Blueprint("procedures", __name__, url_prefix="/services")


@bp.record_once
def _load_catalog(state: BlueprintSetupState) -> None:
    # A malformed data file stops the portal at start, not at a resident's first search.
    from portal.services import catalog

    catalog.load_catalog()


from portal.procedures import views  # noqa: E402,F401
