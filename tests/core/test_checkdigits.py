"""Check digits of 個人番号, 住民票コード and 地方公共団体コード."""

from __future__ import annotations

import random

import pytest

from core.checkdigits import (
    is_valid_juminhyo_code,
    is_valid_local_government_code,
    is_valid_my_number,
    juminhyo_code_check_digit,
    local_government_code_check_digit,
    make_juminhyo_code,
    make_my_number,
    my_number_check_digit,
)

# Worked by hand from the formula, not by the code under test:
#   123456789018: digits from the right 1,0,9,8,7,6,5,4,3,2,1 × weights 2,3,4,5,6,7,2,3,4,5,6
#   = 2+0+36+40+42+42+10+12+12+10+6 = 212; 212 mod 11 = 3; 11 - 3 = 8.
#   983205673214: 9,8,3,2,0,5,6,7,3,2,1 × 6,5,4,3,2,7,6,5,4,3,2 (from the left)
#   = 54+40+12+6+0+35+36+35+12+6+2 = 238; 238 mod 11 = 7; 11 - 7 = 4.
VALID_MY_NUMBERS = ("123456789018", "983205673214")
#   1234567890 + ?: from the right 0,9,8,7,6,5,4,3,2,1 × 2,3,4,5,6,7,2,3,4,5
#   = 0+27+32+35+36+35+8+9+8+5 = 195; 195 mod 11 = 8; 11 - 8 = 3.
VALID_JUMINHYO_CODES = ("12345678903",)

NOT_ASCII_DIGITS = (
    "１２３４５６７８９０１８",  # full-width digits
    "١٢٣٤٥٦٧٨٩٠١٨",  # Arabic-Indic digits, which int() would accept
    "12345678901８",
    "1234 5678 9018",
    "1234-5678-9018",
    "12345678901a",
    " 123456789018",
    "",
)


def _one_digit_changes(value: str) -> list[str]:
    return [value[:i] + d + value[i + 1 :] for i in range(len(value)) for d in "0123456789" if d != value[i]]


def _adjacent_transpositions(value: str) -> list[str]:
    return [
        value[:i] + value[i + 1] + value[i] + value[i + 2 :] for i in range(len(value) - 1) if value[i] != value[i + 1]
    ]


@pytest.mark.parametrize("number", VALID_MY_NUMBERS)
def test_a_published_sample_my_number_is_valid(number: str) -> None:
    assert is_valid_my_number(number)
    assert my_number_check_digit(number[:11]) == int(number[11])
    assert make_my_number(number[:11]) == number


def test_a_remainder_of_zero_or_one_gives_the_check_digit_zero() -> None:
    # 6 × 2 = 12 ≡ 1 (mod 11) → 0; 5 × 2 = 10 → 11 - 10 = 1; all zeros ≡ 0 → 0.
    assert my_number_check_digit("00000000006") == 0
    assert my_number_check_digit("00000000005") == 1
    assert my_number_check_digit("00000000000") == 0
    assert juminhyo_code_check_digit("0000000006") == 0
    assert juminhyo_code_check_digit("0000000005") == 1


def test_the_weights_restart_at_two_after_the_sixth_digit_from_the_right() -> None:
    # The 7th digit from the right weighs 2, the 6th weighs 7: 1 × 2 = 2 → 9; 1 × 7 = 7 → 4.
    assert my_number_check_digit("00001000000") == 9
    assert my_number_check_digit("00000100000") == 4
    # The leftmost (11th) digit weighs 6: 6 → 11 - 6 = 5.
    assert my_number_check_digit("10000000000") == 5


@pytest.mark.parametrize("number", VALID_MY_NUMBERS)
def test_a_my_number_with_one_digit_changed_is_refused(number: str) -> None:
    changed = _one_digit_changes(number)
    assert len(changed) == 12 * 9
    assert not [c for c in changed if is_valid_my_number(c)]


@pytest.mark.parametrize("number", VALID_MY_NUMBERS)
def test_a_my_number_with_two_adjacent_digits_swapped_is_refused(number: str) -> None:
    swapped = _adjacent_transpositions(number)
    assert swapped
    assert not [s for s in swapped if is_valid_my_number(s)]


