"""Every message type of the bridge and the JSON Schema (draft 2020-12) of its payload, in one place.

The sender and the receiver of a message read its shape here and nowhere else: ``Bridge.send``
(through ``bridge.outbox.add_message``) validates every payload before it is sealed, so a bug in a
sender raises in the sender's transaction and nothing is written; the delivery job and the peers'
receiver validate every opened payload before any handler runs, so a payload a compromised or
buggy sender made up is a dead letter (``schema_invalid``) and changes nothing. Handlers keep only
the checks a schema cannot make (does the case exist, may this sender change it).

Every schema is closed (``additionalProperties: false``): a field nobody defined is refused, never
ignored. An error names the JSON path and the schema keyword that failed, never the value: payloads
hold personal data.

The provision messages (``identity.update``, ``card.revocation``, ``dept.notice.*``,
``moveout.certificate``, ``movein.notice``) carry ``{"items": {name: value}}``; the items each may
carry are the items data/recipients.json allows the recipients of that type (a test keeps the two
in step), each item typed once in ``ITEMS``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match

from bridge import reasons
from core import checkdigits, residentrequests

DRAFT = "https://json-schema.org/draft/2020-12/schema"

# -- the pieces -------------------------------------------------------------------------------------

FORMATS = jsonschema.FormatChecker()


def _juminhyo_code(value: object) -> bool:
    """住民票コード: 11 digits whose last is the check digit (a non-string is the type keyword's business)."""
    return not isinstance(value, str) or checkdigits.is_valid_juminhyo_code(value)


FORMATS.checks("juminhyo-code")(_juminhyo_code)


UUID: dict[str, Any] = {"type": "string", "format": "uuid",
                        "pattern": r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"}
# The portal issues YYYYMMDD + 10 digits (到達番号); the back office stores up to 30 characters of it.
RECEIPT_NUMBER: dict[str, Any] = {"type": "string", "pattern": r"^[0-9A-Za-z][0-9A-Za-z-]{0,29}$"}
DATE: dict[str, Any] = {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
DATE_TIME: dict[str, Any] = {"type": "string", "format": "date-time",
                             "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$"}
# A compact JWS (header.payload.signature) as the resident's card made it; checked as a signature by intake.
JWS: dict[str, Any] = {"type": "string", "maxLength": 200_000,
                       "pattern": r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"}
APPLICATION_KINDS = ("move_out", "move_in_reservation", "in_city_reservation", "certificate")
# A resident's own requests (R20): signed like an application, each one a request case, never held by a pause.
REQUEST_KINDS = tuple(residentrequests.KINDS)
# What "My applications" shows (the portal's ApplicationStatus, less "submitted", which only the portal sets).
PORTAL_STATUSES = ("received", "in_review", "returned", "approved", "rejected", "withdrawn", "completed")
# 異動事由 (backoffice.models.IdoReason; a test keeps the two equal).
CHANGE_REASONS = ("出生", "転入", "転居", "転出", "死亡", "世帯変更", "世帯主変更", "職権修正", "帰化", "国籍取得",
                  "職権消除", "国外転入", "転出取消")
# 住民基本台帳法第30条の45の区分: who a foreign resident is.
FOREIGN_RESIDENT_CATEGORIES = ("中長期在留者", "特別永住者", "一時庇護許可者", "仮滞在許可者", "出生による経過滞在者",
                               "国籍喪失による経過滞在者")
# What J-LIS revokes a signature certificate for (bridge.peers.jlis.simulator.RevocationReason).
REVOCATION_REASONS = ("keyCompromise", "affiliationChanged", "certificateHold", "superseded")


def _text(max_length: int, *, nullable: bool = False, min_length: int = 1) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["string", "null"] if nullable else "string", "maxLength": max_length}
    if min_length:
        schema["minLength"] = min_length
        schema["pattern"] = r"\S"  # something besides spaces
    return schema


def _nullable(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {**schema, "type": [schema["type"], "null"]}


# Each data item of data/recipients.json, typed as the ledger holds it (the columns' widths).
ITEMS: dict[str, dict[str, Any]] = {
    "name": _text(100),
    "name_kana": _text(200, min_length=0),
    "birth_date": DATE,
    "sex": {"enum": ["1", "2"]},
    "address": _text(200),
    "juminhyo_code": {"type": "string", "pattern": r"^\d{11}$", "format": "juminhyo-code"},
    "my_number": _nullable({"type": "string", "pattern": r"^\d{12}$"}),
    "household_number": _text(20),
    "householder_name": _text(100),
    "relationship": _text(20, min_length=0),
    "honseki": _text(200, nullable=True, min_length=0),
    "hittosha": _text(100, nullable=True, min_length=0),
    "change_reason": {"enum": list(CHANGE_REASONS)},
    "change_date": DATE,
    "move_date": DATE,
    "previous_address": _text(200, nullable=True, min_length=0),
    "new_address": _text(200),
    # Certificate serials are decimal text: up to 160 bits, more than a JSON number holds exactly.
    "card_serial": _nullable({"type": "string", "pattern": r"^[0-9]{1,64}$"}),
    "revocation_reason": {"enum": list(REVOCATION_REASONS)},
    "move_id": _nullable(UUID),
    # SHA-256 of the signing input of the move the resident signed (転出届 and 転入予約 are one signature): the
    # destination gives the 転出証明書情報 only to a 転入予約 carrying that very signature.
    "move_signature": _nullable({"type": "string", "pattern": r"^[0-9a-f]{64}$"}),
    # 転出証明書情報 beyond the four items (施行令第24条): the 個別記載事項 (the date each status was acquired) ...
    "nhi_since": _nullable(DATE), "late_elderly_since": _nullable(DATE), "ltc_since": _nullable(DATE),
    "pension_since": _nullable(DATE), "child_allowance_since": _nullable(DATE),
    # ... and for a foreign resident the items of 第30条の45 (and the 別添1 items beside them) the ledger holds.
    "nationality": _text(50, nullable=True, min_length=0), "residence_status": _text(50, nullable=True, min_length=0),
    "residence_expiry": _nullable(DATE), "tsusho": _text(100, nullable=True, min_length=0),
    "alphabet_name": _text(200, nullable=True, min_length=0),
    "foreign_resident_category": {"enum": [*FOREIGN_RESIDENT_CATEGORIES, None]},
    "residence_card_number": _nullable({"type": "string", "pattern": r"^[A-Z]{2}[0-9]{8}[A-Z]{2}$"}),
    "became_foreign_resident_on": _nullable(DATE),
    "became_foreign_resident_reason": _text(20, nullable=True, min_length=0),
    "became_foreign_resident_notified_on": _nullable(DATE),
    "residence_period_years": _nullable({"type": "integer", "minimum": 0, "maximum": 99}),
    "residence_period_months": _nullable({"type": "integer", "minimum": 0, "maximum": 11}),
    "residence_period_days": _nullable({"type": "integer", "minimum": 0, "maximum": 366}),
    "special_permanent_certificate_issued_on": _nullable(DATE),
    "alphabet_name_kana": _text(200, nullable=True, min_length=0),
    "kanji_name": _text(100, nullable=True, min_length=0),
    "kanji_name_kana": _text(200, nullable=True, min_length=0),
    # The card the person keeps using (継続利用): the destination takes its record over at the 転入.
    "card_number": _nullable({"type": "string", "pattern": r"^[0-9]{12}$"}),
    "card_auth_serial": _nullable({"type": "string", "pattern": r"^[0-9]{1,64}$"}),
    "card_issued_on": _nullable(DATE),
    "card_expires_on": _nullable(DATE),
}
# A foreign resident's items (第30条の45 and 別添1) the 転出証明書情報 carries and the 転入 records.
FOREIGN_RESIDENT_ITEMS = [
    "foreign_resident_category", "residence_card_number", "became_foreign_resident_on",
    "became_foreign_resident_reason", "became_foreign_resident_notified_on", "nationality", "residence_status",
    "residence_period_years", "residence_period_months", "residence_period_days", "residence_expiry",
    "special_permanent_certificate_issued_on", "tsusho", "alphabet_name", "alphabet_name_kana", "kanji_name",
    "kanji_name_kana",
]
# What the 転出証明書情報 carries besides the basic items: the 個別記載事項 and the foreign-resident items.
CERTIFICATE_EXTRA = ["nhi_since", "late_elderly_since", "ltc_since", "pension_since", "child_allowance_since",
                     *FOREIGN_RESIDENT_ITEMS]
# The card kept in use (継続利用), beside the signature certificate serial (card_serial) the destination revokes.
CARD_ITEMS = ["card_number", "card_auth_serial", "card_issued_on", "card_expires_on"]


def _object(properties: Mapping[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": list(properties) if required is None
            else required, "properties": dict(properties)}


def _envelope(title: str, properties: Mapping[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"$schema": DRAFT, "title": title, **_object(properties, required)}


def _provision(title: str, items: list[str], required: list[str],
               narrower: Mapping[str, Any] | None = None) -> dict[str, Any]:
    properties = {name: (narrower or {}).get(name, ITEMS[name]) for name in items}
    return _envelope(title, {"items": {**_object(properties, required), "minProperties": 1}})


# -- the message types ------------------------------------------------------------------------------

ACK = "ack"
APPLICATION_SUBMITTED = "application.submitted"
APPLICATION_WITHDRAWN = "application.withdrawn"
APPLICATION_STATUS = "application.status"
CERTIFICATE_ISSUED = "certificate.issued"
INTAKE_PAUSED = "intake.paused"
CERTIFICATE_REVOKED = "certificate.revoked"
MOVEOUT_CERTIFICATE = "moveout.certificate"
MOVEIN_NOTICE = "movein.notice"
MOVEOUT_CANCELLATION = "moveout.cancellation"
IDENTITY_UPDATE = "identity.update"
CARD_REVOCATION = "card.revocation"
DEPT_NOTICES = ("dept.notice.move_out", "dept.notice.move_in", "dept.notice.in_city",
                "dept.notice.move_out_cancelled")

_APPLICATION = {"receiptNumber": RECEIPT_NUMBER, "kind": {"enum": [*APPLICATION_KINDS, *REQUEST_KINDS]},
                "moveId": _nullable(UUID), "submittedAt": DATE_TIME}
ANSWER_MAX_ACCESSES = 200  # the newest; the whole list goes by post (a sealed message stays under 250 kB)
_ACCESS = _object({"at": _text(20), "who": _text(300), "office": _text(200), "procedure": _text(300),
                   "basis": _text(1000)})
# The answer to a disclosure request: the requester's own items (no My Number) and every access to them.
DISCLOSURE_ANSWER = _object({
    "record": _object({"name": ITEMS["name"], "name_kana": ITEMS["name_kana"], "birth_date": ITEMS["birth_date"],
                       "sex": ITEMS["sex"], "address": ITEMS["address"], "relationship": ITEMS["relationship"],
                       "honseki": ITEMS["honseki"], "hittosha": ITEMS["hittosha"]}),
    "accesses": {"type": "array", "maxItems": ANSWER_MAX_ACCESSES, "items": _ACCESS}})
_PERSON = ["juminhyo_code", "my_number", "name", "name_kana", "birth_date", "sex", "address", "householder_name",
           "relationship", "honseki", "hittosha", "move_date", "previous_address", "new_address"]
_BETWEEN_MUNICIPALITIES = [*_PERSON, "move_id", "move_signature", "card_serial", *CARD_ITEMS, *CERTIFICATE_EXTRA]
_DEPARTMENT = ["name", "name_kana", "birth_date", "sex", "address", "my_number", "household_number",
               "householder_name", "relationship", "change_reason", "change_date", "previous_address", "new_address"]
_DEPARTMENT_REQUIRED = ["name", "name_kana", "birth_date", "sex", "address", "change_reason", "change_date"]

SCHEMAS: dict[str, dict[str, Any]] = {
    # Any party → the sender of a message it applied (bridge.acks).
    ACK: _envelope("Acknowledgement", {"message_id": UUID}),
    # Portal → back office (portal.services.outbound → backoffice.services.intake). The resident's
    # signed JWS is the only content: what it signs is portal/schemas.py, checked by intake.
    APPLICATION_SUBMITTED: _envelope("A signed application for one municipality",
                                     {**_APPLICATION, "signedApplication": JWS}),
    APPLICATION_WITHDRAWN: _envelope("The resident's signed withdrawal of an application",
                                     {**_APPLICATION, "signedWithdrawal": JWS}),
    # Back office → portal (backoffice.services.cases → portal.services.status). A reason of the back office's
    # own is a code (bridge.reasons) that each side words in its reader's language, with ``reason`` null; a
    # clerk's typed reason is the text. ``reasonCode`` may be absent: a message an older back office sent
    # before this version, still in flight, carries its reason as text (drop the leniency in the next version).
    # A granted disclosure request (R20) carries its answer: the requester's own record and who accessed it.
    APPLICATION_STATUS: _envelope("Where an application stands", {
        "receiptNumber": RECEIPT_NUMBER, "status": {"enum": list(PORTAL_STATUSES)},
        "reason": _text(1000, nullable=True), "reasonCode": {"enum": [*reasons.CODES, None]},
        "answer": DISCLOSURE_ANSWER}, required=["receiptNumber", "status", "reason"]),
    # Back office → portal (backoffice.services.intake_pause → portal.services.status): a kind's intake paused or
    # resumed, so the portal tells its residents processing is delayed. No personal data, no reason.
    INTAKE_PAUSED: _envelope("An application kind's intake was paused or resumed", {
        "kind": {"enum": list(APPLICATION_KINDS)}, "paused": {"type": "boolean"}, "changedAt": DATE_TIME}),
    # Back office → portal (backoffice.services.certificates → portal.services.verification): no personal data.
    CERTIFICATE_ISSUED: _envelope("A certificate's verification code was issued", {
        "codeHash": {"type": "string", "pattern": r"^[0-9a-f]{64}$"}, "issuedOn": DATE, "status": {"const": "valid"}}),
    CERTIFICATE_REVOKED: _envelope("A certificate was revoked", {
        "codeHash": {"type": "string", "pattern": r"^[0-9a-f]{64}$"}, "revokedOn": DATE}),
    # Back office → back office or the stand-in (backoffice.services.moves, through provision.send).
    MOVEOUT_CERTIFICATE: _provision("転出証明書情報 (住基法第24条の2)", _BETWEEN_MUNICIPALITIES, _PERSON),
    MOVEIN_NOTICE: _provision("転入通知 (住基法第9条第1項)", _BETWEEN_MUNICIPALITIES,
                              ["juminhyo_code", "name", "birth_date", "move_date", "previous_address", "new_address"]),
    # Origin → destination: the 転出届 was cancelled (転出取消) before the 転入; the destination withdraws the
    # 転出証明書情報 it holds for the person and cancels the reservation that waits for it.
    # The items it may carry are the municipality recipients' (data/recipients.json); the origin sends four.
    MOVEOUT_CANCELLATION: _provision("転出取消の通知", _BETWEEN_MUNICIPALITIES,
                                     ["juminhyo_code", "name", "birth_date"]),
    # Back office → the prefecture server (moves, counter → bridge.peers.prefecture).
    IDENTITY_UPDATE: _provision("本人確認情報の更新 (住基法第30条の6)", [
        "juminhyo_code", "name", "birth_date", "sex", "address", "my_number", "change_reason", "change_date"],
        ["juminhyo_code", "name", "birth_date", "sex", "address", "my_number", "change_reason", "change_date"]),
    # Back office → J-LIS (bridge.peers.jlis.receiver).
    # J-LIS revokes a named certificate: the serial is never null here.
    CARD_REVOCATION: _provision("Revocation of a signature certificate", ["card_serial", "revocation_reason"],
                                ["card_serial", "revocation_reason"],
                                narrower={"card_serial": {"type": "string", "pattern": r"^[0-9]{1,64}$"}}),
    # Back office → the city's departments (moves → bridge.peers.departments).
    **{notice: _provision(f"庁内連携 notice ({notice.rsplit('.', 1)[1]})", _DEPARTMENT, _DEPARTMENT_REQUIRED)
       for notice in DEPT_NOTICES},
}

# Types defined outside this module (the test suite's own messages); see ``define``.
_defined: dict[str, dict[str, Any]] = {}
_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,49}$")


class MessageInvalid(ValueError):
    """A payload that is not what its message type defines; names the path and the keyword, never a value."""

    def __init__(self, message_type: str, path: str, keyword: str) -> None:
        super().__init__(f"{message_type}: {path} fails {keyword}")
        self.message_type = message_type
        self.path = path
        self.keyword = keyword

    @property
    def detail(self) -> str:
        """The text for a dead letter: where and which rule, no value."""
        return f"{self.path}: {self.keyword}"


def define(message_type: str, schema: dict[str, Any]) -> None:
    """Add a message type this module does not define (the test suite's); the same definition again is a no-op."""
    jsonschema.Draft202012Validator.check_schema(schema)
    if message_type in SCHEMAS or _defined.get(message_type, schema) != schema:
        raise ValueError(f"{message_type} is already defined")
    _defined[message_type] = schema
    _validator.cache_clear()


def types() -> frozenset[str]:
    """Every message type with a schema."""
    return frozenset(SCHEMAS) | frozenset(_defined)


def schema_for(message_type: str) -> dict[str, Any]:
    """The schema of ``message_type``; KeyError for a type nobody defined."""
    return SCHEMAS.get(message_type) or _defined[message_type]


def is_defined(message_type: str) -> bool:
    """Whether ``message_type`` has a schema."""
    return message_type in SCHEMAS or message_type in _defined


@lru_cache(maxsize=64)
def _validator(message_type: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema_for(message_type), format_checker=FORMATS)


def compile_all() -> None:
    """Build every type's validator now: a forking worker calls this in its parent, so no job builds one again."""
    for message_type in types():
        _validator(message_type)


def validate(message_type: str, payload: Any) -> None:
    """Raise MessageInvalid, naming the JSON path of the first error, unless ``payload`` fits ``message_type``."""
    if not is_defined(message_type):
        raise MessageInvalid(message_type, "$", "a defined message type")
    error = best_match(_validator(message_type).iter_errors(payload))
    if error is None:
        return
    path = error.json_path
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        # Name the field nobody defined, when its name is a plain word (it is the sender's, not a value).
        allowed = error.schema.get("properties", {})
        extra = sorted(k for k in error.instance if k not in allowed)
        if extra and all(isinstance(k, str) for k in extra) and _SAFE_NAME.match(extra[0]):
            path = f"{path}.{extra[0]}"
    elif error.validator == "required" and isinstance(error.instance, dict):
        missing = [k for k in error.validator_value if k not in error.instance]
        if missing:
            path = f"{path}.{missing[0]}"
    raise MessageInvalid(message_type, str(path), str(error.validator))
