"""Check digits of 個人番号 (My Number), 住民票コード and 地方公共団体コード.

個人番号: 番号法施行令 第8条 and 総務省令第85号 (平成26年) 第5条::

    check = 11 - (Σ Pn × Qn mod 11), or 0 when (Σ Pn × Qn mod 11) <= 1
    Pn = the n-th digit of the first 11 digits, counted from the rightmost (n = 1)
    Qn = n + 1 for 1 <= n <= 6, n - 5 for 7 <= n <= 11

住民票コード: 住民基本台帳法施行規則 第1条 makes it ten random digits followed by one check digit
computed by "the formula the Minister for Internal Affairs sets" (平成14年総務省告示第436号). The
text of that notice could not be checked from here; this module applies the same modulus-11 scheme
as 個人番号 with the same weights (2–7, then 2–5) on the ten digits, which is how the scheme is
commonly described. Confirm against the notice before relying on it for real 住民票コード.

地方公共団体コード: five digits weighted 6, 5, 4, 3, 2 from the left, check = last digit of
11 - (sum mod 11) (総務省 「全国地方公共団体コード」 仕様).

Only ASCII digits are accepted: full-width digits and other Unicode digits are refused, because
``str.isdigit`` and ``int`` would otherwise accept 「１２３」 or Arabic-Indic digits.
"""

from __future__ import annotations

_ASCII_DIGITS = frozenset("0123456789")


def _is_ascii_digits(value: str, length: int) -> bool:
    # The isinstance check keeps a stray int or None from passing as a number.
    return isinstance(value, str) and len(value) == length and all(ch in _ASCII_DIGITS for ch in value)


def _require_digits(value: str, length: int, what: str) -> str:
    if not _is_ascii_digits(value, length):
        raise ValueError(f"{what} must be exactly {length} ASCII digits")
    return value


def _mod11_weighted_2_to_7(body: str) -> int:
    # Weights run 2, 3, 4, 5, 6, 7, 2, 3, 4, 5, 6 from the rightmost digit (Qn above).
    total = 0
    for n, ch in enumerate(reversed(body), start=1):
        weight = n + 1 if n <= 6 else n - 5
        total += int(ch) * weight
    remainder = total % 11
    return 0 if remainder <= 1 else 11 - remainder


def my_number_check_digit(first11: str) -> int:
    """Return the check digit of a 個人番号 from its first 11 digits."""
    return _mod11_weighted_2_to_7(_require_digits(first11, 11, "the first part of a My Number"))


def is_valid_my_number(value: str) -> bool:
    """Return True if ``value`` is 12 ASCII digits whose last digit is the right check digit."""
    if not _is_ascii_digits(value, 12):
        return False
    return my_number_check_digit(value[:11]) == int(value[11])


def make_my_number(body11: str) -> str:
    """Return the 12-digit 個人番号 made of ``body11`` and its check digit."""
    return body11 + str(my_number_check_digit(body11))


def juminhyo_code_check_digit(first10: str) -> int:
    """Return the check digit of a 住民票コード from its first 10 digits (scheme: see module docstring)."""
    return _mod11_weighted_2_to_7(_require_digits(first10, 10, "the first part of a 住民票コード"))


def is_valid_juminhyo_code(value: str) -> bool:
    """Return True if ``value`` is 11 ASCII digits whose last digit is the right check digit."""
    if not _is_ascii_digits(value, 11):
        return False
    return juminhyo_code_check_digit(value[:10]) == int(value[10])


def make_juminhyo_code(body10: str) -> str:
    """Return the 11-digit 住民票コード made of ``body10`` and its check digit."""
    return body10 + str(juminhyo_code_check_digit(body10))


def local_government_code_check_digit(first5: str) -> int:
    """Return the check digit (6th digit) of a 全国地方公共団体コード from its first 5 digits."""
    digits = _require_digits(first5, 5, "a local government code without its check digit")
    total = sum(int(ch) * weight for ch, weight in zip(digits, (6, 5, 4, 3, 2), strict=True))
    return (11 - total % 11) % 10


def is_valid_local_government_code(value: str) -> bool:
    """Return True if ``value`` is a 6-digit 全国地方公共団体コード with the right check digit."""
    if not _is_ascii_digits(value, 6):
        return False
    return local_government_code_check_digit(value[:5]) == int(value[5])
