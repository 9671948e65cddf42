"""What a resident register can record (住民基本台帳の文字), and the birth dates it can hold.

The ledger writes names and addresses in the characters of JIS X 0213 (the register systems' common
set) and, beyond it, in the ideographs of 住基ネット統一文字 (異体字 such as 髙 and 𠮷 are recorded).
Pictographs (emoji), control and format characters, private-use code points and variation selectors
are not characters a register can record. Built as the stricter reading where the sets differ
(``docs/moves.md``): a character is recordable when JIS X 0213 or Windows-31J encodes it, or it is
a CJK ideograph.
"""

from __future__ import annotations

import datetime as dt
import unicodedata

EARLIEST_BIRTH_DATE = dt.date(1900, 1, 1)  # 明治33年: nobody living was born earlier; an earlier date is a slip


def _recordable(char: str) -> bool:
    for codec in ("shift_jis_2004", "cp932"):
        try:
            char.encode(codec)
        except UnicodeEncodeError:
            continue
        return unicodedata.category(char) not in ("Cc", "Cf", "Co", "Cs", "Cn")
    return unicodedata.name(char, "").startswith(("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH"))


def unrecordable(text: str) -> str | None:
    """The first character of ``text`` a register cannot record, or None when it can record all of it."""
    return next((c for c in text if not _recordable(c)), None)


def birth_date_on_record(born: dt.date, today: dt.date) -> bool:
    """Whether a register can hold ``born`` as a 生年月日: from 1900-01-01 up to ``today``."""
    return EARLIEST_BIRTH_DATE <= born <= today
