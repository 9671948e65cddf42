"""The service catalog: the procedures residents can look up, loaded once from data/services.json and searched.

The data file is under version control and reviewed like code; it is validated strictly when it is
loaded, so a typo in a field name or a sensitive case marked as online stops the portal from starting
instead of reaching a resident.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import current_app

from core.datafile import load_json
from core.textfold import fold

CATALOG_PATH = Path(__file__).resolve().parent.parent.parent / "data" / "services.json"
LANGS = ("ja", "en")
# Everything requested through the certificate form is a certificate, so CERTIFICATE_FEE_YEN sets its fee.
CERTIFICATE_FORM = "/apply/certificate"
MAX_QUERY_LENGTH = 100

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# Only paths on the portal itself: a data file must never send residents to another site.
_FORM_PATH = re.compile(r"^/[a-z0-9][a-z0-9/_-]*$")
_FIELDS = ("id", "title", "summary", "category", "life_events", "who_may_apply", "what_to_bring", "fee_yen",
           "legal_basis", "online", "form", "sensitive", "keywords")


class CatalogError(ValueError):
    """Raised when the catalog data file is missing or malformed; the message names the entry and field."""


@dataclass(frozen=True, slots=True)
class Text:
    """A text in Japanese and English."""

    ja: str
    en: str

    def in_lang(self, lang: str) -> str:
        """The text in ``lang`` ("ja" or "en"); anything else gets Japanese, the service's first language."""
        return self.en if lang == "en" else self.ja


@dataclass(frozen=True, slots=True)
class Label:
    """A category or life event: its code (used in URLs and the API), its label and extra search words."""

    code: str
    label: Text
    keywords: tuple[str, ...] = ()


CATEGORIES: tuple[Label, ...] = (
    Label("resident_register", Text("住民票・戸籍の届出", "Resident record and family register")),
    Label("health_insurance", Text("健康保険・医療", "Health insurance and medical care")),
    Label("pension", Text("年金", "Pension")),
    Label("child", Text("子ども・子育て", "Children and childcare")),
    Label("elderly_care", Text("介護・高齢者", "Long-term care and older people")),
    Label("seal", Text("印鑑登録", "Seal registration")),
    Label("school", Text("学校", "School")),
    Label("my_number_card", Text("マイナンバーカード", "My Number Card")),
    Label("tax", Text("税金", "Tax")),
    Label("daily_life", Text("暮らし（水道・ペットなど）", "Daily life (water, pets and more)")),
)

LIFE_EVENTS: tuple[Label, ...] = (
    Label("moving", Text("引越し", "Moving home"), ("ひっこし", "引っ越し", "引越", "move", "moving")),
    Label("birth", Text("出生", "Having a baby"), ("しゅっせい", "出産", "しゅっさん", "誕生", "birth", "baby")),
    Label("marriage", Text("結婚", "Getting married"), ("けっこん", "婚姻", "こんいん", "marriage", "wedding")),
    Label("divorce", Text("離婚", "Divorce"), ("りこん",)),
    Label("death", Text("おくやみ（死亡）", "When someone dies"), ("しぼう", "死亡", "death", "bereavement")),
    Label("childcare", Text("子育て", "Bringing up children"), ("こそだて", "子ども", "こども", "children")),
    Label("elderly", Text("高齢者・介護", "Older people"), ("こうれいしゃ", "介護", "かいご", "elderly")),
)

_CATEGORY_CODES = frozenset(c.code for c in CATEGORIES)
_LIFE_EVENTS_BY_CODE = {e.code: e for e in LIFE_EVENTS}


@dataclass(frozen=True, slots=True)
class Service:
    """One procedure of the catalog, as the data file describes it."""

    id: str
    title: Text
    summary: Text
    category: str
    life_events: tuple[str, ...]
    who_may_apply: Text
    what_to_bring: Text
    fee_yen: int | None
    legal_basis: Text
    online: bool
    form: str | None
    sensitive: bool
    keywords: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Folded:
    """The folded texts a search looks in, computed once at load so a search only compares strings."""

    titles: Mapping[str, str]  # by language
    named: tuple[str, ...]  # both titles and the keywords
    other: tuple[str, ...]  # both summaries and the labels of the service's life events

    @classmethod
    def of(cls, service: Service) -> _Folded:
        titles = {lang: fold(service.title.in_lang(lang)) for lang in LANGS}
        events = (w for code in service.life_events for w in _label_words(_LIFE_EVENTS_BY_CODE[code]))
        return cls(titles=titles, named=(*titles.values(), *(fold(k) for k in service.keywords)),
                   other=(fold(service.summary.ja), fold(service.summary.en), *(fold(w) for w in events)))


@dataclass(frozen=True, slots=True)
class Catalog:
    """All services of the data file, in file order, an index by id and their folded search texts."""

    services: tuple[Service, ...]
    by_id: Mapping[str, Service]
    folded: Mapping[str, _Folded]


class _Entry:
    """Reads the fields of one raw entry, naming the entry and the field in every error."""

    def __init__(self, path: Path, index: int, raw: Any) -> None:
        self.where = f"{path.name}: services[{index}]"
        if not isinstance(raw, dict):
            raise CatalogError(f"{self.where}: must be an object, got {type(raw).__name__}")
        self.raw = raw
        if isinstance(raw.get("id"), str):
            self.where += f" (id {raw['id']!r})"

    def fail(self, name: str, problem: str) -> CatalogError:
        return CatalogError(f"{self.where}: field {name!r} {problem}")

    def value(self, name: str) -> Any:
        if name not in self.raw:
            raise self.fail(name, "is missing")
        return self.raw[name]

    def text(self, name: str) -> Text:
        value = self.value(name)
        if not isinstance(value, dict) or set(value) != set(LANGS):
            raise self.fail(name, 'must be an object with exactly the keys "ja" and "en"')
        for lang in LANGS:
            if not isinstance(value[lang], str) or not value[lang].strip():
                raise self.fail(name, f"must have a non-empty {lang!r} text")
        return Text(ja=value["ja"].strip(), en=value["en"].strip())

    def boolean(self, name: str) -> bool:
        value = self.value(name)
        if not isinstance(value, bool):
            raise self.fail(name, f"must be true or false, got {value!r}")
        return value

    def strings(self, name: str, *, allowed: frozenset[str] | None = None) -> tuple[str, ...]:
        value = self.value(name)
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(name, "must be a list of non-empty texts")
        if len(set(value)) != len(value):
            raise self.fail(name, "lists a value twice")
        if allowed is not None and (unknown := sorted(set(value) - allowed)):
            raise self.fail(name, f"has unknown values {unknown}; allowed: {sorted(allowed)}")
        return tuple(v.strip() for v in value)


def _parse(path: Path, index: int, raw: Any) -> Service:
    entry = _Entry(path, index, raw)
    unknown = sorted(set(entry.raw) - set(_FIELDS))
    if unknown:
        raise entry.fail(unknown[0], f"is not a catalog field (fields are {', '.join(_FIELDS)})")
    service_id = entry.value("id")
    if not isinstance(service_id, str) or not _SLUG.match(service_id):
        raise entry.fail("id", f"must be a slug of lower-case letters, digits and hyphens, got {service_id!r}")
    category = entry.value("category")
    if category not in _CATEGORY_CODES:
        raise entry.fail("category", f"must be one of {sorted(_CATEGORY_CODES)}, got {category!r}")
    fee = entry.value("fee_yen")
    if fee is not None and (isinstance(fee, bool) or not isinstance(fee, int) or fee < 0):
        raise entry.fail("fee_yen", f"must be a whole number of yen (0 or more) or null, got {fee!r}")
    online, sensitive, form = entry.boolean("online"), entry.boolean("sensitive"), entry.value("form")
    if form is not None and (not isinstance(form, str) or not _FORM_PATH.match(form)):
        raise entry.fail("form", f"must be a path on the portal such as /apply/move, or null, got {form!r}")
    if online and form is None:
        raise entry.fail("form", "must name the online form when online is true")
    if not online and form is not None:
        raise entry.fail("form", "must be null when online is false")
    if sensitive and online:
        # A clerk must always decide these cases (DESIGN.md); an online form would bypass that conversation.
        raise entry.fail("online", "must be false for a sensitive procedure")
    return Service(
        id=service_id, title=entry.text("title"), summary=entry.text("summary"), category=category,
        life_events=entry.strings("life_events", allowed=frozenset(_LIFE_EVENTS_BY_CODE)),
        who_may_apply=entry.text("who_may_apply"), what_to_bring=entry.text("what_to_bring"), fee_yen=fee,
        legal_basis=entry.text("legal_basis"), online=online, form=form, sensitive=sensitive,
        keywords=entry.strings("keywords"),
    )


def _label_words(label: Label) -> tuple[str, ...]:
    return (label.label.ja, label.label.en, *label.keywords)


@lru_cache(maxsize=4)
def load_catalog(path: Path = CATALOG_PATH) -> Catalog:
    """Read and validate the catalog data file (once per path); raise CatalogError naming what is wrong."""
    document = load_json(path, CatalogError, "the service catalog")
    if not isinstance(document, dict) or set(document) != {"services"} or not isinstance(document["services"], list):
        raise CatalogError(f'{path.name}: must be an object with one key, "services", holding a list')
    services = tuple(_parse(path, index, raw) for index, raw in enumerate(document["services"]))
    if not services:
        raise CatalogError(f"{path.name}: lists no services")
    by_id: dict[str, Service] = {}
    for index, service in enumerate(services):
        if service.id in by_id:
            raise CatalogError(f"{path.name}: services[{index}]: field 'id' {service.id!r} is used twice")
        by_id[service.id] = service
    return Catalog(services=services, by_id=by_id, folded={s.id: _Folded.of(s) for s in services})


def _check_lang(lang: str) -> None:
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}, got {lang!r}")


def all_services() -> tuple[Service, ...]:
    """Every service of the catalog, in file order."""
    return load_catalog().services


def get(service_id: str) -> Service | None:
    """The service with ``service_id``, or None if the catalog has none."""
    return load_catalog().by_id.get(service_id)


def categories() -> tuple[Label, ...]:
    """The categories, with labels in Japanese and English, in display order."""
    return CATEGORIES


def life_events() -> tuple[Label, ...]:
    """The life events (引越し, 出生, …), with labels in Japanese and English, in display order."""
    return LIFE_EVENTS


def category(code: str) -> Label | None:
    """The category with ``code``, or None."""
    return next((c for c in CATEGORIES if c.code == code), None)


def life_event(code: str) -> Label | None:
    """The life event with ``code``, or None."""
    return _LIFE_EVENTS_BY_CODE.get(code)


def is_category(code: str) -> bool:
    """True if ``code`` names a category."""
    return code in _CATEGORY_CODES


def is_life_event(code: str) -> bool:
    """True if ``code`` names a life event."""
    return code in _LIFE_EVENTS_BY_CODE


def search_terms(q: str) -> list[str]:
    """The folded words of a query; ordinary and full-width spaces both separate words."""
    return [term for term in (fold(word) for word in q.split()) if term]


def _rank(folded: _Folded, terms: list[str], lang: str) -> int | None:
    """0 for a title match in ``lang``, 1 for a match in titles and keywords, 2 for any match, None for none."""
    if all(term in folded.titles[lang] for term in terms):
        return 0
    if all(any(term in text for text in folded.named) for term in terms):
        return 1
    if all(any(term in text for text in (*folded.named, *folded.other)) for term in terms):
        return 2
    return None


def search(q: str, *, category: str | None = None, life_event: str | None = None, lang: str = "ja") -> list[Service]:
    """Services matching every word of ``q`` (folded) and the filters; title matches in ``lang`` come first.

    Words are looked for in titles, summaries and keywords in both languages and in the labels of the
    service's life events, so 「てんしゅつ」, 「ﾃﾝｼｭﾂ」, 「転出」 and "move-out" all find 転出届. An empty
    query lists every service that passes the filters. Unknown filters raise ValueError.
    """
    _check_lang(lang)
    if category is not None and not is_category(category):
        raise ValueError(f"unknown category {category!r}")
    if life_event is not None and not is_life_event(life_event):
        raise ValueError(f"unknown life event {life_event!r}")
    terms = search_terms(q)
    loaded = load_catalog()
    ranked: list[tuple[int, int, Service]] = []
    for position, service in enumerate(loaded.services):
        if category is not None and service.category != category:
            continue
        if life_event is not None and life_event not in service.life_events:
            continue
        rank = _rank(loaded.folded[service.id], terms, lang) if terms else 0
        if rank is not None:
            ranked.append((rank, position, service))
    return [service for _, _, service in sorted(ranked, key=lambda r: (r[0], r[1]))]


def _configured_certificate_fee(municipality_code: str) -> int | None:
    configured = current_app.config.get("CERTIFICATE_FEE_YEN")
    if isinstance(configured, Mapping):
        configured = configured.get(municipality_code)
    if configured is None:
        return None
    if isinstance(configured, bool) or not isinstance(configured, int) or configured < 0:
        raise ValueError(f"CERTIFICATE_FEE_YEN must be a whole number of yen or a mapping of codes to one, "
                         f"got {configured!r}")
    return configured


def fee_for(service: Service, municipality_code: str) -> int | None:
    """The fee in yen of ``service`` at the municipality with ``municipality_code``; None when it has no fixed fee.

    Certificates cost what CERTIFICATE_FEE_YEN says (one amount for all municipalities, or a mapping
    from municipality code to amount) and otherwise what the data file says.
    """
    if service.form == CERTIFICATE_FORM and service.fee_yen is not None:
        configured = _configured_certificate_fee(municipality_code)
        if configured is not None:
            return configured
    return service.fee_yen


CERTIFICATE_SERVICES = {"juminhyo": "resident-record-copy", "kisai_jiko": "resident-record-items-certificate"}


def certificate_fee(kind: str, municipality_code: str) -> int:
    """The fee in yen of one certificate of ``kind`` (juminhyo, kisai_jiko) at a municipality: its ``fee_for``."""
    service = get(CERTIFICATE_SERVICES.get(kind, "resident-record-copy"))
    fee = fee_for(service, municipality_code) if service is not None else None
    if fee is None:
        raise LookupError(f"the catalog gives no fee for a {kind!r} certificate")
    return fee
