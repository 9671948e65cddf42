"""The synthetic ledger generator, against real PostgreSQL and SQLite databases."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session

from backoffice.demo.seed import SeedResult, atena_number, seed_ledger
from backoffice.models import Household, IdoReason, RecordStatus, Resident
from core.addressmaster import DATA_DIR, load_machiaza
from core.checkdigits import is_valid_juminhyo_code, is_valid_my_number
from core.fieldcrypto import FieldCipher, blind_index
from core.textfold import fold
from tests.conftest import SECRETS, create_pg_database, drop_pg_database, migrate

FIELD_KEY = "field-key-for-seed-tests-" + "0" * 16
INDEX_KEY = "index-key-for-seed-tests-" + "1" * 16
AS_OF = dt.date(2025, 6, 1)
CITY = "032051"
POPULATION = 5000
KATAKANA = re.compile(r"[ァ-ヶー・]+")
FULLWIDTH_SPACE = "\u3000"


# -- throwaway databases, built by the migrations as the suite's own are -------------------------

DatabaseFactory = Callable[[], Engine]


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def make_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DatabaseFactory]:
    """Hands out fresh empty ledgers on one backend and drops them all at the end."""
    from backoffice import create_app

    backend: str = request.param
    engines: list[tuple[Engine, str]] = []

    def make() -> Engine:
        if backend == "postgresql":
            url = create_pg_database("seedtest")
        else:
            url = f"sqlite:///{tmp_path_factory.mktemp('seed') / 'ledger.db'}"
        migrate(create_app, {"APP_ENV": "test", "BACKOFFICE_DATABASE_URL": url, **SECRETS})
        engine = create_engine(url)
        engines.append((engine, url))
        return engine

    yield make
    for engine, url in engines:
        engine.dispose()
        if backend == "postgresql":
            drop_pg_database(url)


def _seed(engine: Engine, *, seed: int, residents: int = POPULATION) -> SeedResult:
    with Session(engine) as session:
        result = seed_ledger(session, residents=residents, seed=seed, municipality_code=CITY, field_key=FIELD_KEY,
                             index_key=INDEX_KEY, as_of=AS_OF)
        session.commit()
    return result


@pytest.fixture(scope="module")
def ledger(make_database: DatabaseFactory) -> tuple[Engine, SeedResult]:
    """One ledger of 5,000 generated residents, shared by the read-only checks."""
    engine = make_database()
    return engine, _seed(engine, seed=1)


def _rows(engine: Engine) -> list[Resident]:
    with Session(engine) as session:
        return list(session.scalars(select(Resident).order_by(Resident.atena_number)))


def _households(engine: Engine) -> dict[int, Household]:
    with Session(engine) as session:
        return {h.id: h for h in session.scalars(select(Household))}


def _fingerprint(engine: Engine) -> str:
    """A hash of every generated row in order, leaving out surrogate ids and the random-nonce ciphertext."""
    resident = Resident.__table__
    skip = {"id", "household_id", "my_number_encrypted", "residence_card_number_encrypted"}
    columns = [c for c in resident.columns if c.name not in skip]
    digest = hashlib.sha256()
    with engine.connect() as conn:
        query = (
            select(Household.household_number, Household.householder_name, *columns)
            .join_from(resident, Household.__table__, resident.c.household_id == Household.id)
            .order_by(resident.c.atena_number)
        )
        for row in conn.execute(query):
            digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


def _age(born: dt.date, on: dt.date = AS_OF) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _birthday(born: dt.date, years: int) -> dt.date:
    # Someone born on 29 February has the birthday on 1 March in common years.
    if (born.month, born.day) == (2, 29) and not (born.year + years) % 4 == 0:
        return dt.date(born.year + years, 3, 1)
    return born.replace(year=born.year + years)


# -- determinism and idempotency --------------------------------------------------------------


def test_the_same_seed_writes_the_same_rows(make_database: DatabaseFactory) -> None:
    first, second = make_database(), make_database()
    a = _seed(first, seed=42, residents=2000)
    b = _seed(second, seed=42, residents=2000)
    assert a.created and b.created
    assert (a.residents, a.households, a.removed, a.foreign) == (b.residents, b.households, b.removed, b.foreign)
    assert _fingerprint(first) == _fingerprint(second)


def test_another_seed_writes_other_rows_beside_the_first(make_database: DatabaseFactory) -> None:
    engine, other = make_database(), make_database()
    _seed(engine, seed=42, residents=2000)
    _seed(other, seed=43, residents=2000)
    assert _fingerprint(engine) != _fingerprint(other)
    # Both seeds fit in one ledger: no identifier of one collides with the other's.
    result = _seed(engine, seed=43, residents=2000)
    assert result.created
    with Session(engine) as session:
        assert session.scalar(select(func.count(Resident.id))) == 4000
        assert session.scalar(select(func.count(func.distinct(Resident.atena_number)))) == 4000


def test_seeding_twice_with_the_same_seed_changes_nothing(make_database: DatabaseFactory) -> None:
    engine = make_database()
    first = _seed(engine, seed=5, residents=1500)
    before = _fingerprint(engine)
    again = _seed(engine, seed=5, residents=1500)
    bigger = _seed(engine, seed=5, residents=3000)
    assert first.created and not again.created and not bigger.created
    for repeat in (again, bigger):
        assert (repeat.residents, repeat.households, repeat.removed, repeat.foreign) == (
            first.residents, first.households, first.removed, first.foreign)
    assert _fingerprint(engine) == before
    with Session(engine) as session:
        assert session.scalar(select(func.count(Resident.id))) == 1500
        assert session.scalar(select(func.count(Household.id))) == first.households


def test_nothing_is_kept_unless_the_caller_commits(make_database: DatabaseFactory) -> None:
    engine = make_database()
    with Session(engine) as session:
        result = seed_ledger(session, residents=300, seed=9, municipality_code=CITY, field_key=FIELD_KEY,
                             index_key=INDEX_KEY, as_of=AS_OF)
        assert result.created and result.residents == 300
        session.rollback()
    with Session(engine) as session:
        assert session.scalar(select(func.count(Resident.id))) == 0
        assert session.scalar(select(func.count(Household.id))) == 0
    assert _seed(engine, seed=9, residents=300).created


def test_a_chunk_that_fails_to_be_written_fails_the_seed_and_nothing_is_kept(
    make_database: DatabaseFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On PostgreSQL the chunks are written in the background while the next is built: a failed write
    # must still fail the seed (not report 300 residents written), and the caller's rollback keep nothing.
    import backoffice.demo.seed as seed_module

    written = seed_module._Writer.write
    calls = []

    def failing(self: Any, table: Any, rows: list[dict[str, Any]]) -> None:
        calls.append(table.name)
        if len(calls) == 5:  # the third chunk's households
            raise RuntimeError("the disk is full")
        written(self, table, rows)

    monkeypatch.setattr(seed_module, "CHUNK", 100)
    monkeypatch.setattr(seed_module._Writer, "write", failing)
    engine = make_database()
    with Session(engine) as session:
        with pytest.raises(RuntimeError, match="the disk is full"):
            seed_ledger(session, residents=1000, seed=12, municipality_code=CITY, field_key=FIELD_KEY,
                        index_key=INDEX_KEY, as_of=AS_OF)
        session.rollback()
    assert calls[:5] == ["household", "resident", "household", "resident", "household"]
    with Session(engine) as session:
        assert session.scalar(select(func.count(Resident.id))) == 0
        assert session.scalar(select(func.count(Household.id))) == 0


def test_households_seeded_after_existing_ones_get_fresh_ids(make_database: DatabaseFactory) -> None:
    engine = make_database()
    _seed(engine, seed=11, residents=200)
    _seed(engine, seed=12, residents=200)
    with Session(engine) as session:
        ids = list(session.scalars(select(Household.id).order_by(Household.id)))
        assert ids == list(range(1, len(ids) + 1))
        # The id sequence was moved past the seeded ids, so an ordinary insert still works.
        session.add(Household(household_number="TEST-AFTER-SEED", householder_name="花巻　太郎",
                              created_at=dt.datetime.now(dt.UTC)))
        session.commit()


# -- the shape of one seeded ledger -----------------------------------------------------------


def test_the_requested_number_of_records_is_written(ledger: tuple[Engine, SeedResult]) -> None:
    engine, result = ledger
    rows = _rows(engine)
    assert result.created and result.residents == POPULATION == len(rows)
    assert result.households == len(_households(engine))
    assert result.removed == sum(r.status is RecordStatus.REMOVED for r in rows)
    assert result.foreign == sum(r.nationality is not None for r in rows)
    assert rows[0].atena_number == atena_number(CITY, 1, 0)
    assert all(len(r.atena_number) == 15 and r.atena_number.isdigit() for r in rows)


def test_every_my_number_and_juminhyo_code_has_a_valid_check_digit_and_is_unique(
    ledger: tuple[Engine, SeedResult],
) -> None:
    engine, _ = ledger
    cipher = FieldCipher(FIELD_KEY)
    numbers = []
    rows = _rows(engine)
    for r in rows:
        assert r.my_number_encrypted is not None
        number = cipher.decrypt(r.my_number_encrypted, context=b"my_number")
        assert is_valid_my_number(number), r.atena_number
        assert r.my_number_index == blind_index(INDEX_KEY, number, purpose="my_number")
        if "my_number_last4" in Resident.__table__.c:
            assert r.my_number_last4 == number[-4:]  # type: ignore[attr-defined]
        assert is_valid_juminhyo_code(r.juminhyo_code), r.atena_number
        numbers.append(number)
    assert len(set(numbers)) == len(rows)
    assert len({r.juminhyo_code for r in rows}) == len(rows)


def test_no_my_number_is_stored_in_plaintext_anywhere_in_its_row(ledger: tuple[Engine, SeedResult]) -> None:
    engine, _ = ledger
    cipher = FieldCipher(FIELD_KEY)
    with engine.connect() as conn:
        rows = conn.execute(select(Resident.__table__)).mappings().all()
    assert rows
    for row in rows:
        number = cipher.decrypt(row["my_number_encrypted"], context=b"my_number")
        for column, value in row.items():
            if isinstance(value, bytes):
                assert number.encode() not in value, column
            elif value is not None:
                assert number not in str(value), column
                if column != "my_number_last4":
                    assert fold(number) not in fold(str(value)), column


def test_every_household_has_exactly_one_householder_whose_name_it_carries(ledger: tuple[Engine, SeedResult]) -> None:
    engine, _ = ledger
    members: defaultdict[int, list[Resident]] = defaultdict(list)
    for r in _rows(engine):
        members[r.household_id].append(r)
    households = _households(engine)
    assert set(members) == set(households)
    for household_id, people in members.items():
        heads = [p for p in people if p.is_householder]
        assert len(heads) == 1, household_id
        assert heads[0].relationship_to_head == "世帯主"
        assert all(p.relationship_to_head != "世帯主" for p in people if not p.is_householder)
        assert households[household_id].householder_name == heads[0].name
        # One address per household.
        assert len({(p.machiaza_code, p.banchi, p.katagaki) for p in people}) == 1


def test_households_have_realistic_sizes_and_relationships(ledger: tuple[Engine, SeedResult]) -> None:
    engine, result = ledger
    rows = _rows(engine)
    sizes = Counter(Counter(r.household_id for r in rows).values())
    assert 2.0 <= POPULATION / result.households <= 2.8
    assert sizes[1] / result.households > 0.25  # many people live alone, as in the census
    assert max(sizes) >= 5  # and some households span three generations
    relations = {r.relationship_to_head for r in rows}
    assert {"世帯主", "妻", "子", "母", "孫", "子の妻"} <= relations
    assert relations <= {"世帯主", "妻", "夫", "子", "父", "母", "孫", "子の妻"}
    size_of = Counter(r.household_id for r in rows)
    alone_elderly = [r for r in rows if size_of[r.household_id] == 1 and _age(r.birth_date) >= 65]
    assert len(alone_elderly) > result.households * 0.1


def test_spouses_and_children_share_the_family_name_and_spouses_are_of_similar_age(
    ledger: tuple[Engine, SeedResult],
) -> None:
    engine, _ = ledger
    by_household: defaultdict[int, list[Resident]] = defaultdict(list)
    for r in _rows(engine):
        by_household[r.household_id].append(r)
    checked = 0
    for people in by_household.values():
        head = next(p for p in people if p.is_householder)
        if head.nationality is not None:
            continue
        family, family_kana = head.name.split(FULLWIDTH_SPACE)[0], head.name_kana.split(FULLWIDTH_SPACE)[0]
        for p in people:
            if p.nationality is None and p.relationship_to_head in ("妻", "夫", "子", "孫", "子の妻", "父", "母"):
                assert p.name.split(FULLWIDTH_SPACE)[0] == family, (head.name, p.name)
                assert p.name_kana.split(FULLWIDTH_SPACE)[0] == family_kana, (head.name_kana, p.name_kana)
                checked += 1
            if p.relationship_to_head in ("妻", "夫"):
                assert abs(_age(p.birth_date) - _age(head.birth_date)) <= 8
            if p.relationship_to_head == "子":
                assert _age(head.birth_date) - _age(p.birth_date) >= 16
    assert checked > POPULATION / 3


def test_names_are_written_family_then_given_with_a_fullwidth_space_and_kana_in_katakana(
    ledger: tuple[Engine, SeedResult],
) -> None:
    engine, _ = ledger
    for r in _rows(engine):
        parts = r.name.split(FULLWIDTH_SPACE)
        kana_parts = r.name_kana.split(FULLWIDTH_SPACE)
        assert len(parts) == 2 and all(parts), r.name
        assert len(kana_parts) == 2 and all(KATAKANA.fullmatch(k) for k in kana_parts), r.name_kana
        assert r.name_search == fold(r.name)
        assert r.kana_search == fold(r.name_kana)


def test_about_two_percent_are_foreign_residents_with_their_own_items(ledger: tuple[Engine, SeedResult]) -> None:
    engine, _ = ledger
    rows = _rows(engine)
    foreign = [r for r in rows if r.nationality is not None]
    assert 0.01 <= len(foreign) / len(rows) <= 0.03
    statuses = {row["status"] for row in _read("residence_status.csv")}
    for r in foreign:
        assert r.alphabet_name and r.alphabet_name == r.alphabet_name.upper()
        assert r.residence_status in statuses
        assert (r.residence_expiry is None) == (r.residence_status in ("永住者", "特別永住者"))
        if r.residence_expiry is not None and r.status is RecordStatus.CURRENT:
            assert r.residence_expiry > AS_OF
        assert r.honseki is None and r.hittosha is None
        assert KATAKANA.fullmatch(r.name.replace(FULLWIDTH_SPACE, ""))
        # 第30条の45: the category, the card number (encrypted), the day and reason they became a foreign resident.
        assert r.foreign_resident_category == ("特別永住者" if r.residence_status == "特別永住者" else "中長期在留者")
        assert r.residence_card_number_encrypted is not None
        assert r.became_foreign_resident_on == r.became_resident_on
        assert r.became_foreign_resident_reason == r.became_resident_reason.value
        assert (r.residence_period_years is not None) == (r.residence_expiry is not None)
        assert r.alphabet_name_kana == r.name_kana and r.electoral_roll is None
    for r in rows:
        if r.nationality is None:
            assert r.honseki and r.hittosha and r.alphabet_name is None and r.residence_status is None
            assert r.foreign_resident_category is None and r.residence_card_number_encrypted is None
            assert r.electoral_roll is not None
            assert r.honseki.startswith(("岩手県", "宮城県", "東京都", "神奈川県", "埼玉県", "秋田県", "青森県",
                                         "北海道", "福島県"))
    assert any(r.tsusho for r in foreign)


def test_removed_records_are_present_and_kept_with_their_removal(ledger: tuple[Engine, SeedResult]) -> None:
    engine, _ = ledger
    rows = _rows(engine)
    removed = [r for r in rows if r.status is RecordStatus.REMOVED]
    assert 0.01 <= len(removed) / len(rows) <= 0.06
    assert {r.removal_reason for r in removed} == {IdoReason.MOVE_OUT, IdoReason.DEATH}
    for r in removed:
        assert r.removed_on is not None and r.address_set_on <= r.removed_on < AS_OF
        assert r.last_reason is r.removal_reason and r.last_changed_on == r.removed_on
        if r.removal_reason is IdoReason.MOVE_OUT:
            assert r.confirmed_moveout_address
        else:
            assert _age(r.birth_date, r.removed_on) >= 70
    for r in rows:
        if r.status is RecordStatus.CURRENT:
            assert r.removed_on is None and r.removal_reason is None
    # A household that moved away together went to one place.
    moves: defaultdict[tuple[int, dt.date], set[str | None]] = defaultdict(set)
    for r in removed:
        if r.removal_reason is IdoReason.MOVE_OUT and r.removed_on is not None:
            moves[(r.household_id, r.removed_on)].add(r.confirmed_moveout_address)
    assert all(len(places) == 1 for places in moves.values())
    assert any(r.is_householder for r in removed)  # some whole households left


def test_the_age_pyramid_looks_like_a_small_tohoku_city(ledger: tuple[Engine, SeedResult]) -> None:
    engine, _ = ledger
    ages = [_age(r.birth_date) for r in _rows(engine) if r.status is RecordStatus.CURRENT]

    def share(lo: int, hi: int) -> float:
        return sum(lo <= a <= hi for a in ages) / len(ages)

    assert 0.25 <= share(65, 200) <= 0.35
    assert share(45, 75) > share(0, 29)
    assert 0.08 <= share(0, 14) <= 0.16
    assert share(100, 200) < 0.005
    assert min(ages) >= 0


def test_every_machiaza_code_exists_in_the_address_master_and_addresses_spread_over_it(
    ledger: tuple[Engine, SeedResult],
) -> None:
    engine, _ = ledger
    master = {m.code: m for m in load_machiaza(CITY)}
    rows = _rows(engine)
    used = {r.machiaza_code for r in rows}
    assert used <= set(master)
    assert len(used) > len(master) / 2
    for r in rows:
        m = master[r.machiaza_code]
        assert re.fullmatch(r"\d+番\d+号" if m.name.endswith("丁目") else r"\d+番地(\d+)?", r.banchi), r.banchi
        assert r.address_search == fold(m.name + r.banchi)
    assert any(r.katagaki and r.katagaki.endswith("号室") for r in rows)


def test_dates_follow_from_birth_and_the_reason_matches(ledger: tuple[Engine, SeedResult]) -> None:
    engine, _ = ledger
    for r in _rows(engine):
        assert r.birth_date <= r.became_resident_on <= r.address_set_on <= AS_OF, r.atena_number
        assert (r.became_resident_reason is IdoReason.BIRTH) == (r.became_resident_on == r.birth_date)
        assert r.became_resident_reason in (IdoReason.BIRTH, IdoReason.MOVE_IN, IdoReason.ARRIVAL_FROM_ABROAD)
        if r.address_set_on > r.became_resident_on:
            assert r.address_set_reason is IdoReason.MOVE_WITHIN and r.previous_address
        else:
            assert r.address_set_reason is r.became_resident_reason
        if r.became_resident_reason is IdoReason.MOVE_IN:
            assert r.previous_address
        for notified, day in ((r.became_resident_notified_on, r.became_resident_on),
                              (r.address_set_notified_on, r.address_set_on)):
            assert notified is not None and day <= notified <= day + dt.timedelta(days=14)
        if r.status is RecordStatus.CURRENT:
            assert (r.last_reason, r.last_changed_on) == (r.address_set_reason, r.address_set_on)
        assert r.updated_by == "seed"


def test_status_items_follow_age_and_household(ledger: tuple[Engine, SeedResult]) -> None:
    engine, _ = ledger
    rows = _rows(engine)
    by_household: defaultdict[int, list[Resident]] = defaultdict(list)
    for r in rows:
        by_household[r.household_id].append(r)
    for r in rows:
        on = r.removed_on or AS_OF
        age = _age(r.birth_date, on)
        # 介護保険 from the day before the 65th birthday, 後期高齢者医療 from the 75th birthday.
        assert (r.ltc_since is not None) == (age >= 65), r.atena_number
        assert (r.late_elderly_since is not None) == (age >= 75), r.atena_number
        if r.ltc_since is not None:
            day_before = _birthday(r.birth_date, 65) - dt.timedelta(days=1)
            assert r.ltc_since == max(day_before, r.became_resident_on)
        if r.late_elderly_since is not None:
            assert r.nhi_since is None  # 後期高齢者医療 replaces 国民健康保険
            assert r.late_elderly_since == max(_birthday(r.birth_date, 75), r.became_resident_on)
        if r.pension_since is not None:
            assert 20 <= age < 60
        if r.child_allowance_since is not None:
            kids = [k for k in by_household[r.household_id] if k.status is RecordStatus.CURRENT
                    and _age(k.birth_date) < 19 and k.relationship_to_head in ("子", "孫")]
            assert kids and r.child_allowance_since <= AS_OF
        for since in (r.nhi_since, r.pension_since, r.child_allowance_since):
            assert since is None or r.became_resident_on <= since <= on
    current = [r for r in rows if r.status is RecordStatus.CURRENT]
    assert any(r.nhi_since for r in current if 65 <= _age(r.birth_date) < 75)
    assert any(r.pension_since for r in current)
    # Households with young children have the allowance recorded on a parent.
    young = [h for h, people in by_household.items()
             if any(p.relationship_to_head == "子" and _age(p.birth_date) < 15 and p.status is RecordStatus.CURRENT
                    for p in people)]
    assert young
    with_allowance = [h for h in young if any(p.child_allowance_since for p in by_household[h])]
    assert len(with_allowance) / len(young) > 0.9


def test_japanese_residents_carry_a_plausible_honseki_and_hittosha(ledger: tuple[Engine, SeedResult]) -> None:
    engine, _ = ledger
    for r in _rows(engine):
        if r.nationality is None:
            assert r.honseki is not None and r.honseki.endswith("番地")
            assert r.hittosha is not None and FULLWIDTH_SPACE in r.hittosha
            # The head of one's family register bears one's family name.
            assert r.hittosha.split(FULLWIDTH_SPACE)[0] == r.name.split(FULLWIDTH_SPACE)[0]


# -- arguments and reference data -------------------------------------------------------------


@pytest.mark.parametrize("residents", [0, -1])
def test_a_non_positive_number_of_residents_is_refused(make_database: DatabaseFactory, residents: int) -> None:
    engine = make_database()
    with Session(engine) as session, pytest.raises(ValueError, match="residents"):
        seed_ledger(session, residents=residents, seed=1, municipality_code=CITY, field_key=FIELD_KEY,
                    index_key=INDEX_KEY, as_of=AS_OF)


def test_a_municipality_without_an_address_master_is_refused(make_database: DatabaseFactory) -> None:
    engine = make_database()
    with Session(engine) as session, pytest.raises(LookupError, match="032018"):
        seed_ledger(session, residents=10, seed=1, municipality_code="032018", field_key=FIELD_KEY,
                    index_key=INDEX_KEY, as_of=AS_OF)


def test_kitakami_can_be_seeded_from_its_own_master(make_database: DatabaseFactory) -> None:
    engine = make_database()
    with Session(engine) as session:
        result = seed_ledger(session, residents=500, seed=1, municipality_code="032069", field_key=FIELD_KEY,
                             index_key=INDEX_KEY, as_of=AS_OF)
        session.commit()
        codes = set(session.scalars(select(Resident.machiaza_code)))
    assert result.residents == 500
    assert codes <= {m.code for m in load_machiaza("032069")}


def _read(name: str) -> list[dict[str, Any]]:
    with (DATA_DIR / "names" / name).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_the_name_lists_are_large_enough_and_read_in_katakana() -> None:
    surnames = _read("surnames.csv")
    assert len(surnames) >= 150 and len({s["kanji"] for s in surnames}) == len(surnames)
    assert all(KATAKANA.fullmatch(s["kana"]) and float(s["weight"]) > 0 for s in surnames)
    for iwate in ("佐藤", "高橋", "佐々木", "千葉", "菊池", "阿部", "及川", "小原", "藤原", "八重樫", "照井", "伊藤",
                  "鈴木", "瀬川", "畠山"):
        assert any(s["kanji"] == iwate for s in surnames), iwate
    for file in ("given_male.csv", "given_female.csv"):
        given = _read(file)
        assert len(given) >= 60
        assert all(KATAKANA.fullmatch(g["kana"]) for g in given)
        assert Counter(g["era"] for g in given).keys() == {"old", "mid", "young"}
        assert min(Counter(g["era"] for g in given).values()) >= 15
    foreign = _read("foreign.csv")
    assert len(foreign) >= 40
    assert all(KATAKANA.fullmatch(f["kana_family"]) and KATAKANA.fullmatch(f["kana_given"]) for f in foreign)
    assert {"ベトナム", "中国", "フィリピン", "韓国", "ネパール", "インドネシア", "ミャンマー", "アメリカ合衆国"} <= {
        f["nationality"] for f in foreign}
    statuses = [r["status"] for r in _read("residence_status.csv")]
    expected = {"永住者", "技能実習", "特定技能", "留学", "技術・人文知識・国際業務", "家族滞在", "日本人の配偶者等",
                "定住者", "特別永住者"}
    assert set(statuses) == expected

