"""The city office's calendar: the days it is closed, one definition for the portal, the counter and the SLA.

Closed: Saturdays and Sundays, the national holidays (国民の祝日に関する法律, with substitute holidays,
from the ``holidays`` package), and the year-end and New Year closure from 29 December to 3 January
(地方自治法第4条の2第1項 lets a municipality set its closed days by ordinance; these are the usual
ones, 花巻市の休日を定める条例 among them). A deadline for a notification that falls on a closed day moves
to the next open day (地方自治法第4条の2第4項).
"""

from __future__ import annotations

import datetime as dt
import functools

import holidays


@functools.lru_cache(maxsize=64)
def _national_holidays(year: int) -> frozenset[dt.date]:
    return frozenset(holidays.country_holidays("JP", years=year))


def is_open(day: dt.date) -> bool:
    """Whether the city office is open on ``day``."""
    if day.weekday() >= 5 or day in _national_holidays(day.year):
        return False
    return not ((day.month, day.day) >= (12, 29) or (day.month, day.day) <= (1, 3))


def next_open_day(day: dt.date) -> dt.date:
    """The first day after ``day`` on which the office is open."""
    candidate = day + dt.timedelta(days=1)
    while not is_open(candidate):
        candidate += dt.timedelta(days=1)
    return candidate


def deadline(day: dt.date) -> dt.date:
    """A deadline falling on ``day``: that day when the office is open, else the next open day (第4条の2第4項)."""
    return day if is_open(day) else next_open_day(day)
