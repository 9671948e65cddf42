"""Provision (提供) and transfer (移転) of resident data, only to the recipients data/recipients.json names (R4).

The data file lists each recipient the law names, the bridge party it is, the legal basis, the
message types it may receive and the data items it may receive; it is under version control and
reviewed like code, and validated strictly when loaded. ``send`` takes the recipient from that file
only, strips every item not listed for it, and writes in the caller's transaction the sealed
outbox row, the provision record (提供記録) with its legal basis, and an operation-log row. Values
are never edited on the way (R13: what J-LIS gets is what the ledger gave); the record and the log
hold item names, never values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import has_request_context
from flask_login import current_user
from sqlalchemy.orm import Session

from backoffice.models import ProvisionRecord, Resident
from backoffice.services import audit
from bridge.binding import current_bridge
from bridge.messages import MessageInvalid
from core import clock
from core.config import ConfigError
from core.datafile import load_json
from core.envelope import MESSAGE_TYPE_PATTERN, UnknownParty, validate_party
from core.refusal import Refused

RECIPIENTS_PATH = Path(__file__).resolve().parent.parent.parent / "data" / "recipients.json"
LANGS = ("ja", "en")
PROVISION, TRANSFER = "provision", "transfer"
KINDS = (PROVISION, TRANSFER)
MY_NUMBER = "my_number"
MAX_REASON_LENGTH = 200
# Names of withheld items go into the record; a caller passing a huge dict must not bloat it.
MAX_WITHHELD_NAMES = 50
# The party of a recipient that is any municipality running this code: the caller names which one.
ANY_MUNICIPALITY = "muni:*"

_ID = re.compile(r"^[a-z][a-z0-9_]{0,30}(?::[a-z][a-z0-9_]{0,30})?$")
_ITEM = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
_FIELDS = ("id", "party", "name", "kind", "legal_basis", "my_number_basis", "source", "message_types", "items")
_REQUIRED = frozenset(_FIELDS) - {"my_number_basis"}


class RecipientsError(ValueError):
    """The recipients data file is missing or malformed; the message names the entry and the field."""


class ProvisionRefused(Refused, ValueError):
    """``send`` was asked for something the data file does not allow; ``field`` names the argument."""

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class Text:
    """A text in Japanese and English."""

    ja: str
    en: str


@dataclass(frozen=True, slots=True)
class Recipient:
    """One recipient of data/recipients.json."""

    id: str
    party: str
    name: Text
    kind: str
    legal_basis: Text
    my_number_basis: Text | None
    source: str
    message_types: tuple[str, ...]
    items: tuple[str, ...]

    def may_receive(self, message_type: str) -> bool:
        """Whether this recipient may be sent ``message_type``."""
        return message_type in self.message_types


@dataclass(frozen=True, slots=True)
class Recipients:
    """The item vocabulary and the recipients of the data file, by id in file order."""

    items: Mapping[str, Text]
    by_id: Mapping[str, Recipient]

    def get(self, recipient_id: str) -> Recipient | None:
        """The recipient with ``recipient_id``, or None."""
        return self.by_id.get(recipient_id)


def _text(where: str, name: str, value: Any) -> Text:
    if not isinstance(value, dict) or set(value) != set(LANGS):
        raise RecipientsError(f'{where}: field {name!r} must be an object with exactly the keys "ja" and "en"')
    for lang in LANGS:
        if not isinstance(value[lang], str) or not value[lang].strip():
            raise RecipientsError(f"{where}: field {name!r} must have a non-empty {lang!r} text")
    return Text(ja=value["ja"].strip(), en=value["en"].strip())


def _names(where: str, name: str, value: Any, *, pattern: re.Pattern[str], allowed: frozenset[str] | None = None,
           ) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and pattern.match(v) for v in value):
        raise RecipientsError(f"{where}: field {name!r} must be a non-empty list of lower-case names")
    if len(set(value)) != len(value):
        raise RecipientsError(f"{where}: field {name!r} lists a value twice")
    if allowed is not None and (unknown := sorted(set(value) - allowed)):
        raise RecipientsError(f"{where}: field {name!r} has unknown items {unknown}; the file's items are "
                              f"{sorted(allowed)}")
    return tuple(value)


def _parse(path: Path, index: int, raw: Any, items: frozenset[str]) -> Recipient:
    where = f"{path.name}: recipients[{index}]"
    if not isinstance(raw, dict):
        raise RecipientsError(f"{where}: must be an object, got {type(raw).__name__}")
    if isinstance(raw.get("id"), str):
        where += f" (id {raw['id']!r})"
    if unknown := sorted(set(raw) - set(_FIELDS)):
        raise RecipientsError(f"{where}: field {unknown[0]!r} is not a recipient field (fields are "
                              f"{', '.join(_FIELDS)})")
    if missing := sorted(_REQUIRED - set(raw)):
        raise RecipientsError(f"{where}: field {missing[0]!r} is missing")
    recipient_id = raw["id"]
    if not isinstance(recipient_id, str) or not _ID.match(recipient_id):
        raise RecipientsError(f"{where}: field 'id' must be a lower-case name such as dept:tax, got {recipient_id!r}")
    party = raw["party"]
    try:
        if party != ANY_MUNICIPALITY:
            validate_party(party)
    except ValueError:
        raise RecipientsError(f"{where}: field 'party' must be a bridge party such as peer:prefecture, "
                              f"got {party!r}") from None
    if not party.startswith(("peer:", "muni:")):
        raise RecipientsError(f"{where}: field 'party' must be a peer or a municipality, got {party!r}")
    kind = raw["kind"]
    if kind not in KINDS:
        raise RecipientsError(f"{where}: field 'kind' must be one of {KINDS}, got {kind!r}")
    # 移転 stays inside the city (its departments); everything else leaves it and is a 提供.
    if (kind == TRANSFER) != party.startswith("peer:dept:"):
        raise RecipientsError(f"{where}: field 'kind' must be {TRANSFER!r} exactly for the city's departments "
                              f"(peer:dept:*), {PROVISION!r} for every other party")
    source = raw["source"]
    if not isinstance(source, str) or not source.strip():
        raise RecipientsError(f"{where}: field 'source' must say where the provision is documented")
    listed = _names(where, "items", raw["items"], pattern=_ITEM, allowed=items)
    my_number_basis = None
    if "my_number_basis" in raw:
        my_number_basis = _text(where, "my_number_basis", raw["my_number_basis"])
    # The My Number goes only where a law allows it, and the file must say which law (R4).
    if MY_NUMBER in listed and my_number_basis is None:
        raise RecipientsError(f"{where}: field 'my_number_basis' must name the law that allows the My Number, "
                              "since 'items' lists my_number")
    if MY_NUMBER not in listed and my_number_basis is not None:
        raise RecipientsError(f"{where}: field 'my_number_basis' is given but 'items' does not list my_number")
    return Recipient(
        id=recipient_id, party=party, name=_text(where, "name", raw["name"]), kind=kind,
        legal_basis=_text(where, "legal_basis", raw["legal_basis"]), my_number_basis=my_number_basis,
        source=source.strip(),
        message_types=_names(where, "message_types", raw["message_types"], pattern=MESSAGE_TYPE_PATTERN),
        items=listed,
    )


@lru_cache(maxsize=4)
def load_recipients(path: Path = RECIPIENTS_PATH) -> Recipients:
    """Read and validate the recipients data file (once per path); raise RecipientsError naming what is wrong."""
    document = load_json(path, RecipientsError, "the recipients file")
    if not isinstance(document, dict) or set(document) != {"items", "recipients"}:
        raise RecipientsError(f'{path.name}: must be an object with the keys "items" and "recipients"')
    raw_items = document["items"]
    if not isinstance(raw_items, dict) or not raw_items:
        raise RecipientsError(f'{path.name}: "items" must be an object naming each data item')
    items: dict[str, Text] = {}
    for name, label in raw_items.items():
        if not _ITEM.match(name):
            raise RecipientsError(f"{path.name}: items: {name!r} is not a lower-case item name such as birth_date")
        items[name] = _text(f"{path.name}: items", name, label)
    if not isinstance(document["recipients"], list) or not document["recipients"]:
        raise RecipientsError(f'{path.name}: "recipients" must be a non-empty list')
    by_id: dict[str, Recipient] = {}
    parties: dict[str, str] = {}
    for index, raw in enumerate(document["recipients"]):
        recipient = _parse(path, index, raw, frozenset(items))
        if recipient.id in by_id:
            raise RecipientsError(f"{path.name}: recipients[{index}]: field 'id' {recipient.id!r} is used twice")
        if recipient.party in parties:
            raise RecipientsError(f"{path.name}: recipients[{index}] (id {recipient.id!r}): field 'party' "
                                  f"{recipient.party!r} is already the party of {parties[recipient.party]!r}")
        by_id[recipient.id] = recipient
        parties[recipient.party] = recipient.id
    return Recipients(items=items, by_id=by_id)


def send(
    session: Session,
    *,
    recipient_id: str,
    message_type: str,
    data: Mapping[str, Any],
    reason: str,
    resident_id: int | None,
    actor: str | None = None,
    party: str | None = None,
) -> ProvisionRecord:
    """Send the items of ``data`` that ``recipient_id`` may receive, and record the provision (flushes only).

    Refuses with ProvisionRefused, before anything is written, a recipient the data file does not
    name, a message type not listed for it, data holding none of its items, a value that is not a
    JSON scalar or not in the form the type's schema (``bridge.messages``) gives the item, an empty
    reason or an unknown resident. Items not listed for the recipient are
    withheld: their names go to the record's detail, never into the message. ``party`` names the
    municipality (``muni:<code>``, never this one) when the recipient is any municipality running
    this code (``muni:*`` in the file), and must be left out otherwise.
    """
    recipient = _recipient(recipient_id, message_type)
    recipient_party = _party(recipient, party)
    if not isinstance(data, Mapping) or not all(isinstance(name, str) for name in data):
        raise ProvisionRefused("data", "must be a mapping of item names to values")
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason or len(reason) > MAX_REASON_LENGTH:
        raise ProvisionRefused("reason", f"must say why the data is sent, in 1 to {MAX_REASON_LENGTH} characters")
    if resident_id is not None and (isinstance(resident_id, bool) or not isinstance(resident_id, int)
                                    or session.get(Resident, resident_id) is None):
        raise ProvisionRefused("resident_id", f"no resident record {resident_id!r}")
    # Only what the file lists, in the file's order, values untouched (R13).
    items = {name: data[name] for name in recipient.items if name in data}
    if not items:
        raise ProvisionRefused("data", f"holds none of the items {recipient.id} may receive")
    for name, value in items.items():
        if value is not None and (isinstance(value, float) or not isinstance(value, str | int | bool)):
            raise ProvisionRefused(f"data.{name}", "must be text, a whole number, true/false or null")
    withheld = sorted(name for name in data if name not in items)

    bridge = current_bridge()
    if recipient_party == bridge.party:
        raise ProvisionRefused("party", "a municipality does not send to itself")
    try:
        # Validated against the type's schema in bridge.messages: an item of the wrong form raises here.
        row = bridge.send(session, message_type=message_type, recipient=recipient_party, payload={"items": items})
    except MessageInvalid as invalid:
        field = "data" + invalid.path.removeprefix("$.items")
        raise ProvisionRefused(field, f"is not what {message_type} carries ({invalid.keyword})") from None
    except UnknownParty:
        raise ConfigError(f"no public key is registered for {recipient_party}: register it with "
                          f"`flask keys import {recipient_party} FILE`") from None
    created_by = _actor(actor)
    record = ProvisionRecord(
        recipient_id=recipient.id, message_type=message_type, message_id=row.id, resident_id=resident_id,
        items_sent=json.dumps(list(items), ensure_ascii=False), legal_basis=recipient.legal_basis.ja, reason=reason,
        detail=json.dumps({"party": recipient_party, "queue": row.queue, "kind": recipient.kind,
                           "withheld": _capped(withheld)}, ensure_ascii=False),
        created_at=clock.utcnow(), created_by=created_by,
    )
    session.add(record)
    session.flush()
    audit.record("provision.send", target_type="provision", target_id=record.id, actor=actor,
                 detail={"recipient": recipient.id, "party": recipient_party, "kind": recipient.kind,
                         "message_type": message_type, "message_id": row.id, "resident_id": resident_id,
                         "items_sent": list(items), "withheld": _capped(withheld),
                         "legal_basis": recipient.legal_basis.ja})
    return record


def _recipient(recipient_id: str, message_type: str) -> Recipient:
    recipient = load_recipients().get(recipient_id) if isinstance(recipient_id, str) else None
    if recipient is None:
        raise ProvisionRefused("recipient_id", f"{str(recipient_id)[:50]!r} is not a recipient of the data file")
    if not isinstance(message_type, str) or not recipient.may_receive(message_type):
        raise ProvisionRefused("message_type", f"{recipient.id} may not be sent {str(message_type)[:50]!r}; it "
                               f"takes {', '.join(recipient.message_types)}")
    return recipient


def _party(recipient: Recipient, party: str | None) -> str:
    if recipient.party != ANY_MUNICIPALITY:
        if party is not None and party != recipient.party:
            raise ProvisionRefused("party", f"{recipient.id} is {recipient.party}; no other party may be named")
        return recipient.party
    if not isinstance(party, str) or not party.startswith("muni:"):
        raise ProvisionRefused("party", f"{recipient.id} needs the municipality named, as muni:<code>")
    try:
        return validate_party(party)
    except ValueError:
        raise ProvisionRefused("party", f"{party[:50]!r} is not a municipality of the bridge") from None


def _capped(names: list[str]) -> list[str]:
    capped = [name[:50] for name in names[:MAX_WITHHELD_NAMES]]
    if len(names) > MAX_WITHHELD_NAMES:
        capped.append(f"... and {len(names) - MAX_WITHHELD_NAMES} more")
    return capped


def _actor(actor: str | None) -> str:
    """Who sends: the given actor, the signed-in member of staff, or the system (a job or a command)."""
    if actor:
        return actor[:50]
    if has_request_context() and current_user.is_authenticated:
        return str(current_user.login_id)[:50]
    return "system"
