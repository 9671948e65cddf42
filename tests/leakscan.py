"""Leak scan: applicants' names, addresses and identity numbers in places that must hold none of them.

Redis keys and values (rq job hashes and the ``exc_info`` of failed jobs, decompressed), outbox
and dead-letter rows, and log files may hold ids, types, reasons and ciphertext only. The scanner
looks for every name and address the test data registered (``REGISTRY``: the factories and the
card issuer add to it), for every 住民票コード registered, and for any 12-digit number whose check
digit is that of a My Number. Text is searched as written, NFKC-folded (full-width digits and
spaces), with JSON ``\\uXXXX`` escapes and URL escapes undone, and inside base64url segments (a
signed JWS quoted in a log would carry its payload that way).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
import urllib.parse
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.checkdigits import is_valid_my_number

# Digits standing alone: not inside a word, a hex id, a UUID or a base64 string.
_TWELVE = re.compile(r"(?<![0-9A-Za-z_\-])\d{12}(?![0-9A-Za-z_\-])")
_GROUPED = re.compile(r"(?<![0-9A-Za-z_\-])(\d{4})[ -](\d{4})[ -](\d{4})(?![0-9A-Za-z_\-])")
_UNICODE_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_BASE64URL = re.compile(r"[A-Za-z0-9_\-+/]{16,}={0,2}")
_PLACE = re.compile(r"^.{2,3}?[都道府県](?:.+?[市区町村])?")


@dataclass(frozen=True)
class Finding:
    """One piece of personal data found somewhere it must not be (the value itself masked in the report)."""

    where: str
    kind: str
    masked: str

    def __str__(self) -> str:
        return f"{self.where}: {self.kind} {self.masked}"


def _mask(value: str) -> str:
    return value[:1] + "*" * (len(value) - 1)


@dataclass
class Registry:
    """The names, addresses and 住民票コード of the test data, which must never appear in plaintext."""

    names: set[str] = field(default_factory=set)
    addresses: set[str] = field(default_factory=set)
    codes: set[str] = field(default_factory=set)

    def add(self, *, names: Iterable[str | None] = (), addresses: Iterable[str | None] = (),
            codes: Iterable[str | None] = ()) -> None:
        """Register a person's names (kanji, kana), addresses and 住民票コード."""
        for name in names:
            if name and len(re.sub(r"\s", "", _fold(name))) >= 2:
                self.names.add(_fold(name))
        for address in addresses:
            if address:
                folded = _fold(address)
                self.addresses.add(folded)
                street = _PLACE.sub("", folded)
                if street != folded and len(street) >= 4 and re.search(r"\d", street):
                    self.addresses.add(street)  # the part that identifies a household
        self.codes.update(c for c in codes if c)

    def update(self, other: Registry) -> None:
        """Add everything ``other`` holds."""
        self.names |= other.names
        self.addresses |= other.addresses
        self.codes |= other.codes

    def dump(self, path: Path) -> None:
        """Write the registry as JSON (one per test process, merged at the end of the run)."""
        path.write_text(json.dumps({"names": sorted(self.names), "addresses": sorted(self.addresses),
                                    "codes": sorted(self.codes)}, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Registry:
        """A registry written by ``dump``."""
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(set(data["names"]), set(data["addresses"]), set(data["codes"]))

    def patterns(self) -> list[tuple[str, re.Pattern[str]]]:
        """One alternation per kind; a space in a name or address matches any spacing or none."""
        compiled = []
        for kind, values in (("name", self.names), ("address", self.addresses)):
            if values:
                compiled.append((kind, re.compile(_trie_pattern(values))))
        if self.codes:
            compiled.append(("juminhyo_code", re.compile(r"(?<!\d)(?:" + _trie_pattern(self.codes) + r")(?!\d)")))
        return compiled


REGISTRY = Registry()
_SPACE = " "  # in a trie, a break between words: matches any spacing or none


def _trie_pattern(values: Iterable[str]) -> str:
    """One regular expression for many values, as a trie: shared prefixes are tried once, and the longest wins.

    A plain alternation of a few thousand names (the demo ledger) costs a try of each at every
    position of the text; the trie costs a step per character that could still start a match.
    """
    trie: dict[str, Any] = {}
    for value in values:
        node = trie
        for part_index, part in enumerate(value.split()):
            if part_index:
                node = node.setdefault(_SPACE, {})
            for char in part:
                node = node.setdefault(char, {})
        node[""] = {}  # a value ends here

    def build(node: dict[str, Any]) -> str:
        ends = "" in node
        branches = [(r"\s*" if key == _SPACE else re.escape(key)) + build(child)
                    for key, child in sorted(node.items()) if key]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if ends else body  # greedy: the longer value when one is a prefix of another

    return build(trie)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _variants(text: str) -> Iterator[str]:
    """The text as written and decoded in the ways personal data could hide in it."""
    folded = _fold(text)
    yield folded
    if "\\u" in folded:
        yield _UNICODE_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), folded)
    if "%" in folded:
        yield urllib.parse.unquote(folded)
    for segment in _BASE64URL.findall(text):
        try:
            decoded = base64.urlsafe_b64decode(segment.replace("+", "-").replace("/", "_").rstrip("=")
                                               + "=" * (-len(segment.rstrip("=")) % 4))
            yield _fold(decoded.decode("utf-8"))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            continue


