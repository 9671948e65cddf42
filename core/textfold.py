"""Folding of Japanese text for search: full/half width, hiragana/katakana, spaces."""

from __future__ import annotations

import unicodedata

_HIRA_TO_KATA = {code: code + 0x60 for code in range(0x3041, 0x3097)}


def fold(text: str) -> str:
    """Return ``text`` NFKC-normalised, hiragana turned into katakana, spaces removed, lower-cased.

    NFKC turns half-width katakana and full-width Latin/digits into their ordinary forms, so
    「ﾀﾅｶ」, 「たなか」 and 「タナカ」 all fold to 「タナカ」.
    """
    text = unicodedata.normalize("NFKC", text).translate(_HIRA_TO_KATA)
    return "".join(text.split()).lower()
