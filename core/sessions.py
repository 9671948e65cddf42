"""Server-side sign-in sessions: the cookie holds a random token, the database its hash and its clock.

Ending a row ends the session everywhere at once (sign-out, account disabled, password changed),
which a signed-cookie session cannot do.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from sqlalchemy import String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from core import clock
from core.db import UTCDateTime


class ServerSessionMixin:
    """Columns every server-side session table has; the owner column is added by the table."""

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    end_reason: Mapped[str | None] = mapped_column(String(30))


def token_hash(token: str) -> str:
    """What is stored for a session token (the token itself never is)."""
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    """Start, resume and end the sessions of one table, keyed by its ``owner`` column."""

    def __init__(self, model: type[Any], owner: str) -> None:
        self.model = model
        self.owner = owner

    def start(self, session: Session, owner_id: int, **extra: Any) -> str:
        """Open a new session and return its token (a fresh token at every sign-in: no fixation)."""
        token = secrets.token_urlsafe(32)
        now = clock.utcnow()
        session.add(self.model(token_hash=token_hash(token), created_at=now, last_seen_at=now,
                               **{self.owner: owner_id}, **extra))
        session.flush()
        return token

    def live(self, session: Session, token: str) -> Any | None:
        """The session row for ``token`` if it has not ended."""
        row = session.execute(select(self.model).where(self.model.token_hash == token_hash(token))).scalar_one_or_none()
        return row if row is not None and row.ended_at is None else None

    def expiry_reason(self, row: Any, *, idle: dt.timedelta, absolute: dt.timedelta) -> str | None:
        """``idle`` or ``expired`` when the session has run out, else None."""
        now = clock.utcnow()
        if now - row.last_seen_at > idle:
            return "idle"
        if now - row.created_at > absolute:
            return "expired"
        return None

    def close(self, session: Session, row: Any, reason: str) -> None:
        """End one session row."""
        row.ended_at, row.end_reason = clock.utcnow(), reason
        session.flush()

    def touch(self, session: Session, row: Any) -> None:
        """Record activity, which keeps the session from going idle."""
        row.last_seen_at = clock.utcnow()
        session.flush()

    def end(self, session: Session, token: str, *, reason: str) -> None:
        """End the session for ``token`` (sign-out)."""
        session.execute(
            update(self.model)
            .where(self.model.token_hash == token_hash(token), self.model.ended_at.is_(None))
            .values(ended_at=clock.utcnow(), end_reason=reason)
        )

    def end_all(self, session: Session, owner_id: int, *, reason: str) -> int:
        """End every live session of one owner; returns how many were ended."""
        result = session.execute(
            update(self.model)
            .where(getattr(self.model, self.owner) == owner_id, self.model.ended_at.is_(None))
            .values(ended_at=clock.utcnow(), end_reason=reason)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
