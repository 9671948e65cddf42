"""The address master and the municipality list under data/."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import addressmaster
from core.addressmaster import (
    AddressMasterError,
    Machiaza,
    load_machiaza,
    load_municipalities,
    machiaza_by_code,
    municipality_by_code,
)
from core.checkdigits import is_valid_local_government_code

FULLWIDTH_KATAKANA = re.compile(r"[ァ-ヶー]+")


@pytest.fixture
def fresh_caches() -> Iterator[None]:
    """Forget cached files before and after a test that points the module at other data."""
    for fn in (addressmaster.load_machiaza, addressmaster._machiaza_index, addressmaster.load_municipalities):
        fn.cache_clear()
    yield
    for fn in (addressmaster.load_machiaza, addressmaster._machiaza_index, addressmaster.load_municipalities):
        fn.cache_clear()


@pytest.mark.parametrize(("code", "at_least"), [("032051", 60), ("032069", 30)])
def test_the_address_master_of_a_demo_city_lists_enough_machiaza(code: str, at_least: int) -> None:
    machiaza = load_machiaza(code)
    assert len(machiaza) >= at_least
    assert all(isinstance(m, Machiaza) for m in machiaza)


@pytest.mark.parametrize("code", ["032051", "032069"])
def test_every_machiaza_has_a_unique_prefixed_code_katakana_reading_and_seven_digit_postal_code(code: str) -> None:
    machiaza = load_machiaza(code)
    codes = [m.code for m in machiaza]
    assert len(set(codes)) == len(codes)
    for m in machiaza:
        assert re.fullmatch(rf"{code}\d{{4}}", m.code), m
        assert FULLWIDTH_KATAKANA.fullmatch(m.kana), m
        assert re.fullmatch(r"\d{7}", m.postal_code), m
        assert m.name and m.name == m.name.strip()
    names = [m.name for m in machiaza]
    assert len(set(names)) == len(names)


def test_the_hanamaki_master_holds_well_known_machiaza_with_their_readings_and_postal_codes() -> None:
    by_name = {m.name: m for m in load_machiaza("032051")}
    # Readings and postal codes as published by Japan Post for 花巻市.
    assert (by_name["花城町"].kana, by_name["花城町"].postal_code) == ("カジョウマチ", "0250075")
    assert (by_name["東町"].kana, by_name["東町"].postal_code) == ("アズマチョウ", "0250088")
    assert by_name["大迫町大迫"].postal_code == "0283203"
    assert by_name["石鳥谷町好地"].kana == "イシドリヤチョウコウチ"
    assert by_name["東和町土沢"].postal_code == "0280114"
    assert by_name["大通り一丁目"].kana == "オオドオリイッチョウメ"


def test_the_postal_codes_of_hanamaki_and_kitakami_are_their_own() -> None:
    assert all(m.postal_code[:3] in {"025", "028"} for m in load_machiaza("032051"))
    assert all(m.postal_code.startswith("024") for m in load_machiaza("032069"))


def test_machiaza_by_code_finds_a_listed_machiaza_and_nothing_else() -> None:
    first = load_machiaza("032051")[0]
    assert machiaza_by_code("032051", first.code) == first
    assert machiaza_by_code("032051", "0320519999") is None
    assert machiaza_by_code("032069", first.code) is None


def test_a_municipality_without_an_address_master_is_refused_with_a_clear_error() -> None:
    # 032018 (盛岡市) is a valid code for which no master is shipped.
    with pytest.raises(AddressMasterError, match="no address master for municipality 032018"):
        load_machiaza("032018")


@pytest.mark.parametrize("code", ["032052", "../032051", "03205", "０３２０５１", "032051.csv"])
def test_a_malformed_municipality_code_never_reaches_the_file_system(code: str) -> None:
    with pytest.raises(AddressMasterError, match="not a valid 6-digit local government code"):
        load_machiaza(code)


def _write(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)


def test_a_master_with_a_wrong_header_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_caches: None
) -> None:
    monkeypatch.setattr(addressmaster, "DATA_DIR", tmp_path)
    _write(tmp_path / "address" / "032051.csv", [["code", "name"], ["0320510001", "花城町"]])
    with pytest.raises(AddressMasterError, match="header"):
        load_machiaza("032051")


def test_a_master_with_a_duplicate_code_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_caches: None
) -> None:
    monkeypatch.setattr(addressmaster, "DATA_DIR", tmp_path)
    header = ["code", "name", "kana", "postal_code"]
    row = ["0320510001", "花城町", "カジョウマチ", "0250075"]
    _write(tmp_path / "address" / "032051.csv", [header, row, row])
    with pytest.raises(AddressMasterError, match="appears twice"):
        load_machiaza("032051")


def test_a_master_with_a_blank_column_or_bad_postal_code_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_caches: None
) -> None:
    monkeypatch.setattr(addressmaster, "DATA_DIR", tmp_path)
    header = ["code", "name", "kana", "postal_code"]
    _write(tmp_path / "address" / "032051.csv", [header, ["0320510001", "花城町", "", "0250075"]])
    with pytest.raises(AddressMasterError, match="filled in"):
        load_machiaza("032051")
    load_machiaza.cache_clear()
    _write(tmp_path / "address" / "032051.csv", [header, ["0320510001", "花城町", "カジョウマチ", "025-0075"]])
    with pytest.raises(AddressMasterError, match="not 7 digits"):
        load_machiaza("032051")


def test_every_municipality_code_in_the_file_has_a_valid_check_digit() -> None:
    municipalities = load_municipalities()
    assert municipalities
    bad = [m.code for m in municipalities if not is_valid_local_government_code(m.code)]
    assert bad == []


def test_the_municipality_file_lists_all_thirty_three_municipalities_of_iwate_once() -> None:
    municipalities = load_municipalities()
    iwate = [m for m in municipalities if m.prefecture == "岩手県"]
    assert len(iwate) == 33
    assert len({m.code for m in iwate}) == 33
    assert sum(m.name.endswith("市") for m in iwate) == 14
    assert sum(m.name.endswith("町") for m in iwate) == 15
    assert sum(m.name.endswith("村") for m in iwate) == 4
    assert all(FULLWIDTH_KATAKANA.fullmatch(m.kana) for m in iwate)


def test_municipality_by_code_finds_the_demo_cities() -> None:
    hanamaki = municipality_by_code("032051")
    kitakami = municipality_by_code("032069")
    assert hanamaki is not None and (hanamaki.name, hanamaki.kana) == ("花巻市", "ハナマキシ")
    assert kitakami is not None and kitakami.name == "北上市"
    assert municipality_by_code("131016") is None


def test_a_municipality_file_with_a_bad_check_digit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_caches: None
) -> None:
    monkeypatch.setattr(addressmaster, "DATA_DIR", tmp_path)
    header = ["code", "prefecture", "name", "kana"]
    _write(tmp_path / "municipalities.csv", [header, ["032052", "岩手県", "花巻市", "ハナマキシ"]])
    with pytest.raises(AddressMasterError, match="032052"):
        load_municipalities()
