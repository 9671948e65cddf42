"""What a resident signs to ask about their own record (R20): disclosure, correction and suspension of use.

開示請求 (the record and who accessed it), 訂正請求 (an item and the value the resident says is right) and
利用停止請求 (stop using, erase, or stop providing it). The portal checks a request against these schemas
before it stores one and publishes them in its OpenAPI document; the back office checks the signed
application against them again on receipt, because it does not trust the portal.
"""

from __future__ import annotations

from typing import Any

import jsonschema

DRAFT = "https://json-schema.org/draft/2020-12/schema"
# The application kind (portal, bridge, signed ``type``) and the back office's request kind it becomes.
KINDS = {"disclosure_request": "disclosure", "correction_request": "correction", "suspension_request": "suspension"}
# The items of one's own record a correction may name (never the My Number or the 住民票コード: those
# have procedures of their own).
CORRECTABLE = ("name", "name_kana", "birth_date", "banchi", "katagaki", "honseki", "hittosha", "alphabet_name",
               "tsusho")
# What a suspension asks: stop using it, erase it, or stop providing it to others (個人情報保護法第98条).
SUSPENSION_USES = ("use", "erasure", "provision")
VALUE_MAX = 200
REASON_MAX = 1000

_CODE = {"type": "string", "pattern": r"^\d{6}$"}
_REASON = {"type": "string", "minLength": 1, "maxLength": REASON_MAX, "pattern": r"\S"}


def _schema(title: str, kind: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"$schema": DRAFT, "title": title, "type": "object", "additionalProperties": False,
            "required": ["type", "municipalityCode", *required],
            "properties": {"type": {"const": kind}, "municipalityCode": _CODE, **properties}}


DISCLOSURE = _schema("Disclosure request (開示請求) of one's own record and of who accessed it",
                     "disclosure_request", {}, [])
CORRECTION = _schema("Correction request (訂正請求) of one item of one's own record", "correction_request", {
    "item": {"enum": list(CORRECTABLE)},
    "correctValue": {"type": "string", "minLength": 1, "maxLength": VALUE_MAX, "pattern": r"\S"},
    "reason": _REASON}, ["item", "correctValue", "reason"])
SUSPENSION = _schema("Suspension request (利用停止請求) of the use or provision of one's own record",
                     "suspension_request", {"use": {"enum": list(SUSPENSION_USES)}, "reason": _REASON},
                     ["use", "reason"])
SCHEMAS: dict[str, dict[str, Any]] = {"disclosure_request": DISCLOSURE, "correction_request": CORRECTION,
                                      "suspension_request": SUSPENSION}


def problems(application: Any) -> list[str]:
    """The JSON paths of ``application`` that break its kind's schema (empty when it is a valid request)."""
    kind = application.get("type") if isinstance(application, dict) else None
    if kind not in SCHEMAS:
        return ["type"]
    validator = jsonschema.Draft202012Validator(SCHEMAS[str(kind)])
    errors = validator.iter_errors(application)
    return sorted({".".join(str(p) for p in e.absolute_path) or str(e.validator) for e in errors})
