"""Field encryption (AES-256-GCM) and keyed blind indexes for specific personal information."""

from __future__ import annotations

import base64
import functools
import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


@functools.lru_cache(maxsize=16)
def _key(secret: str, purpose: bytes) -> bytes:
    # Separate keys per purpose, derived from the configured secret (once per process: the seed derives
    # the blind-index key for each of 300,000 residents).
    return hmac.digest(secret.encode(), purpose, "sha256")


class FieldCipher:
    """Encrypt and decrypt short strings; the ciphertext carries a random 96-bit nonce."""

    def __init__(self, secret: str) -> None:
        self._aead = AESGCM(_key(secret, b"field-encryption-v1"))

    def encrypt(self, plaintext: str, *, context: bytes = b"") -> bytes:
        """Return nonce || ciphertext || tag."""
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext.encode(), context)

    def decrypt(self, blob: bytes, *, context: bytes = b"") -> str:
        """Open a value written by ``encrypt``; raises ``InvalidTag`` if it was altered."""
        return self._aead.decrypt(blob[:12], blob[12:], context).decode()


def blind_index(secret: str, value: str, *, purpose: str) -> str:
    """Return a keyed hash of ``value`` for exact-match lookup without storing it."""
    mac = hmac.digest(_key(secret, b"blind-index-v1"), f"{purpose}\x00{value}".encode(), "sha256")
    return base64.b32encode(mac).decode().rstrip("=").lower()
