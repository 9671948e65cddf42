"""Certificate verification codes: random, typed from paper, looked up by hash on both sides of the bridge."""

from __future__ import annotations

import hashlib
import secrets
import unicodedata

# Crockford's base32 (no I, L, O, U): 16 characters are 80 random bits, typed from paper without confusion.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 16


def new_code() -> str:
    """A random verification code, never derived from personal data, shown as XXXX-XXXX-XXXX-XXXX."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return "-".join(raw[i:i + 4] for i in range(0, LENGTH, 4))


LOOKALIKES = str.maketrans("OIL", "011")


def normalise(text: str) -> str:
    """The code as typed (any width or case, spaces or hyphens; O for 0, I and L for 1) in canonical form."""
    folded = unicodedata.normalize("NFKC", text or "").upper()
    folded = folded.translate(LOOKALIKES)
    return "".join(c for c in folded if c in ALPHABET)


def is_well_formed(text: str) -> bool:
    """True when ``text`` holds exactly one code's worth of characters."""
    return len(normalise(text)) == LENGTH


def code_hash(text: str) -> str:
    """SHA-256 of the canonical code: all the portal ever stores (80 random bits need no slow hash)."""
    return hashlib.sha256(normalise(text).encode("ascii")).hexdigest()
