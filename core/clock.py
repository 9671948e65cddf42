"""An injectable clock, so tests can move time without patching the standard library."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

JST = ZoneInfo("Asia/Tokyo")  # every date and time a person reads is Japan time
# The dates a filter or period may name. Past them Python's date arithmetic overflows (the day after 9999-12-31,
# 0001-01-01 in UTC), and no record of this service lies there.
EARLIEST_DATE = dt.date(1900, 1, 1)
LATEST_DATE = dt.date(2999, 12, 31)

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


def to_jst(moment: dt.datetime) -> dt.datetime:
    """``moment`` in Japan time; a naive value (as SQLite returns it) is the UTC the app stored."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(JST)


def jst_date(moment: dt.datetime) -> dt.date:
    """The day in Japan on which ``moment`` fell (20261205T16:00Z is 2026-12-06)."""
    return to_jst(moment).date()


def today_jst() -> dt.date:
    """Return today's date in Japan, which is what residents and clerks mean by 'today'."""
    return (utcnow() + dt.timedelta(hours=9)).date()
