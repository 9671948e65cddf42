"""Language selection: Japanese first, English complete; the choice is kept in a cookie."""

from __future__ import annotations

import datetime as dt

from flask import g, has_request_context, request
from flask_babel import get_locale

from core.clock import jst_date, to_jst

LANGUAGES = {"ja": "日本語", "en": "English"}

_ERAS = (
    (dt.date(2019, 5, 1), "令和"),
    (dt.date(1989, 1, 8), "平成"),
    (dt.date(1926, 12, 25), "昭和"),
    (dt.date(1912, 7, 30), "大正"),
    (dt.date(1868, 1, 25), "明治"),
)


def select_locale() -> str:
    """Pick ``?lang=`` (and remember it), then the cookie, then Japanese (also outside a request: a job, a command)."""
    if not has_request_context():
        return "ja"
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        g.lang_to_set = asked
        return asked
    cookie = request.cookies.get("lang")
    if cookie in LANGUAGES:
        return cookie
    return "ja"


def wareki(day: dt.date) -> str:
    """Format a date in the Japanese era calendar (令和7年4月1日; 元年 for the first year)."""
    for start, era in _ERAS:
        if day >= start:
            year = day.year - start.year + 1
            return f"{era}{'元' if year == 1 else year}年{day.month}月{day.day}日"
    return f"{day.year}年{day.month}月{day.day}日"


def format_date(day: dt.date | dt.datetime | None) -> str:
    """A date as residents and clerks expect in the current language; a moment is first put in Japan time."""
    if day is None:
        return ""
    if isinstance(day, dt.datetime):
        day = jst_date(day)
    if str(get_locale()) == "ja":
        return wareki(day)
    return f"{day.day} {day.strftime('%B')} {day.year}"


def format_moment(moment: dt.datetime | None, *, seconds: bool = False) -> str:
    """A moment in Japan time, as residents, clerks and the working hours count it (``2026-12-06 01:00 JST``)."""
    if moment is None:
        return ""
    return to_jst(moment).strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else "")) + " JST"
