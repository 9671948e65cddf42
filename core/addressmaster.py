"""The address master (町字 list per municipality) and the list of municipalities, read from data/.

data/address/<code>.csv lists the 町字 of one municipality with codes assigned here (the
municipality code and a 4-digit running number; append new 町字, never renumber). Names, readings
and postal codes come from Japan Post's postal code data (KEN_ALL); areas divided into 丁目 are
listed as 一丁目 and 二丁目 only, and a few readings where KEN_ALL writes small kana large
(ジッソウジ, フッパリチョウ, ニッペイ) were corrected by hand. Before production use, replace the
file with the city's own 町字 master (or the アドレス・ベース・レジストリ 町字マスター).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from core.checkdigits import is_valid_local_government_code

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


class AddressMasterError(LookupError):
    """Raised when the address master of a municipality is missing or malformed."""


@dataclass(frozen=True, slots=True)
class Machiaza:
    """One 町字 of the address master: its stable code, name, kana reading and postal code."""

    code: str
    name: str
    kana: str
    postal_code: str


@dataclass(frozen=True, slots=True)
class Municipality:
    """One municipality: 全国地方公共団体コード (6 digits with check digit), prefecture, name, kana."""

    code: str
    prefecture: str
    name: str
    kana: str


def _read_rows(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    # utf-8-sig tolerates a BOM, which spreadsheet programs like to add when the file is edited.
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != columns:
            raise AddressMasterError(f"{path} must have the header {','.join(columns)}, got {reader.fieldnames}")
        rows = []
        for line, row in enumerate(reader, start=2):
            if any(not (row.get(c) or "").strip() for c in columns):
                raise AddressMasterError(f"{path}:{line}: every column must be filled in")
            rows.append({c: row[c].strip() for c in columns})
        return rows


def _check_municipality_code(municipality_code: str) -> None:
    # The code becomes part of a file path, so nothing but a valid 6-digit code may pass.
    if not is_valid_local_government_code(municipality_code):
        raise AddressMasterError(f"{municipality_code!r} is not a valid 6-digit local government code")


@lru_cache(maxsize=64)
def load_machiaza(municipality_code: str) -> tuple[Machiaza, ...]:
    """Return the 町字 of a municipality from data/address/<code>.csv, in file order."""
    _check_municipality_code(municipality_code)
    path = DATA_DIR / "address" / f"{municipality_code}.csv"
    if not path.is_file():
        raise AddressMasterError(f"no address master for municipality {municipality_code}: {path} does not exist")
    rows = _read_rows(path, ("code", "name", "kana", "postal_code"))
    if not rows:
        raise AddressMasterError(f"{path} lists no 町字")
    seen: set[str] = set()
    result = []
    for row in rows:
        code = row["code"]
        if code in seen:
            raise AddressMasterError(f"{path}: 町字 code {code} appears twice")
        if not code.startswith(municipality_code):
            raise AddressMasterError(f"{path}: 町字 code {code} does not start with {municipality_code}")
        if not (len(row["postal_code"]) == 7 and row["postal_code"].isascii() and row["postal_code"].isdigit()):
            raise AddressMasterError(f"{path}: postal code {row['postal_code']!r} of {code} is not 7 digits")
        seen.add(code)
        result.append(Machiaza(code=code, name=row["name"], kana=row["kana"], postal_code=row["postal_code"]))
    return tuple(result)


@lru_cache(maxsize=64)
def _machiaza_index(municipality_code: str) -> dict[str, Machiaza]:
    return {m.code: m for m in load_machiaza(municipality_code)}


def machiaza_by_code(municipality_code: str, code: str) -> Machiaza | None:
    """Return the 町字 with ``code`` in the municipality's master, or None if there is none."""
    return _machiaza_index(municipality_code).get(code)


@lru_cache(maxsize=1)
def load_municipalities() -> tuple[Municipality, ...]:
    """Return every municipality listed in data/municipalities.csv, in file order."""
    path = DATA_DIR / "municipalities.csv"
    if not path.is_file():
        raise AddressMasterError(f"{path} does not exist")
    result = []
    seen: set[str] = set()
    for row in _read_rows(path, ("code", "prefecture", "name", "kana")):
        _check_municipality_code(row["code"])
        if row["code"] in seen:
            raise AddressMasterError(f"{path}: municipality code {row['code']} appears twice")
        seen.add(row["code"])
        result.append(Municipality(code=row["code"], prefecture=row["prefecture"], name=row["name"], kana=row["kana"]))
    return tuple(result)


def municipality_by_code(code: str) -> Municipality | None:
    """Return the municipality with the 6-digit ``code``, or None if it is not listed."""
    for municipality in load_municipalities():
        if municipality.code == code:
            return municipality
    return None
