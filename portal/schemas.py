"""JSON Schemas (2020-12) of what a resident signs: published in the OpenAPI document, checked on every submission."""

from __future__ import annotations

from typing import Any

from bridge.messages import APPLICATION_KINDS, REQUEST_KINDS, UUID
from core.residentrequests import CORRECTION, DISCLOSURE, SUSPENSION

DATE = {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
KANA = {"type": "string", "minLength": 1, "maxLength": 100, "pattern": r"^[ァ-ヶー・　 ]+$"}
NAME = {"type": "string", "minLength": 1, "maxLength": 100}

MOVER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "kana", "birthDate", "relationship", "keepsCard"],
    "properties": {
        "name": NAME,
        "kana": KANA,
        "birthDate": DATE,
        "relationship": {"type": "string", "minLength": 1, "maxLength": 20},
        "keepsCard": {"type": "boolean"},
    },
}

DESTINATION = {
    "oneOf": [
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["kind", "machiazaCode", "banchi"],
            "properties": {
                "kind": {"const": "in_city"},
                "machiazaCode": {"type": "string", "pattern": r"^\d{10}$"},
                "banchi": {"type": "string", "minLength": 1, "maxLength": 50},
                "katagaki": {"type": "string", "maxLength": 100},
            },
        },
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["kind", "postalCode", "prefecture", "municipality", "address"],
            "properties": {
                "kind": {"const": "elsewhere"},
                "municipalityCode": {"type": "string", "pattern": r"^\d{6}$"},
                "postalCode": {"type": "string", "pattern": r"^\d{7}$"},
                "prefecture": {"type": "string", "minLength": 2, "maxLength": 10},
                "municipality": {"type": "string", "minLength": 1, "maxLength": 50},
                "address": {"type": "string", "minLength": 1, "maxLength": 100},
                "katagaki": {"type": "string", "maxLength": 100},
            },
        },
    ]
}

MOVE = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Move (転出届 + 転入予約, or 転居予約)",
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "fromMunicipalityCode", "moveDate", "destination", "movers", "newHouseholder",
                 "contactPhone", "visitDate"],
    "properties": {
        "type": {"const": "move"},
        "fromMunicipalityCode": {"type": "string", "pattern": r"^\d{6}$"},
        "moveDate": DATE,
        "destination": DESTINATION,
        "movers": {"type": "array", "minItems": 1, "maxItems": 10, "items": MOVER},
        "newHouseholder": {"type": "string", "minLength": 1, "maxLength": 100},
        "contactPhone": {"type": "string", "pattern": r"^0\d{1,4}-?\d{1,4}-?\d{3,4}$"},
        "visitDate": DATE,
    },
}

CERTIFICATE = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Certificate request (住民票の写し / 住民票記載事項証明書)",
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "municipalityCode", "kind", "persons", "items", "copies", "purpose", "delivery"],
    "properties": {
        "type": {"const": "certificate"},
        "municipalityCode": {"type": "string", "pattern": r"^\d{6}$"},
        "kind": {"enum": ["juminhyo", "kisai_jiko"]},
        "persons": {"enum": ["self", "household"]},
        "items": {
            "type": "object",
            "additionalProperties": False,
            # foreignResident (the 第30条の45 items of a foreign resident) came later: a request signed without it
            # asks for none of them.
            "required": ["householder", "honseki", "juminhyoCode", "myNumber"],
            "properties": {k: {"type": "boolean"}
                           for k in ("householder", "honseki", "foreignResident", "juminhyoCode", "myNumber")},
        },
        "copies": {"type": "integer", "minimum": 1, "maximum": 10},
        "purpose": {"type": "string", "minLength": 1, "maxLength": 200},
        "delivery": {"const": "post"},
    },
}

WITHDRAWAL = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Withdrawal of an application",
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "receiptNumber"],
    "properties": {"type": {"const": "withdrawal"}, "receiptNumber": {"type": "string", "maxLength": 30}},
}

PART = {
    "type": "object",
    "additionalProperties": False,
    "required": ["kind", "municipalityCode"],
    "properties": {
        "kind": {"enum": [*APPLICATION_KINDS, *REQUEST_KINDS]},
        "municipalityCode": {"type": "string", "pattern": r"^\d{6}$"},
    },
}

# The whole JWS payload the card signs. Each municipality acts only on these signed values: the parts
# (which municipality gets which notification), the move id that ties them together, and the signing
# time, which a back office checks against its maximum age; the portal's envelope merely carries it.
SIGNED_APPLICATION = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Signed application (JWS payload)",
    "type": "object",
    "additionalProperties": False,
    "required": ["aud", "nonce", "iat", "moveId", "parts", "application"],
    "properties": {
        "aud": {"type": "string"},
        "nonce": {"type": "string"},
        "iat": {"type": "integer", "description": "signing time, seconds since the epoch"},
        "moveId": {"oneOf": [UUID, {"type": "null"}], "description": "a fresh UUID for a move, null otherwise"},
        "parts": {"type": "array", "minItems": 1, "maxItems": 2, "uniqueItems": True, "items": PART},
        "application": {"type": "object"},
    },
}
SIGNED_WITHDRAWAL = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Signed withdrawal (JWS payload)",
    "type": "object",
    "additionalProperties": False,
    "required": ["aud", "nonce", "iat", "application"],
    "properties": {"aud": {"type": "string"}, "nonce": {"type": "string"}, "iat": {"type": "integer"},
                   "application": WITHDRAWAL},
}

SCHEMAS: dict[str, dict[str, Any]] = {"move": MOVE, "certificate": CERTIFICATE, "withdrawal": WITHDRAWAL,
                                      "disclosure_request": DISCLOSURE, "correction_request": CORRECTION,
                                      "suspension_request": SUSPENSION,
                                      "signed_application": SIGNED_APPLICATION,
                                      "signed_withdrawal": SIGNED_WITHDRAWAL}
