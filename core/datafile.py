"""Reviewed JSON data files (the service catalog, the lawful recipients): read strictly, every error names the file.

``json`` keeps the last of two equal keys silently; in a reviewed data file that would hide a mistake, so a
duplicated key is refused, as are NaN and Infinity.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.jpki.encoding import DuplicateMember, strict_json_loads


def load_json(path: Path, error: type[Exception], what: str) -> Any:
    """The document in ``path``; raise ``error`` naming the file (``what`` names it for a read failure)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from exc
    try:
        return strict_json_loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path.name}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    except DuplicateMember as exc:
        raise error(f"{path.name}: the key {exc.key!r} appears twice in one object") from exc
    except ValueError as exc:
        raise error(f"{path.name}: {exc}") from exc
