"""An injectable clock, so tests can move time without patching the standard library."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

_now: Callable[[], dt.datetime] | None = None


def utcnow() -> dt.datetime:
    """Return the current time as a timezone-aware UTC datetime."""
    if _now is not None:
        return _now()
    return dt.datetime.now(dt.UTC)


def set_clock(now: Callable[[], dt.datetime] | None) -> None:
    """Replace the clock (tests only); ``None`` restores the system clock."""
    global _now
    _now = now


def age_on(born: dt.date, day: dt.date) -> int:
    """Full years of age on ``day``."""
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def today_jst() -> dt.date:
    """Return today's date in Japan, which is what residents and clerks mean by 'today'."""
    return (utcnow() + dt.timedelta(hours=9)).date()
