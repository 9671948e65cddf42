"""API: the procedure catalog search for apps (public, read-only, no sign-in), beside the other endpoints."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request

from portal.services import catalog

bp = Blueprint("api_procedures", __name__, url_prefix="/api/v1")

_SERVICE = {"type": "object", "required": ["id", "title", "summary", "category", "life_events", "online", "form",
                                           "fee_yen", "legal_basis"],
            "properties": {
                "id": {"type": "string"}, "title": {"type": "string"}, "summary": {"type": "string"},
                "category": {"enum": [c.code for c in catalog.categories()]},
                "life_events": {"type": "array", "items": {"enum": [e.code for e in catalog.life_events()]}},
                "online": {"type": "boolean", "description": "Can be applied for online on this portal"},
                "form": {"type": ["string", "null"], "description": "Path of the online form on this portal"},
                "fee_yen": {"type": ["integer", "null"], "minimum": 0,
                            "description": "Fee in yen at the portal's municipality; null when it has no fixed fee"},
                "legal_basis": {"type": "string"}}}
_INVALID = {"type": "object", "required": ["error", "field"], "properties": {
    "error": {"const": "invalid_parameter"}, "field": {"enum": ["q", "category", "life_event", "lang"]}}}
# This endpoint's part of the portal's OpenAPI 3.1 document, kept beside the code it describes.
OPENAPI_PATHS: dict[str, Any] = {"/api/v1/services": {"get": {
    "summary": "Search the service catalog (no sign-in)", "operationId": "searchServices",
    "parameters": [
        {"name": "q", "in": "query", "required": False,
         "schema": {"type": "string", "maxLength": catalog.MAX_QUERY_LENGTH},
         "description": "Words that must all match (kanji, hiragana, katakana, full- or half-width, English)"},
        {"name": "category", "in": "query", "required": False,
         "schema": {"enum": ["", *(c.code for c in catalog.categories())]}},
        {"name": "life_event", "in": "query", "required": False,
         "schema": {"enum": ["", *(e.code for e in catalog.life_events())]}},
        {"name": "lang", "in": "query", "required": False, "schema": {"enum": list(catalog.LANGS), "default": "ja"}},
    ],
    "responses": {
        "200": {"description": "The matching services, best matches first", "content": {"application/json": {
            "schema": {"type": "object", "required": ["services", "count"], "properties": {
                "services": {"type": "array", "items": _SERVICE}, "count": {"type": "integer", "minimum": 0}}}}}},
        "400": {"description": "An unknown category, life event or language, too long a query, or a control "
                               "character in a parameter",
                "content": {"application/json": {"schema": _INVALID}}},
    },
}}}


def _invalid(field: str) -> Any:
    return jsonify({"error": "invalid_parameter", "field": field}), 400


def _as_json(service: catalog.Service, lang: str, fee: int | None) -> dict[str, Any]:
    return {
        "id": service.id,
        "title": service.title.in_lang(lang),
        "summary": service.summary.in_lang(lang),
        "category": service.category,
        "life_events": list(service.life_events),
        "online": service.online,
        "form": service.form,
        "fee_yen": fee,
        "legal_basis": service.legal_basis.in_lang(lang),
    }


@bp.route("/services")
def services() -> Any:
    """Services matching ``q``, ``category`` and ``life_event``, with texts in ``lang`` (ja by default, or en)."""
    q = request.args.get("q", "")
    category = request.args.get("category") or None
    life_event = request.args.get("life_event") or None
    lang = request.args.get("lang") or "ja"
    if len(q) > catalog.MAX_QUERY_LENGTH:
        return _invalid("q")
    if category is not None and not catalog.is_category(category):
        return _invalid("category")
    if life_event is not None and not catalog.is_life_event(life_event):
        return _invalid("life_event")
    if lang not in catalog.LANGS:
        return _invalid("lang")
    found = catalog.search(q, category=category, life_event=life_event, lang=lang)
    municipality = current_app.config["MUNICIPALITY_CODE"]
    return jsonify({"services": [_as_json(s, lang, catalog.fee_for(s, municipality)) for s in found],
                    "count": len(found)})