class Scanner:
    """Finds registered names, addresses and 住民票コード, and check-digit-valid My Numbers, in text."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry or REGISTRY
        self._patterns = self.registry.patterns()

    def text(self, text: str, where: str) -> list[Finding]:
        """Every finding in ``text`` (one per kind and value)."""
        found: dict[tuple[str, str], Finding] = {}
        for variant in _variants(text):
            for kind, pattern in self._patterns:
                for match in pattern.finditer(variant):
                    found.setdefault((kind, match.group(0)), Finding(where, kind, _mask(match.group(0))))
            for match in _TWELVE.finditer(variant):
                if is_valid_my_number(match.group(0)):
                    found.setdefault(("my_number", match.group(0)), Finding(where, "my_number", _mask(match.group(0))))
            for match in _GROUPED.finditer(variant):
                number = "".join(match.groups())
                if is_valid_my_number(number):
                    found.setdefault(("my_number", number), Finding(where, "my_number", _mask(number)))
        return list(found.values())

    def bytes(self, value: bytes, where: str) -> list[Finding]:
        """Scan raw bytes, and what they hold if they are zlib-compressed (rq's job data and exc_info)."""
        findings = self.text(value.decode("utf-8", errors="replace"), where)
        try:
            findings += self.text(zlib.decompress(value).decode("utf-8", errors="replace"), f"{where} (zlib)")
        except zlib.error:
            pass
        return findings

    def redis(self, client: Any, where: str = "redis") -> list[Finding]:
        """Every key name and value of every type in the Redis database ``client`` points at."""
        findings: list[Finding] = []
        for key in client.scan_iter(count=1000):
            name = key.decode("utf-8", errors="replace") if isinstance(key, bytes) else str(key)
            place = f"{where} key {name}"
            findings += self.text(name, place)
            kind = client.type(key)
            kind = kind.decode() if isinstance(kind, bytes) else kind
            values: list[Any] = []
            if kind == "string":
                values = [client.get(key)]
            elif kind == "hash":
                for field_name, value in client.hgetall(key).items():
                    values += [field_name, value]
            elif kind == "list":
                values = client.lrange(key, 0, -1)
            elif kind == "set":
                values = list(client.smembers(key))
            elif kind == "zset":
                values = client.zrange(key, 0, -1)
            elif kind == "stream":
                for _id, entry in client.xrange(key):
                    for field_name, value in entry.items():
                        values += [field_name, value]
            for value in values:
                if value is not None:
                    findings += self.bytes(value if isinstance(value, bytes) else str(value).encode(), place)
        return findings

    def rows(self, rows: Iterable[Any], where: str) -> list[Finding]:
        """Every column of every row (as text)."""
        findings: list[Finding] = []
        for row in rows:
            findings += self.text(" | ".join("" if v is None else str(v) for v in row), where)
        return findings

    def database(self, url: str, where: str, tables: Iterable[str] = ("outbox", "dead_letter")) -> list[Finding]:
        """Every row of the bridge tables of a database another process wrote (those it lacks are skipped)."""
        from sqlalchemy import create_engine, inspect, text

        engine = create_engine(url)
        findings: list[Finding] = []
        try:
            with engine.connect() as conn:
                present = set(inspect(conn).get_table_names())
                for table in tables:
                    if table in present:
                        findings += self.rows(conn.execute(text(f"SELECT * FROM {table}")), f"{where}.{table}")
        finally:
            engine.dispose()
        return findings

    def file(self, path: Path) -> list[Finding]:
        """A log file, line by line (each finding names the file and the line number)."""
        findings: list[Finding] = []
        with path.open(encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                findings += self.text(line, f"{path.name}:{number}")
        return findings


def register_ledger(url: str, registry: Registry | None = None) -> int:
    """Register every resident of a back-office database, e.g. one ``flask seed``/``demo`` filled in another process.

    Names (kanji, kana, 通称, alphabet, 筆頭者, 世帯主), the address (町字 + 番地, with 方書 and without),
    the other addresses on the record that name a lot, and the 住民票コード. Returns the residents read.
    """
    from sqlalchemy import create_engine, text

    from core.addressmaster import load_machiaza

    registry = REGISTRY if registry is None else registry
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            residents = list(conn.execute(text(
                "SELECT name, name_kana, tsusho, alphabet_name, hittosha, machiaza_code, banchi, katagaki, honseki, "
                "previous_address, planned_moveout_address, confirmed_moveout_address, juminhyo_code FROM resident")))
            householders = [r[0] for r in conn.execute(text("SELECT householder_name FROM household"))]
    finally:
        engine.dispose()
    machiaza: dict[str, str] = {}
    for code in {r.machiaza_code[:6] for r in residents}:
        machiaza.update((m.code, m.name) for m in load_machiaza(code))
    for r in residents:
        street = machiaza.get(r.machiaza_code, "") + r.banchi
        others = (r.honseki, r.previous_address, r.planned_moveout_address, r.confirmed_moveout_address)
        registry.add(names=[r.name, r.name_kana, r.tsusho, r.alphabet_name, r.hittosha],
                     addresses=[street, street + (r.katagaki or ""),
                                *(a for a in others if a and re.search(r"\d", _fold(a)))],
                     codes=[r.juminhyo_code])
    registry.add(names=householders)
    return len(residents)


def report(findings: list[Finding], limit: int = 50) -> str:
    """A readable report: what was found where (values masked)."""
    lines = [str(f) for f in findings[:limit]]
    if len(findings) > limit:
        lines.append(f"... and {len(findings) - limit} more")
    return "personal data in plaintext where only ids and ciphertext may be:\n  " + "\n  ".join(lines)
