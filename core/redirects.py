"""Redirects to a user-supplied target: only a path of this site, never another host."""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote, urlsplit


def safe_path(target: str | None, *, default: str) -> str:
    """Return ``target`` if it is a same-site absolute path, else ``default``.

    Browsers are lenient in ways a prefix check misses: they drop tabs and newlines inside a URL
    (``/\\t/evil.example`` becomes ``//evil.example``), read a backslash as a slash, and the server or
    a later hop may decode ``%09`` or ``%2F``. So the target is judged on its percent-decoded form
    too: it must begin with exactly one ``/``, and carry no backslash, no second leading slash, no
    scheme or host, and no whitespace or control character anywhere.
    """
    if not target or not isinstance(target, str) or len(target) > 2000:
        return default
    decoded = unquote(target)
    for text in (target, decoded):
        if not text.startswith("/") or text.startswith("//") or "\\" in text:
            return default
        if any(ch.isspace() or unicodedata.category(ch)[0] == "C" for ch in text):
            return default
        parts = urlsplit(text)
        if parts.scheme or parts.netloc:
            return default
    return target