def test_most_adjacent_swaps_in_random_my_numbers_are_caught() -> None:
    # The formula maps remainders 0 and 1 to the same digit, so a few swaps slip through; the
    # rest must be caught. 2,000 random numbers keep this fast but statistically firm.
    rng = random.Random(20240201)
    caught = total = 0
    for _ in range(2000):
        number = make_my_number("".join(rng.choice("0123456789") for _ in range(11)))
        for swapped in _adjacent_transpositions(number):
            total += 1
            caught += not is_valid_my_number(swapped)
    assert caught / total > 0.95


def test_the_formula_cannot_tell_remainder_zero_from_remainder_one() -> None:
    # A documented blind spot of the published formula, kept here so nobody "fixes" it into a
    # check that refuses real numbers: both of these are valid 個人番号 shapes.
    assert is_valid_my_number("000000000060")
    assert is_valid_my_number("000000000000")


@pytest.mark.parametrize("value", NOT_ASCII_DIGITS)
def test_a_my_number_that_is_not_twelve_ascii_digits_is_refused(value: str) -> None:
    assert not is_valid_my_number(value)


@pytest.mark.parametrize("value", ["12345678901", "1234567890189", "1"])
def test_a_my_number_of_the_wrong_length_is_refused(value: str) -> None:
    assert not is_valid_my_number(value)


@pytest.mark.parametrize("body", ["1234567890", "123456789012", "１２３４５６７８９０１", "1234567890x"])
def test_a_my_number_body_that_is_not_eleven_ascii_digits_cannot_be_completed(body: str) -> None:
    with pytest.raises(ValueError):
        make_my_number(body)
    with pytest.raises(ValueError):
        my_number_check_digit(body)


@pytest.mark.parametrize("code", VALID_JUMINHYO_CODES)
def test_a_worked_example_juminhyo_code_is_valid(code: str) -> None:
    assert is_valid_juminhyo_code(code)
    assert make_juminhyo_code(code[:10]) == code


@pytest.mark.parametrize("code", VALID_JUMINHYO_CODES)
def test_a_juminhyo_code_with_one_digit_changed_is_refused(code: str) -> None:
    changed = _one_digit_changes(code)
    assert len(changed) == 11 * 9
    assert not [c for c in changed if is_valid_juminhyo_code(c)]


@pytest.mark.parametrize("code", VALID_JUMINHYO_CODES)
def test_a_juminhyo_code_with_two_adjacent_digits_swapped_is_refused(code: str) -> None:
    swapped = _adjacent_transpositions(code)
    assert swapped
    assert not [s for s in swapped if is_valid_juminhyo_code(s)]


@pytest.mark.parametrize(
    "value", ["1234567890", "123456789030", "１２３４５６７８９０３", "1234567890３", "12345-67890", "", "abcdefghijk"]
)
def test_a_juminhyo_code_that_is_not_eleven_ascii_digits_is_refused(value: str) -> None:
    assert not is_valid_juminhyo_code(value)


@pytest.mark.parametrize("body", ["123456789", "12345678901", "１２３４５６７８９０"])
def test_a_juminhyo_code_body_that_is_not_ten_ascii_digits_cannot_be_completed(body: str) -> None:
    with pytest.raises(ValueError):
        make_juminhyo_code(body)


def test_a_my_number_is_not_a_juminhyo_code_and_the_other_way_round() -> None:
    assert not is_valid_juminhyo_code(VALID_MY_NUMBERS[0])
    assert not is_valid_my_number(VALID_JUMINHYO_CODES[0])


@pytest.mark.parametrize(("first5", "expected"), [("03205", 1), ("03206", 9), ("03201", 8), ("13101", 6)])
def test_the_local_government_code_check_digit_matches_known_codes(first5: str, expected: int) -> None:
    # 032051 花巻市, 032069 北上市, 032018 盛岡市, 131016 千代田区. For 03205:
    # 0×6 + 3×5 + 2×4 + 0×3 + 5×2 = 33; 33 mod 11 = 0; 11 - 0 = 11 → last digit 1.
    assert local_government_code_check_digit(first5) == expected
    assert is_valid_local_government_code(first5 + str(expected))


def test_a_local_government_code_with_a_wrong_check_digit_is_refused() -> None:
    assert not is_valid_local_government_code("032052")
    assert not is_valid_local_government_code("03205")
    assert not is_valid_local_government_code("０３２０５１")
