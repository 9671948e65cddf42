"""Single-use challenge nonces kept on the server (Redis), consumed atomically with GETDEL."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import redis

from core.clock import utcnow
from core.jpki.errors import CardVerificationError, RefusalCode

NONCE_BYTES = 32
DEFAULT_TTL_SECONDS = 300
# Web eID accepts nonces of 44-128 base64 characters; anything else cannot be ours.
MIN_NONCE_LENGTH = 44
MAX_NONCE_LENGTH = 128


class IssuedNonce(NamedTuple):
    """A fresh nonce and when it stops being accepted."""

    nonce: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class ConsumedNonce:
    """A nonce taken out of the store, with the issue and expiry times the server recorded for it."""

    nonce: str
    issued_at: dt.datetime
    expires_at: dt.datetime

    def is_expired(self, now: dt.datetime) -> bool:
        """Return whether ``now`` is past the nonce's expiry (server time, never a client timestamp)."""
        return now > self.expires_at


class NonceStore(Protocol):
    """Where challenge nonces live between the challenge and the token; every nonce works at most once."""

    def issue(self, ttl: int = DEFAULT_TTL_SECONDS) -> IssuedNonce:
        """Create and store a nonce valid for ``ttl`` seconds."""
        ...

    def take(self, nonce: str) -> ConsumedNonce | None:
        """Atomically remove ``nonce`` and return what was stored, or None if it was never issued or already used."""
        ...

    def consume(self, nonce: str) -> bool:
        """Atomically remove ``nonce``; return True only if it existed and had not expired."""
        ...


class RedisNonceStore:
    """NonceStore on Redis: one key per nonce under a caller-given prefix, removed with GETDEL."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        key_prefix: str,
        clock: Callable[[], dt.datetime] = utcnow,
        grace_seconds: int = 60,
    ) -> None:
        if not key_prefix:
            raise ValueError("key_prefix must be given so nonces of different purposes never share keys")
        self._redis = client
        self._prefix = key_prefix
        self._clock = clock
        # Redis keeps a key a little past its expiry so an expired nonce is reported as expired (a clearer
        # log line) rather than unknown; the stored expiry, not the Redis TTL, decides acceptance.
        self._grace = grace_seconds

    def key_for(self, nonce: str) -> str:
        """Return the Redis key of ``nonce``: the prefix and a SHA-256, so client text never becomes a key name."""
        return self._prefix + hashlib.sha256(nonce.encode("utf-8")).hexdigest()

    def issue(self, ttl: int = DEFAULT_TTL_SECONDS) -> IssuedNonce:
        """Create a 256-bit nonce (standard base64, 44 characters) and store it for ``ttl`` seconds."""
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        now = self._clock()
        expires_at = now + dt.timedelta(seconds=ttl)
        value = json.dumps({"iat": now.isoformat(), "exp": expires_at.isoformat()})
        while True:
            nonce = base64.b64encode(secrets.token_bytes(NONCE_BYTES)).decode("ascii")
            if self._redis.set(self.key_for(nonce), value, ex=ttl + self._grace, nx=True):
                return IssuedNonce(nonce, expires_at)

    def take(self, nonce: str) -> ConsumedNonce | None:
        """Atomically remove ``nonce`` (GETDEL) and return its record, or None if absent."""
        if not isinstance(nonce, str) or not MIN_NONCE_LENGTH <= len(nonce) <= MAX_NONCE_LENGTH:
            return None
        raw = self._redis.getdel(self.key_for(nonce))
        if raw is None:
            return None
        record = json.loads(raw)
        return ConsumedNonce(
            nonce=nonce,
            issued_at=dt.datetime.fromisoformat(record["iat"]),
            expires_at=dt.datetime.fromisoformat(record["exp"]),
        )

    def consume(self, nonce: str) -> bool:
        """Atomically remove ``nonce``; True only if it existed and had not expired."""
        taken = self.take(nonce)
        return taken is not None and not taken.is_expired(self._clock())


NonceSource = str | ConsumedNonce | Callable[[], ConsumedNonce | None] | None
"""How a verifier gets the expected nonce.

- a callable (e.g. ``functools.partial(store.take, session_nonce)``): called first, so the nonce is
  consumed before anything else happens, whatever the outcome (preferred);
- a ``ConsumedNonce`` the caller already took from the store: its expiry is checked by the verifier;
- a plain ``str``: the caller has already consumed it and checked its expiry (or, in the back office,
  re-verifies an application whose challenge was spent at the portal);
- ``None``: this session never asked for a challenge.
"""


def resolve_nonce(source: NonceSource, *, now: dt.datetime, error: type[CardVerificationError]) -> str:
    """Consume or accept the expected nonce from ``source``; raise NONCE_NOT_FOUND or NONCE_EXPIRED."""
    taken = source() if callable(source) else source
    if taken is None or taken == "":
        raise error(RefusalCode.NONCE_NOT_FOUND, "no challenge nonce for this session")
    if isinstance(taken, ConsumedNonce):
        if taken.is_expired(now):
            raise error(RefusalCode.NONCE_EXPIRED, "challenge nonce has expired")
        return taken.nonce
    if isinstance(taken, str):
        return taken
    raise TypeError("a nonce source must give a str, a ConsumedNonce or None")
