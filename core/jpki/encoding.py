"""Strict decoders for client-supplied base64, base64url and JSON: one canonical spelling per value."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


def strict_b64decode(text: str) -> bytes:
    """Decode standard base64 with padding; refuse other alphabets, whitespace and non-canonical encodings."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise ValueError("not strict standard base64") from exc
    # b64decode tolerates non-zero padding bits; a second spelling of the same bytes is refused.
    if base64.b64encode(data).decode("ascii") != text:
        raise ValueError("not canonical base64")
    return data


def b64url_encode(data: bytes) -> str:
    """Encode base64url without padding, as JWS compact serialisation requires."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def strict_b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url (RFC 7515 §2); refuse padding, other alphabets and non-canonical encodings."""
    if not _B64URL.match(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url_encode(data) != text:
        raise ValueError("not canonical base64url")
    return data


class DuplicateMember(ValueError):
    """An object names the same member twice; ``key`` is the member."""

    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate member {key!r}")
        self.key = key


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # Two parsers may pick different copies of a duplicated member; refusing removes the ambiguity.
            raise DuplicateMember(key)
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json_loads(text: str | bytes) -> Any:
    """Parse JSON refusing duplicate object members, the non-standard NaN/Infinity constants, and deep nesting.

    Nesting deeper than the parser can recurse (``[[[[...]]]]``, a few kilobytes) is ValueError like any
    other malformed JSON, so callers that refuse ValueError refuse it too instead of failing on RecursionError.
    """
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc
