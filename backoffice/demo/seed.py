"""Deterministic synthetic ledger: realistic households for demos, tests and load benchmarks.

Everything here is invented. The people are drawn from ``random.Random`` seeded with the
municipality code and the seed, so the same seed for the same municipality, starting from the
same ledger, writes the same rows (only the AES-GCM ciphertexts differ, because every encryption
takes a fresh random nonce). ``as_of`` fixes "today" for ages and dates; it defaults to today in
Japan, so pass it explicitly when rows must match across days.

Idempotency lives in the ledger itself: the 宛名番号 of generated records are
``<6-digit tag of (municipality, seed)><9-digit running number>``, so if the first one exists,
this seed was already loaded and nothing is written.

The caller owns the transaction: rows are written through the session's connection (bulk
``INSERT`` or, on PostgreSQL with psycopg 3, ``COPY``) and become visible only when the caller
commits. On PostgreSQL the household and resident tables are locked for the rest of that
transaction, because household ids are assigned here from ``max(id) + 1``.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import hashlib
import itertools
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from backoffice.models import Household, IdoReason, RecordStatus, Resident, Sex
from backoffice.services.records import RESIDENCE_CARD_CONTEXT
from core.addressmaster import DATA_DIR, Machiaza, load_machiaza, load_municipalities, municipality_by_code
from core.checkdigits import make_juminhyo_code, make_my_number
from core.clock import age_on, today_jst
from core.fieldcrypto import FieldCipher, blind_index
from core.textfold import fold

UPDATED_BY = "seed"
JST = dt.timezone(dt.timedelta(hours=9), "JST")
CHUNK = 20_000  # residents per bulk write; bounds memory whatever the total
MAX_RESIDENTS = 999_999_999  # the running number in the 宛名番号 has nine digits
WS = "\u3000"  # full-width space between family and given name, as on certificates

# Statuses whose holders have no 在留期間 (and so no expiry date on the record).
NO_EXPIRY = frozenset({"永住者", "特別永住者"})
# The columns ``_foreign_items`` fills (the 在留カード等の番号 is encrypted on its way to the row).
FOREIGN_COLUMNS = (
    "foreign_resident_category", "residence_card_number_encrypted", "became_foreign_resident_on",
    "became_foreign_resident_reason", "became_foreign_resident_notified_on", "residence_period_years",
    "residence_period_months", "residence_period_days", "special_permanent_certificate_issued_on",
    "alphabet_name_kana", "kanji_name", "kanji_name_kana", "electoral_roll",
)
# Statuses tied to employment: health insurance and pension through the employer.
EMPLOYED_STATUSES = frozenset({"技能実習", "特定技能", "技術・人文知識・国際業務", "家族滞在"})
# Wives of these nationalities usually keep their own family name; the children take the father's.
OWN_FAMILY_NAME_AFTER_MARRIAGE = frozenset({"ベトナム", "中国", "韓国", "ミャンマー"})
# 児童手当 runs to the first 31 March after the 18th birthday from this date (令和6年10月改正);
# before it, to the first 31 March after the 15th birthday.
CHILD_ALLOWANCE_REFORM = dt.date(2024, 10, 1)


class SeedError(ValueError):
    """Raised when the seed cannot be generated as asked."""


@dataclass(frozen=True)
class SeedResult:
    """What a seeding run wrote, or found already written (``created`` False)."""

    residents: int
    households: int
    removed: int
    foreign: int
    seconds: float
    created: bool


# -- reference data ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Name:
    kanji: str
    kana: str


@dataclass(frozen=True, slots=True)
class _ForeignName:
    family: str
    given: str
    kana_family: str
    kana_given: str
    nationality: str
    sex: Sex


@dataclass(frozen=True)
class _Weighted:
    """Items with cumulative weights, for ``random.choices`` without recomputing the sums."""

    items: tuple[Any, ...]
    cum: tuple[float, ...]

    @classmethod
    def of(cls, pairs: Sequence[tuple[Any, float]]) -> _Weighted:
        return cls(tuple(p[0] for p in pairs), tuple(itertools.accumulate(p[1] for p in pairs)))

    def pick(self, rng: random.Random) -> Any:
        # Same draw as rng.choices(..., cum_weights=...) but without building a list each time.
        return self.items[bisect.bisect_right(self.cum, rng.random() * self.cum[-1])]


@dataclass(frozen=True)
class _NameData:
    surnames: _Weighted
    given: dict[tuple[Sex, str], tuple[_Name, ...]]
    foreign: dict[tuple[str, Sex], tuple[_ForeignName, ...]]
    statuses: frozenset[str]


def _read_csv(name: str, columns: tuple[str, ...]) -> list[dict[str, str]]:
    path = DATA_DIR / "names" / name
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ())[: len(columns)] != columns:
            raise SeedError(f"{path} must start with the columns {','.join(columns)}")
        return [{k: (v or "").strip() for k, v in row.items()} for row in reader]


@lru_cache(maxsize=1)
def _names() -> _NameData:
    surnames = _Weighted.of(
        [(_Name(r["kanji"], r["kana"]), float(r["weight"]))
         for r in _read_csv("surnames.csv", ("kanji", "kana", "weight"))]
    )
    given: dict[tuple[Sex, str], list[_Name]] = {}
    for sex, file in ((Sex.MALE, "given_male.csv"), (Sex.FEMALE, "given_female.csv")):
        for r in _read_csv(file, ("kanji", "kana", "era")):
            given.setdefault((sex, r["era"]), []).append(_Name(r["kanji"], r["kana"]))
    for sex in Sex:
        for era in ("old", "mid", "young"):
            if not given.get((sex, era)):
                raise SeedError(f"no {sex.name.lower()} given names for the era {era!r}")
    foreign: dict[tuple[str, Sex], list[_ForeignName]] = {}
    columns = ("alphabet_name_family", "alphabet_name_given", "kana_family", "kana_given", "nationality", "sex")
    for r in _read_csv("foreign.csv", columns):
        f = _ForeignName(r["alphabet_name_family"], r["alphabet_name_given"], r["kana_family"], r["kana_given"],
                         r["nationality"], Sex(r["sex"]))
        foreign.setdefault((f.nationality, f.sex), []).append(f)
    statuses = frozenset(r["status"] for r in _read_csv("residence_status.csv", ("status",)))
    return _NameData(
        surnames=surnames,
        given={k: tuple(v) for k, v in given.items()},
        foreign={k: tuple(v) for k, v in foreign.items()},
        statuses=statuses,
    )


# Population of a small Tohoku city, per five-year band (share of people, not households).
# Used for people whose age is not tied to someone else's.
_ADULT_BANDS = (
    (18, 24, 4.0), (25, 29, 4.0), (30, 34, 4.6), (35, 39, 5.2), (40, 44, 6.0), (45, 49, 7.0), (50, 54, 6.6),
    (55, 59, 6.6), (60, 64, 6.8), (65, 69, 7.6), (70, 74, 8.4), (75, 79, 6.2), (80, 84, 5.0), (85, 89, 3.6),
    (90, 94, 1.6), (95, 100, 0.4),
)

# Places people came from or went to, besides the other municipalities of the prefecture.
_ELSEWHERE = (
    "宮城県仙台市青葉区", "宮城県仙台市泉区", "東京都世田谷区", "東京都江戸川区", "神奈川県横浜市港北区",
    "埼玉県さいたま市大宮区", "秋田県秋田市", "青森県八戸市", "北海道札幌市北区", "福島県郡山市",
)
_APARTMENT_PREFIX = ("コーポ", "ハイツ", "メゾン", "パレス", "グリーンハイツ", "レジデンス", "サンライズ")
_APARTMENT_WORD = ("花城", "さくら", "若葉", "銀河", "イーハトーブ", "ひまわり", "すずらん", "あおば", "北上", "豊沢")


# -- dates ------------------------------------------------------------------------------------


def _anniversary(born: dt.date, years: int) -> dt.date:
    """The date ``years`` after ``born``; 29 February falls on 1 March in common years."""
    try:
        return born.replace(year=born.year + years)
    except ValueError:
        return dt.date(born.year + years, 3, 1)


def _reaches_age(born: dt.date, years: int) -> dt.date:
    """The day a person legally reaches an age: the day before the birthday (年齢計算ニ関スル法律)."""
    return _anniversary(born, years) - dt.timedelta(days=1)


def _between(rng: random.Random, lo: dt.date, hi: dt.date) -> dt.date:
    if hi <= lo:
        return lo
    return dt.date.fromordinal(rng.randint(lo.toordinal(), hi.toordinal()))


def _era(born: dt.date) -> str:
    if born.year < 1960:
        return "old"
    if born.year < 1995:
        return "mid"
    return "young"


def _fiscal_year_end_after(born: dt.date, years: int) -> dt.date:
    """The first 31 March after the person turns ``years`` (how school-age limits are written)."""
    reached = _anniversary(born, years)
    year = reached.year if reached.month < 4 else reached.year + 1
    return dt.date(year, 3, 31)


# -- the people of one household --------------------------------------------------------------


class _Person:
    """One person being built; becomes one resident row."""

    __slots__ = (
        "address_on",
        "address_reason",
        "age",
        "allowance",
        "arrived",
        "became",
        "became_reason",
        "born",
        "destination",
        "family",
        "foreign",
        "given",
        "hittosha",
        "honseki",
        "married_in",
        "relation",
        "removal",
        "removed_on",
        "sex",
        "status",
        "tsusho",
    )

    def __init__(self, relation: str, sex: Sex, born: dt.date, family: _Name | None = None) -> None:
        self.relation = relation
        self.sex = sex
        self.born = born
        self.age = 0
        self.family = family
        self.given: _Name | None = None
        self.foreign: _ForeignName | None = None
        self.status: str | None = None  # 在留資格
        self.tsusho: str | None = None
        self.married_in: dt.date | None = None  # came into the city on marrying a resident
        self.arrived: dt.date | None = None  # came with the household when it moved into the city
        self.became: dt.date = born
        self.became_reason = IdoReason.BIRTH
        self.address_on: dt.date = born
        self.address_reason = IdoReason.BIRTH
        self.honseki: str | None = None
        self.hittosha: str | None = None
        self.removal: IdoReason | None = None
        self.removed_on: dt.date | None = None
        self.destination: str | None = None  # 転出先 of a record removed by 転出
        self.allowance: dt.date | None = None  # 児童手当 received by this person

    @property
    def name(self) -> str:
        if self.foreign is not None:
            return f"{self.foreign.kana_family}{WS}{self.foreign.kana_given}"
        assert self.family is not None and self.given is not None
        return f"{self.family.kanji}{WS}{self.given.kanji}"

    @property
    def kana(self) -> str:
        if self.foreign is not None:
            return self.name
        assert self.family is not None and self.given is not None
        return f"{self.family.kana}{WS}{self.given.kana}"


@dataclass
class _Home:
    """Where a household lives and how it came to be there."""

    machiaza: Machiaza
    banchi: str
    katagaki: str | None
    settled: dt.date  # the day the household took this address
    previous_address: str | None  # where the household lived before moving into the city
    arrival_reason: IdoReason
    previous_in_city: str  # where it lived in the city before its last 転居


class _Generator:
    """Draws households one after another from a single ``random.Random``."""

    def __init__(self, rng: random.Random, municipality_code: str, as_of: dt.date) -> None:
        self.rng = rng
        self.as_of = as_of
        self.yesterday = as_of - dt.timedelta(days=1)
        self.names = _names()
        self.machiaza = load_machiaza(municipality_code)
        own = municipality_by_code(municipality_code)
        self.own_place = f"{own.prefecture}{own.name}" if own else ""
        others = [m for m in load_municipalities() if m.code != municipality_code]
        self.same_prefecture = tuple(
            f"{m.prefecture}{m.name}" for m in others if own and m.prefecture == own.prefecture
        )
        # Other cities with a master get full addresses as 前住所 and 転出先; the rest stop at the city.
        self.other_masters: dict[str, tuple[Machiaza, ...]] = {}
        for m in others:
            if (DATA_DIR / "address" / f"{m.code}.csv").is_file():
                self.other_masters[f"{m.prefecture}{m.name}"] = load_machiaza(m.code)
        self.adult_bands = _Weighted.of([((lo, hi), w) for lo, hi, w in _ADULT_BANDS])
        self.kinds = _Weighted.of([
            (self._single, 34.0), (self._couple, 23.0), (self._couple_with_children, 20.0),
            (self._single_parent, 6.5), (self._three_generations, 9.0), (self._parent_and_adult_child, 6.0),
            (self._foreign_household, 2.2),
        ])
        self.foreign_singles = _Weighted.of([
            (("技能実習", ("ベトナム", "インドネシア", "ミャンマー", "フィリピン", "中国")), 45.0),
            (("特定技能", ("ベトナム", "インドネシア", "フィリピン", "ミャンマー")), 25.0),
            (("留学", ("ネパール", "ベトナム", "中国", "インドネシア")), 12.0),
            (("技術・人文知識・国際業務", ("アメリカ合衆国", "中国", "ベトナム", "フィリピン", "ネパール")), 18.0),
        ])

    # -- small draws ------------------------------------------------------------------------

    def born_at_age(self, age: int) -> dt.date:
        hi = _anniversary(self.as_of, -age)
        lo = _anniversary(self.as_of, -(age + 1)) + dt.timedelta(days=1)
        return _between(self.rng, lo, hi)

    def adult_age(self, lo: int, hi: int) -> int:
        # Redraw from the population bands until inside [lo, hi]; bands outside are never chosen
        # more than a few times because callers ask for wide ranges.
        for _ in range(50):
            blo, bhi = self.adult_bands.pick(self.rng)
            if bhi >= lo and blo <= hi:
                return self.rng.randint(max(lo, blo), min(hi, bhi))
        return self.rng.randint(lo, hi)

    def given(self, sex: Sex, born: dt.date) -> _Name:
        options = self.names.given[(sex, _era(born))]
        return options[self.rng.randrange(len(options))]

    def person(self, relation: str, sex: Sex, age: int, family: _Name) -> _Person:
        p = _Person(relation, sex, self.born_at_age(max(age, 0)), family)
        p.given = self.given(sex, p.born)
        return p

    def child_ages(self, mother_age: int, count: int) -> list[int]:
        eldest = mother_age - self.rng.randint(24, 36)
        ages = []
        age = eldest
        for _ in range(count):
            if age < 0:
                break
            ages.append(age)
            age -= self.rng.randint(1, 5)
        return ages

    def wedding(self, groom_born: dt.date) -> dt.date:
        """A wedding day when the groom was 24 to 34 (never after yesterday)."""
        day = _anniversary(groom_born, self.rng.randint(24, 34)) + dt.timedelta(days=self.rng.randint(0, 364))
        return min(day, self.yesterday)

    def banchi(self, machiaza: Machiaza) -> str:
        # 住居表示 areas (those with 丁目) are written 「12番3号」; the others by 地番 「123番地4」.
        if machiaza.name.endswith("丁目"):
            return f"{self.rng.randint(1, 30)}番{self.rng.randint(1, 25)}号"
        lot = self.rng.randint(1, 999)
        return f"{lot}番地" if self.rng.random() < 0.5 else f"{lot}番地{self.rng.randint(1, 30)}"

    def katagaki(self) -> str:
        word = self.rng.choice(_APARTMENT_WORD)
        room = f"{self.rng.randint(1, 3)}{self.rng.randint(1, 8):02d}"
        return f"{self.rng.choice(_APARTMENT_PREFIX)}{word} {room}号室"

    def elsewhere(self, *, registry: bool = False) -> str:
        """A place outside the city: a full address where a master is known, else the city.

        With ``registry`` it is written as a 本籍 is, by 地番 (「123番地」), never by 住居表示.
        """
        r = self.rng.random()
        if self.other_masters and r < 0.25:
            city = self.rng.choice(sorted(self.other_masters))
            m = self.rng.choice(self.other_masters[city])
            lot = f"{self.rng.randint(1, 999)}番地" if registry else self.banchi(m)
            return f"{city}{m.name}{lot}"
        nearby = self.same_prefecture and r < 0.7
        place = self.rng.choice(self.same_prefecture if nearby else _ELSEWHERE)
        return f"{place}{self.rng.randint(1, 999)}番地" if registry else place

    def honseki(self, home: _Home) -> str:
        # Most families keep their 本籍 where they live or where the family comes from.
        r = self.rng.random()
        if r < 0.55:
            lot = home.banchi.split("番")[0]
            return f"{self.own_place}{home.machiaza.name}{lot}番地"
        if r < 0.75:
            m = self.rng.choice(self.machiaza)
            return f"{self.own_place}{m.name}{self.rng.randint(1, 999)}番地"
        return self.elsewhere(registry=True)

    # -- household kinds ------------------------------------------------------------------
    # Each returns the members, householder first; dates and removals are settled in ``household``.

    def _surname(self) -> _Name:
        name: _Name = self.names.surnames.pick(self.rng)
        return name

    def _single(self) -> list[_Person]:
        r = self.rng.random()
        if r < 0.15:
            age = self.rng.randint(18, 34)
            sex = Sex.MALE if self.rng.random() < 0.6 else Sex.FEMALE
        elif r < 0.38:
            age = self.adult_age(35, 64)
            sex = Sex.MALE if self.rng.random() < 0.62 else Sex.FEMALE
        else:
            # Elderly living alone: mostly widows.
            age = self.adult_age(65, 100)
            sex = Sex.FEMALE if self.rng.random() < 0.68 else Sex.MALE
        return [self.person("世帯主", sex, age, self._surname())]

    def _spouse_age(self, head_age: int, head_sex: Sex) -> int:
        gap = self.rng.choice((0, 1, 1, 2, 2, 3, 3, 4, 5, 7))
        age = head_age - gap if head_sex is Sex.MALE else head_age + gap
        return max(18, min(age, 100))

    def _couple_members(self, head_age: int) -> list[_Person]:
        family = self._surname()
        if self.rng.random() < 0.04:
            head = self.person("世帯主", Sex.FEMALE, head_age, family)
            spouse = self.person("夫", Sex.MALE, self._spouse_age(head_age, Sex.FEMALE), family)
        else:
            head = self.person("世帯主", Sex.MALE, head_age, family)
            spouse = self.person("妻", Sex.FEMALE, self._spouse_age(head_age, Sex.MALE), family)
        if self.rng.random() < 0.7:
            # Three in ten spouses grew up in the city too; the others moved in on marrying.
            groom = head if head.sex is Sex.MALE else spouse
            spouse.married_in = self.wedding(groom.born)
        return [head, spouse]

    def _married_before_children(self, spouse: _Person, kids: list[_Person]) -> None:
        # A spouse who married in did so before the first child was born.
        if spouse.married_in is not None and kids:
            eldest = min(k.born for k in kids)
            spouse.married_in = min(spouse.married_in, eldest - dt.timedelta(days=self.rng.randint(60, 900)))

    def _maybe_foreign_wife(self, members: list[_Person]) -> None:
        wife = members[1]
        if wife.sex is not Sex.FEMALE or not 25 <= age_on(wife.born, self.as_of) <= 70 or self.rng.random() > 0.04:
            return
        nationality = self.rng.choice(("フィリピン", "フィリピン", "中国", "中国", "韓国", "タイ"))
        wife.foreign = self._foreign_name(nationality, Sex.FEMALE)
        married_years = age_on(wife.married_in, self.as_of) if wife.married_in else 0
        wife.status = "永住者" if married_years >= 5 and self.rng.random() < 0.6 else "日本人の配偶者等"
        if self.rng.random() < 0.5:
            assert members[0].family is not None
            wife.tsusho = f"{members[0].family.kanji}{WS}{wife.foreign.kana_given.split('・')[0]}"

    def _couple(self) -> list[_Person]:
        # Couples on their own are mostly those whose children have left.
        members = self._couple_members(self.adult_age(50, 95) if self.rng.random() < 0.85 else self.adult_age(25, 49))
        self._maybe_foreign_wife(members)
        return members

    def _children(self, parents: list[_Person], mother: _Person, count: int, relation: str = "子") -> list[_Person]:
        family = parents[0].family
        assert family is not None
        kids = []
        for age in self.child_ages(age_on(mother.born, self.as_of), count):
            sex = Sex.MALE if self.rng.random() < 0.51 else Sex.FEMALE
            kids.append(self.person(relation, sex, age, family))
        return kids

    def _couple_with_children(self) -> list[_Person]:
        members = self._couple_members(self.adult_age(27, 62))
        self._maybe_foreign_wife(members)
        mother = members[1] if members[1].sex is Sex.FEMALE else members[0]
        count = self.rng.choices((1, 2, 3), weights=(40, 45, 15))[0]
        kids = self._children(members, mother, count) or self._children(members, mother, 1)
        self._married_before_children(members[1], kids)
        return members + kids

    def _single_parent(self) -> list[_Person]:
        sex = Sex.FEMALE if self.rng.random() < 0.85 else Sex.MALE
        head = self.person("世帯主", sex, self.adult_age(26, 58), self._surname())
        kids = self._children([head], head, self.rng.choices((1, 2, 3), weights=(55, 35, 10))[0])
        return [head, *kids] if kids else [head]

    def _three_generations(self) -> list[_Person]:
        if self.rng.random() < 0.55:
            # A middle-aged couple with their children and one or both of the householder's parents.
            members = self._couple_members(self.adult_age(42, 66))
            head, mother = members[0], members[1] if members[1].sex is Sex.FEMALE else members[0]
            kids = self._children(members, mother, self.rng.choices((1, 2, 3), weights=(45, 45, 10))[0])
            self._married_before_children(members[1], kids)
            members += kids
            assert head.family is not None
            head_age = age_on(head.born, self.as_of)
            father_age = min(head_age + self.rng.randint(24, 34), 100)
            if self.rng.random() < 0.45 and father_age <= 96:
                members.append(self.person("父", Sex.MALE, father_age, head.family))
            members.append(self.person("母", Sex.FEMALE, min(father_age - self.rng.randint(0, 4), 100), head.family))
            return members
        # An elderly couple with their married son, his wife and the grandchildren.
        members = self._couple_members(self.adult_age(66, 88))
        head = members[0]
        assert head.family is not None
        old_mother = members[1] if members[1].sex is Sex.FEMALE else members[0]
        son_age = max(age_on(old_mother.born, self.as_of) - self.rng.randint(24, 34), 25)
        son = self.person("子", Sex.MALE, son_age, head.family)
        daughter_in_law = self.person("子の妻", Sex.FEMALE, self._spouse_age(son_age, Sex.MALE), head.family)
        daughter_in_law.married_in = self.wedding(son.born)
        count = self.rng.choices((1, 2, 3), weights=(35, 50, 15))[0]
        grandchildren = self._children([son], daughter_in_law, count, "孫")
        self._married_before_children(daughter_in_law, grandchildren)
        return [*members, son, daughter_in_law, *grandchildren]

    def _parent_and_adult_child(self) -> list[_Person]:
        sex = Sex.FEMALE if self.rng.random() < 0.75 else Sex.MALE
        head = self.person("世帯主", sex, self.adult_age(72, 99), self._surname())
        assert head.family is not None
        child_age = max(age_on(head.born, self.as_of) - self.rng.randint(22, 36), 20)
        child = self.person("子", Sex.MALE if self.rng.random() < 0.55 else Sex.FEMALE, child_age, head.family)
        return [head, child]

    def _foreign_name(self, nationality: str, sex: Sex) -> _ForeignName:
        options = self.names.foreign.get((nationality, sex))
        if not options:
            # A nationality without names of that sex falls back to any name of that sex.
            options = tuple(n for (_nat, s), names in sorted(self.names.foreign.items()) if s is sex for n in names)
        return options[self.rng.randrange(len(options))]

    def _foreigner(self, relation: str, sex: Sex, age: int, nationality: str, status: str) -> _Person:
        p = _Person(relation, sex, self.born_at_age(age))
        p.foreign = self._foreign_name(nationality, sex)
        p.status = status
        return p

    def _foreign_household(self) -> list[_Person]:
        r = self.rng.random()
        if r < 0.62:
            status, nationalities = self.foreign_singles.pick(self.rng)
            nationality = self.rng.choice(nationalities)
            sex = Sex.MALE if self.rng.random() < 0.55 else Sex.FEMALE
            age = self.rng.randint(19, 30) if status == "留学" else self.rng.randint(20, 38)
            return [self._foreigner("世帯主", sex, age, nationality, status)]
        if r < 0.9:
            nationality = self.rng.choice(("中国", "フィリピン", "ベトナム", "ネパール", "韓国", "ブラジル"))
            status = self.rng.choice(("永住者", "定住者", "技術・人文知識・国際業務"))
            head = self._foreigner("世帯主", Sex.MALE, self.rng.randint(27, 55), nationality, status)
            head_age = age_on(head.born, self.as_of)
            wife_status = "家族滞在" if status == "技術・人文知識・国際業務" else status
            wife_age = max(head_age - self.rng.randint(0, 6), 20)
            wife = self._foreigner("妻", Sex.FEMALE, wife_age, nationality, wife_status)
            assert head.foreign is not None and wife.foreign is not None
            if nationality not in OWN_FAMILY_NAME_AFTER_MARRIAGE:
                wife.foreign = _ForeignName(head.foreign.family, wife.foreign.given, head.foreign.kana_family,
                                            wife.foreign.kana_given, nationality, Sex.FEMALE)
            members = [head, wife]
            count = self.rng.choices((0, 1, 2), weights=(35, 40, 25))[0]
            for age in self.child_ages(age_on(wife.born, self.as_of), count):
                sex = Sex.MALE if self.rng.random() < 0.5 else Sex.FEMALE
                kid = self._foreigner("子", sex, age, nationality, wife_status)
                g = kid.foreign
                assert g is not None
                kid.foreign = _ForeignName(head.foreign.family, g.given, head.foreign.kana_family, g.kana_given,
                                           nationality, sex)
                members.append(kid)
            return members
        # 特別永住者: born in Japan, often elderly, here living alone.
        head = self._foreigner("世帯主", Sex.MALE if self.rng.random() < 0.5 else Sex.FEMALE,
                               self.adult_age(50, 95), "韓国", "特別永住者")
        return [head]

    # -- dates, removals and status items --------------------------------------------------

    def household(self) -> tuple[list[_Person], _Home]:
        """Draw one household: its members (householder first) and its home."""
        members: list[_Person] = self.kinds.pick(self.rng)()
        for p in members:
            p.age = age_on(p.born, self.as_of)
        head = members[0]
        machiaza = self.machiaza[self.rng.randrange(len(self.machiaza))]
        young_single = len(members) == 1 and head.age < 40
        apartment = self.rng.random() < (0.65 if young_single else 0.05 if head.age >= 65 else 0.15)
        katagaki = self.katagaki() if apartment else None
        banchi = self.banchi(machiaza)
        # Did the family come from elsewhere? Older households and 特別永住者 much less often.
        is_foreign = head.foreign is not None and head.status != "特別永住者"
        moved_in_p = 1.0 if is_foreign else 0.75 if head.age < 35 else 0.45 if head.age < 65 else 0.2
        came_from_abroad = is_foreign and self.rng.random() < 0.7
        if self.rng.random() < moved_in_p:
            # Trainees and students came recently; other foreign residents within 15 years.
            years_back = (3 if head.status in ("技能実習", "留学") else 15) if is_foreign else 40
            start = max(_anniversary(head.born, 18), _anniversary(self.as_of, -years_back))
            arrived = _between(self.rng, start, self.yesterday)
            for p in members:
                if p.born < arrived:
                    p.arrived = arrived
            previous = self.rng.choice(sorted({m.foreign.nationality for m in members if m.foreign})) \
                if came_from_abroad else self.elsewhere()
            reason = IdoReason.ARRIVAL_FROM_ABROAD if came_from_abroad else IdoReason.MOVE_IN
            settled = arrived if self.rng.random() < 0.7 else _between(self.rng, arrived, self.yesterday)
        else:
            previous, reason = None, IdoReason.MOVE_IN
            settled = _between(self.rng, _anniversary(head.born, 20), self.yesterday) \
                if self.rng.random() < 0.7 and head.age >= 21 else head.born
        before = self.machiaza[self.rng.randrange(len(self.machiaza))]
        home = _Home(machiaza, banchi, katagaki, settled, previous, reason,
                     f"{self.own_place}{before.name}{self.banchi(before)}")
        for p in members:
            self._became_resident(p, home)
            # 住所を定めた: the later of becoming a resident and the household taking this address.
            if home.settled > p.became:
                p.address_on, p.address_reason = home.settled, IdoReason.MOVE_WITHIN
            else:
                p.address_on, p.address_reason = p.became, p.became_reason
        self._removals(members)
        self._koseki(members, home)
        return members, home

    def _became_resident(self, p: _Person, home: _Home) -> None:
        married = None
        if p.married_in is not None:
            married = min(max(p.married_in, _anniversary(p.born, 18)), self.yesterday)
        if married is not None and (p.arrived is None or married > p.arrived):
            # Moved in on marrying a resident; a foreign spouse often straight from abroad.
            from_abroad = p.foreign is not None and self.rng.random() < 0.6
            p.became = married
            p.became_reason = IdoReason.ARRIVAL_FROM_ABROAD if from_abroad else IdoReason.MOVE_IN
        elif p.arrived is not None:
            p.became, p.became_reason = p.arrived, home.arrival_reason
        else:
            p.became, p.became_reason = p.born, IdoReason.BIRTH

    def _removals(self, members: list[_Person]) -> None:
        """Some records are 除票 already: people who died or moved away in the last four years."""
        window_start = _anniversary(self.as_of, -4)
        if self.rng.random() < 0.008:
            # The whole household moved away together.
            day = _between(self.rng, max(window_start, *(p.address_on for p in members)), self.yesterday)
            destination = self.elsewhere()
            for p in members:
                p.removal, p.removed_on, p.destination = IdoReason.MOVE_OUT, day, destination
            return
        has_daughter_in_law = any(p.relation == "子の妻" for p in members)
        for p in members[1:]:
            if p.age >= 75 and self.rng.random() < 0.08:
                p.removal = IdoReason.DEATH
                p.removed_on = _between(self.rng, max(window_start, p.address_on), self.yesterday)
            elif (p.relation == "孫" or (p.relation == "子" and not has_daughter_in_law)) and 18 <= p.age <= 30 \
                    and self.rng.random() < 0.2:
                # Left for university or a first job.
                p.removal = IdoReason.MOVE_OUT
                start = max(window_start, p.address_on, _anniversary(p.born, 18))
                p.removed_on = _between(self.rng, start, self.yesterday)
                p.destination = self.elsewhere()

    def _koseki(self, members: list[_Person], home: _Home) -> None:
        """本籍 and 筆頭者 for Japanese nationals: one 戸籍 per married couple, as the family register has."""
        honseki = self.honseki(home)
        head = members[0]
        husband = next((p for p in members[:2] if p.relation in ("世帯主", "夫") and p.sex is Sex.MALE), None)
        head_of_register = husband.name if husband and husband.foreign is None else head.name
        if husband is None and head.foreign is None and head.family is not None:
            if head.sex is Sex.FEMALE and head.age >= 60 and self.rng.random() < 0.8:
                # A widow stays in the register her late husband headed.
                late = self.given(Sex.MALE, _anniversary(head.born, -3))
                head_of_register = f"{head.family.kanji}{WS}{late.kanji}"
            elif len(members) == 1 and head.age < 35 and self.rng.random() < 0.85:
                # Unmarried young people are still in their father's register, often with its 本籍.
                father_name = self.given(Sex.MALE, _anniversary(head.born, -30))
                head_of_register = f"{head.family.kanji}{WS}{father_name.kanji}"
                if self.rng.random() < 0.6:
                    honseki = self.elsewhere(registry=True)
        father = next((p for p in members if p.relation == "父"), None)
        married_son = next((p for p in members if p.relation == "子" and any(q.relation == "子の妻" for q in members)),
                           None)
        for p in members:
            if p.foreign is not None:
                continue
            p.honseki = honseki
            if p.relation in ("父", "母"):
                if father is not None:
                    p.hittosha = father.name
                else:
                    assert p.family is not None
                    p.hittosha = f"{p.family.kanji}{WS}{self.given(Sex.MALE, _anniversary(p.born, -3)).kanji}"
            elif p.relation in ("子の妻", "孫") or p is married_son:
                assert married_son is not None
                p.hittosha = married_son.name
            else:
                p.hittosha = head_of_register


# -- rows -------------------------------------------------------------------------------------


class _Identifiers:
    """Unique 住民票コード and 個人番号, drawn from the same generator and checked against the ledger."""

    def __init__(self, rng: random.Random, taken_codes: set[str], taken_indexes: set[str], index_key: str) -> None:
        self.rng = rng
        self.codes = taken_codes
        self.indexes = taken_indexes
        self.index_key = index_key

    def juminhyo_code(self) -> str:
        while True:
            code = make_juminhyo_code(f"{self.rng.randrange(10**10):010d}")
            if code not in self.codes:
                self.codes.add(code)
                return code

    def my_number(self) -> tuple[str, str]:
        while True:
            number = make_my_number(f"{self.rng.randrange(10**11):011d}")
            index = blind_index(self.index_key, number, purpose="my_number")
            if index not in self.indexes:
                self.indexes.add(index)
                return number, index


def _tag(municipality_code: str, seed: int) -> str:
    digest = hashlib.sha256(f"ledger-seed:{municipality_code}:{seed}".encode()).digest()
    return f"{int.from_bytes(digest[:8], 'big') % 10**6:06d}"


def atena_number(municipality_code: str, seed: int, index: int) -> str:
    """The 15-digit 宛名番号 of the ``index``-th record generated for (municipality, seed)."""
    return f"{_tag(municipality_code, seed)}{index:09d}"


def household_number(municipality_code: str, seed: int, index: int) -> str:
    """The 14-digit 世帯番号 of the ``index``-th household generated for (municipality, seed)."""
    return f"{_tag(municipality_code, seed)}{index:08d}"


def _notified(rng: random.Random, day: dt.date, reason: IdoReason, as_of: dt.date) -> dt.date:
    # 出生届 within 14 days, 転入届/転居届 within 14 days of moving, 死亡届 within 7 days.
    limit = 6 if reason is IdoReason.DEATH else 13
    return min(day + dt.timedelta(days=rng.randint(0, limit)), as_of)


class _RowBuilder:
    """Turns a drawn household into one household row and its resident rows."""

    def __init__(self, gen: _Generator, ids: _Identifiers, cipher: FieldCipher, municipality_code: str,
                 seed: int) -> None:
        self.gen = gen
        self.rng = gen.rng
        self.ids = ids
        self.cipher = cipher
        self.tag = _tag(municipality_code, seed)
        self.as_of = gen.as_of
        self.stamp = dt.datetime.combine(gen.as_of, dt.time(9, 0), JST).astimezone(dt.UTC)
        self.allowance_limit = 18 if gen.as_of >= CHILD_ALLOWANCE_REFORM else 15

    def rows(self, members: list[_Person], home: _Home, household_id: int, household_index: int,
             first_resident_index: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        head = members[0]
        household = {"id": household_id, "household_number": f"{self.tag}{household_index:08d}",
                     "householder_name": head.name, "created_at": self.stamp}
        nhi_start = self._nhi_start(members)
        self._child_allowance(members)
        address_search = fold(home.machiaza.name + home.banchi)
        out = []
        for offset, p in enumerate(members):
            out.append(self._resident(p, home, household_id, first_resident_index + offset, nhi_start, address_search))
        return household, out

    def _nhi_start(self, members: list[_Person]) -> dt.date | None:
        """国民健康保険 is per household: decide whether this one is insured and since when."""
        head = members[0]
        if head.status in EMPLOYED_STATUSES:
            return None  # employees and their families: covered by the employer's health insurance
        if head.status == "留学":
            p = 1.0
        elif head.age >= 65:
            p = 0.85
        elif head.age >= 60:
            p = 0.5
        else:
            p = 0.2
        if self.rng.random() >= p:
            return None
        if head.age >= 60:
            retired_at = self.rng.randint(60, min(head.age, 65))
            return _anniversary(head.born, retired_at)
        return _between(self.rng, _anniversary(head.born, 20), self.gen.yesterday)

    def _child_allowance(self, members: list[_Person]) -> None:
        """児童手当 is recorded on the parent who receives it: the householder, or the married son."""
        for relation, recipient_relation in (("子", "世帯主"), ("孫", "子")):
            children = [p for p in members if p.relation == relation and p.removal is None
                        and self.as_of <= _fiscal_year_end_after(p.born, self.allowance_limit)]
            if not children:
                continue
            recipient = members[0] if recipient_relation == "世帯主" else next(
                (p for p in members if p.relation == "子" and p.sex is Sex.MALE and p.removal is None), None)
            if recipient is None or recipient.removal is not None:
                continue
            eldest = min(children, key=lambda p: p.born)
            since = max(eldest.became, recipient.became) + dt.timedelta(days=self.rng.randint(0, 14))
            old_rule_ended = all(_fiscal_year_end_after(c.born, 15) < CHILD_ALLOWANCE_REFORM for c in children)
            if self.allowance_limit == 18 and old_rule_ended:
                # Only high-school-age children: the family is eligible again since the reform.
                since = max(since, CHILD_ALLOWANCE_REFORM)
            recipient.allowance = min(since, self.as_of)

    def _foreign_items(self, p: _Person, code: str, became_notified: dt.date | None, expiry: dt.date | None,
                       age: int) -> dict[str, Any]:
        """The 第30条の45 items of a foreign resident and the 選挙人名簿資格 of a Japanese one.

        Drawn from a generator of their own, seeded with the 住民票コード, so the main draw (and every
        other row of a seed) stays what it was before these items existed.
        """
        none: dict[str, Any] = dict.fromkeys(FOREIGN_COLUMNS)
        if p.foreign is None:
            # 公職選挙法第9条, 第21条: 18 or over and three months a resident (the register records the 資格).
            return {**none, "electoral_roll": age >= 18 and p.became <= self.as_of - dt.timedelta(days=92)}
        own = random.Random(f"foreign:{code}")  # noqa: S311 - invented data, not a secret
        special = p.status == "特別永住者"
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        card = (f"{own.choice(letters)}{own.choice(letters)}{own.randrange(10 ** 8):08d}"
                f"{own.choice(letters)}{own.choice(letters)}")
        years = own.choice((1, 3, 5)) if expiry is not None else None
        return {
            **none,
            "foreign_resident_category": "特別永住者" if special else "中長期在留者",
            "residence_card_number_encrypted": self.cipher.encrypt(card, context=RESIDENCE_CARD_CONTEXT),
            "became_foreign_resident_on": p.became,
            "became_foreign_resident_reason": p.became_reason.value,
            "became_foreign_resident_notified_on": became_notified,
            "residence_period_years": years,
            "special_permanent_certificate_issued_on": (
                min(p.became + dt.timedelta(days=own.randint(0, 3650)), self.as_of) if special else None),
            "alphabet_name_kana": p.kana,
        }

    def _resident(self, p: _Person, home: _Home, household_id: int, index: int, nhi_start: dt.date | None,
                  address_search: str) -> dict[str, Any]:
        rng = self.rng
        code = self.ids.juminhyo_code()
        number, number_index = self.ids.my_number()
        ref = p.removed_on or self.as_of
        age = age_on(p.born, ref)
        address_on, address_reason = p.address_on, p.address_reason
        became_notified = _notified(rng, p.became, p.became_reason, ref)
        if address_on == p.became:
            address_notified = became_notified
        else:
            address_notified = _notified(rng, address_on, address_reason, ref)
        # 前住所: the address just before the current one.
        previous: str | None = None
        if address_reason is IdoReason.MOVE_WITHIN:
            previous = home.previous_in_city
        elif p.became_reason in (IdoReason.MOVE_IN, IdoReason.ARRIVAL_FROM_ABROAD):
            if p.became == p.arrived:
                previous = home.previous_address
            elif p.became_reason is IdoReason.ARRIVAL_FROM_ABROAD and p.foreign is not None:
                previous = p.foreign.nationality
            else:
                previous = self.gen.elsewhere()
        # 個別記載事項, each from the day the person qualified (or became a resident, if later).
        ltc = max(_reaches_age(p.born, 65), p.became) if age >= 65 else None
        late = max(_anniversary(p.born, 75), p.became) if age >= 75 else None
        nhi = max(nhi_start, p.became, p.born) if nhi_start is not None and age < 75 else None
        if nhi is not None and nhi > ref:
            nhi = None  # the household joined after this person had left
        # 国民年金 第1号被保険者 only (the register does not record 第2号 and 第3号): students,
        # the self-employed and others on 国民健康保険.
        pension = None
        if 20 <= age < 60 and p.status not in EMPLOYED_STATUSES:
            student = p.status == "留学" or (p.relation in ("子", "孫") and age <= 22 and rng.random() < 0.7)
            if student or (nhi is not None and rng.random() < 0.9):
                pension = max(_reaches_age(p.born, 20), p.became, nhi or p.became)
        allowance = p.allowance if p.removal is None else None
        removed_on: dt.date | None = None
        planned_on: dt.date | None = None
        planned_address = confirmed = removal_reason = None
        if p.removal is not None:
            assert p.removed_on is not None
            removed_on = p.removed_on
            status = RecordStatus.REMOVED.value
            last_reason, last_on = p.removal, removed_on
            if p.removal is IdoReason.MOVE_OUT:
                # 転出届 comes before the move (up to 14 days); the destination then confirms it.
                last_notified = max(removed_on - dt.timedelta(days=rng.randint(0, 14)), address_on)
                planned_address, planned_on, confirmed = p.destination, removed_on, p.destination
            else:
                last_notified = _notified(rng, removed_on, IdoReason.DEATH, self.as_of)
            removal_reason = p.removal.value
        else:
            status = RecordStatus.CURRENT.value
            last_reason, last_on, last_notified = address_reason, address_on, address_notified
        f = p.foreign
        expiry = None
        if f is not None and p.status not in NO_EXPIRY:
            expiry = self.as_of + dt.timedelta(days=rng.randint(20, 3 * 365))
        name, kana = p.name, p.kana
        foreign_items = self._foreign_items(p, code, became_notified, expiry, age)
        return {
            "atena_number": f"{self.tag}{index:09d}",
            "household_id": household_id,
            "juminhyo_code": code,
            "my_number_encrypted": self.cipher.encrypt(number, context=b"my_number"),
            "my_number_index": number_index,
            "my_number_last4": number[-4:],
            "name": name,
            "name_kana": kana,
            "birth_date": p.born,
            "sex": p.sex.value,
            "relationship_to_head": p.relation,
            "is_householder": p.relation == "世帯主",
            "machiaza_code": home.machiaza.code,
            "banchi": home.banchi,
            "katagaki": home.katagaki,
            "honseki": p.honseki,
            "hittosha": p.hittosha,
            "became_resident_on": p.became,
            "became_resident_reason": p.became_reason.value,
            "became_resident_notified_on": became_notified,
            "address_set_on": address_on,
            "address_set_reason": address_reason.value,
            "address_set_notified_on": address_notified,
            "previous_address": previous,
            "planned_moveout_address": planned_address,
            "planned_moveout_on": planned_on,
            "confirmed_moveout_address": confirmed,
            "removed_on": removed_on,
            "removal_reason": removal_reason,
            "removal_notified_on": last_notified if removed_on is not None else None,
            "status": status,
            "nationality": f.nationality if f else None,
            "residence_status": p.status,
            "residence_expiry": expiry,
            "tsusho": p.tsusho,
            "alphabet_name": f"{f.family} {f.given}" if f else None,
            **foreign_items,
            "nhi_since": nhi,
            "late_elderly_since": late,
            "ltc_since": ltc,
            "pension_since": pension,
            "child_allowance_since": allowance,
            "last_reason": last_reason.value,
            "last_changed_on": last_on,
            "last_notified_on": last_notified,
            "updated_at": self.stamp,
            "updated_by": UPDATED_BY,
            "name_search": fold(name),
            "kana_search": fold(kana),
            "address_search": address_search,
        }


# -- writing ----------------------------------------------------------------------------------


def _columns(table: Table, generated: Sequence[str]) -> tuple[str, ...]:
    """The generated columns the table has, in table order; refuses a table that needs more."""
    names = tuple(c.name for c in table.columns if c.name in generated)
    for column in table.columns:
        required = not column.nullable and column.default is None and column.server_default is None
        if required and column.name not in generated and not (column.primary_key and column.autoincrement):
            raise SeedError(f"{table.name}.{column.name} is required but the seed does not fill it")
    return names


class _Writer:
    """Bulk writes in the session's transaction: COPY on PostgreSQL with psycopg 3, INSERT elsewhere."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        dialect = connection.dialect
        self.postgresql = dialect.name == "postgresql"
        self.use_copy = self.postgresql and dialect.driver == "psycopg"
        self._columns: dict[str, tuple[str, ...]] = {}

    def write(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Write the rows (all with the same keys) and empty the list."""
        if not rows:
            return
        columns = self._columns.get(table.name)
        if columns is None:
            columns = self._columns[table.name] = _columns(table, tuple(rows[0]))
        if self.use_copy:
            driver = self.connection.connection.driver_connection
            assert driver is not None
            quote = self.connection.dialect.identifier_preparer.quote
            statement = f"COPY {quote(table.name)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
            with driver.cursor() as cur, cur.copy(statement) as copy:
                for row in rows:
                    copy.write_row([row[c] for c in columns])
        else:
            self.connection.execute(insert(table), [{c: row[c] for c in columns} for row in rows])
        rows.clear()


class _Background:
    """The writer's COPYs in a thread of their own, in order, while the caller builds the next chunk.

    A chunk's COPY returns only once PostgreSQL has taken every row (constraints and indexes included),
    which is mostly the server's time, not this process's: written inline, the seed waited that long
    for every chunk. The caller must not use the connection until ``close`` returns; at most two
    chunks wait (memory stays bounded). A failed write is raised to the caller at its next ``put``
    or at ``close``; the chunks after it are not written.
    """

    def __init__(self, writer: _Writer) -> None:
        self._writer = writer
        self._chunks: queue.Queue[list[tuple[Table, list[dict[str, Any]]]] | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="seed-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            if self._error is None:
                try:
                    for table, rows in chunk:
                        self._writer.write(table, rows)
                except BaseException as exc:  # handed to the caller's thread
                    self._error = exc

    def put(self, chunk: list[tuple[Table, list[dict[str, Any]]]]) -> None:
        """Queue the tables' rows (written in this order), or raise the error of an earlier write."""
        if self._error is not None:
            raise self._error
        self._chunks.put(chunk)

    def close(self) -> None:
        """Wait until every queued chunk is written; raise the error of a failed write."""
        self._chunks.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def _existing_result(session: Session, tag: str, seconds: float) -> SeedResult:
    resident = Resident.__table__.c
    prefix = f"{tag}%"
    counts = session.execute(
        select(
            func.count(),
            func.count().filter(resident.status == RecordStatus.REMOVED.value),
            func.count().filter(resident.nationality.is_not(None)),
            func.count(func.distinct(resident.household_id)),
        ).where(resident.atena_number.like(prefix))
    ).one()
    return SeedResult(residents=counts[0], households=counts[3], removed=counts[1], foreign=counts[2],
                      seconds=seconds, created=False)


def seed_ledger(
    session: Session,
    *,
    residents: int,
    seed: int,
    municipality_code: str,
    field_key: str,
    index_key: str,
    as_of: dt.date | None = None,
    progress: Callable[[int], None] | None = None,
) -> SeedResult:
    """Write ``residents`` synthetic records in realistic households unless this seed is already loaded.

    Nothing is committed: the caller commits (or rolls back) the session's transaction.
    """
    started = time.perf_counter()
    if not 1 <= residents <= MAX_RESIDENTS:
        raise SeedError(f"residents must be between 1 and {MAX_RESIDENTS}")
    if not field_key or not index_key:
        raise SeedError("the field encryption key and the blind index key are required")
    load_machiaza(municipality_code)  # fails early, with a clear message, if there is no address master
    if as_of is None:
        as_of = today_jst()
    tag = _tag(municipality_code, seed)
    connection = session.connection()
    writer = _Writer(connection)
    if writer.postgresql:
        # Household ids are assigned here; keep other writers out until the caller commits.
        connection.execute(text("LOCK TABLE household, resident IN SHARE ROW EXCLUSIVE MODE"))
    resident_table = cast(Table, Resident.__table__)
    household_table = cast(Table, Household.__table__)
    first = atena_number(municipality_code, seed, 0)
    if session.execute(select(resident_table.c.id).where(resident_table.c.atena_number == first)).first():
        return _existing_result(session, tag, time.perf_counter() - started)

    rng = random.Random(f"{municipality_code}:{seed}")  # noqa: S311 - synthetic data, not secrets
    gen = _Generator(rng, municipality_code, as_of)
    taken_codes = set(session.execute(select(resident_table.c.juminhyo_code)).scalars())
    taken_indexes = set(
        session.execute(select(resident_table.c.my_number_index).where(resident_table.c.my_number_index.is_not(None)))
        .scalars()
    )
    ids = _Identifiers(rng, taken_codes, taken_indexes, index_key)
    builder = _RowBuilder(gen, ids, FieldCipher(field_key), municipality_code, seed)
    next_household_id = (session.execute(select(func.max(household_table.c.id))).scalar() or 0) + 1

    written = households = removed = foreign = 0
    household_rows: list[dict[str, Any]] = []
    resident_rows: list[dict[str, Any]] = []

    # On PostgreSQL each chunk is copied in the background while the next one is built (two cores: the
    # server takes one chunk's rows while this process generates and encrypts the next).
    background = _Background(writer) if writer.use_copy else None

    def flush() -> int:
        # Households first: every resident row refers to one.
        count = len(resident_rows)
        if background is not None:
            background.put([(household_table, household_rows[:]), (resident_table, resident_rows[:])])
            household_rows.clear()
            resident_rows.clear()
        else:
            writer.write(household_table, household_rows)
            writer.write(resident_table, resident_rows)
        if progress is not None:
            progress(written + count)
        return count

    try:
        for hh_index in itertools.count():
            if written + len(resident_rows) >= residents:
                break
            members, home = gen.household()
            room = residents - written - len(resident_rows)
            # The last household is cut to fit; the householder always stays.
            members = members[:room]
            household, rows = builder.rows(members, home, next_household_id, hh_index,
                                           written + len(resident_rows))
            next_household_id += 1
            household_rows.append(household)
            resident_rows.extend(rows)
            households += 1
            removed += sum(1 for p in members if p.removal is not None)
            foreign += sum(1 for p in members if p.foreign is not None)
            if len(resident_rows) >= CHUNK:
                written += flush()
        written += flush()
    finally:
        if background is not None:
            background.close()  # every chunk written (or the first failure raised) before the connection is used
    if writer.postgresql:
        connection.execute(text(
            "SELECT setval(pg_get_serial_sequence('household', 'id'), (SELECT max(id) FROM household))"
        ))
    return SeedResult(residents=written, households=households, removed=removed, foreign=foreign,
                      seconds=time.perf_counter() - started, created=True)

