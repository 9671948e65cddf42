"""異動集計 (F11): how many changes of each reason per month, and per 町字, from the ledger's history.

Counted from ``resident_history`` (the append-only 異動履歴) by 異動年月日, so the figures for a
closed month never change once its notifications are in. A person's change is counted once per
reason and date even if the record was written in two steps. A 転出 is written twice, as 転出予定 when
the 転出届 is approved and as 転出確定 when the new municipality's 転入通知 arrives, possibly with
another date: it is counted once, on its last date (so a month's 転出 can still move when a 転出確定
with a later date arrives). The 町字 is the one the record held after the change (for a removal, the
last address).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backoffice.models import CaseEvent, IdoReason, ResidentHistory
from backoffice.services import audit
from backoffice.services.filing import LATE
from core.addressmaster import machiaza_by_code
from core.clock import EARLIEST_DATE, LATEST_DATE
from core.refusal import Refused

MAX_MONTHS = 60
REASONS = tuple(r.value for r in IdoReason)


class StatisticsError(Refused, ValueError):
    """A period that cannot be counted; ``field`` names the input."""


@dataclass(frozen=True)
class Period:
    """Whole months from ``first`` to ``last`` (both the first day of their month)."""

    first: dt.date
    last: dt.date

    @property
    def months(self) -> list[str]:
        """The months as YYYY-MM, oldest first."""
        out, day = [], self.first
        while day <= self.last:
            out.append(day.strftime("%Y-%m"))
            day = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        return out

    @property
    def end(self) -> dt.date:
        """The last day of the period."""
        return (self.last.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)


def _month(text: str, field: str) -> dt.date:
    try:
        month = dt.datetime.strptime((text or "").strip(), "%Y-%m").date()
    except ValueError as exc:
        raise StatisticsError(field, _l("Enter the month as YYYY-MM.")) from exc
    # Within the years a date of this service may have: past 9999-12 the month after overflows.
    if not EARLIEST_DATE <= month <= LATEST_DATE:
        earliest, latest = EARLIEST_DATE.strftime("%Y-%m"), LATEST_DATE.strftime("%Y-%m")
        raise StatisticsError(field, _l("The first month must be from %(earliest)s to %(latest)s.",
                                        earliest=earliest, latest=latest) if field == "first" else
                              _l("The last month must be from %(earliest)s to %(latest)s.",
                                 earliest=earliest, latest=latest))
    return month


def period(first: str, last: str) -> Period:
    """Check the months a person typed; the period is at most five years."""
    start, end = _month(first, "first"), _month(last, "last")
    if end < start:
        raise StatisticsError("last", _l("The last month must not be before the first."))
    result = Period(start, end)
    if len(result.months) > MAX_MONTHS:
        raise StatisticsError("last", _l("The period can be at most %(max)d months.", max=MAX_MONTHS))
    return result


@dataclass
class MoveCounts:
    """The counts of one period."""

    period: Period
    by_month: Counter[tuple[str, str]]  # (YYYY-MM, reason) -> count
    by_machiaza: Counter[tuple[str, str]]  # (machiaza code, reason) -> count
    detail: Counter[tuple[str, str, str]]  # (YYYY-MM, machiaza code, reason) -> count

    @property
    def reasons(self) -> list[str]:
        """The reasons that occur, in the order of the ledger's list of reasons."""
        seen = {r for _m, r in self.by_month}
        return [r for r in REASONS if r in seen]

    @property
    def total(self) -> int:
        """Every counted change."""
        return sum(self.by_month.values())

    def machiaza_name(self, code: str) -> str:
        """The 町字 name of the address master (the code itself if it is not there)."""
        found = machiaza_by_code(current_app.config["MUNICIPALITY_CODE"], code)
        return found.name if found else code


def count_moves(session: Session, when: Period) -> MoveCounts:
    """Count the changes of the period."""
    rows = session.execute(select(ResidentHistory.resident_id, ResidentHistory.reason, ResidentHistory.changed_on,
                                  ResidentHistory.after)
                           .where(ResidentHistory.changed_on >= when.first, ResidentHistory.changed_on <= when.end))
    last_move_out = dict(session.execute(
        select(ResidentHistory.resident_id, func.max(ResidentHistory.changed_on))
        .where(ResidentHistory.reason == IdoReason.MOVE_OUT).group_by(ResidentHistory.resident_id)).all())
    seen: set[tuple[int, str, dt.date]] = set()
    by_month: Counter[tuple[str, str]] = Counter()
    by_machiaza: Counter[tuple[str, str]] = Counter()
    detail: Counter[tuple[str, str, str]] = Counter()
    for resident_id, reason, changed_on, after in rows:
        key = (resident_id, reason.value, changed_on)
        if reason is IdoReason.MOVE_OUT and changed_on < last_move_out[resident_id]:
            continue  # the 転出予定 of a 転出 confirmed on a later date: counted on that date
        if key in seen:
            continue
        seen.add(key)
        try:
            machiaza = str(json.loads(after or "{}").get("machiaza_code") or "")
        except ValueError:
            machiaza = ""
        month = changed_on.strftime("%Y-%m")
        by_month[(month, reason.value)] += 1
        by_machiaza[(machiaza, reason.value)] += 1
        detail[(month, machiaza, reason.value)] += 1
    return MoveCounts(when, by_month, by_machiaza, detail)


def view(session: Session, when: Period) -> MoveCounts:
    """The counts for the page; the view is logged."""
    counts = count_moves(session, when)
    audit.record("statistics.view", detail={"first": when.months[0], "last": when.months[-1], "total": counts.total})
    return counts


def export_rows(counts: MoveCounts) -> tuple[list[str], list[list[str | int]]]:
    """The CSV: one row per month, 町字 and reason (the finest grain; sums give the page's tables)."""
    header = ["年月", "町字コード", "町字", "異動事由", "件数"]
    rows: list[list[str | int]] = [
        [month, code, counts.machiaza_name(code) if code else "", reason, n]
        for (month, code, reason), n in sorted(counts.detail.items(),
                                               key=lambda kv: (kv[0][0], kv[0][1], REASONS.index(kv[0][2])))]
    return header, rows


def export(session: Session, when: Period) -> tuple[list[str], list[list[str | int]]]:
    """The CSV rows of a period; the export is logged (R14)."""
    counts = count_moves(session, when)
    header, rows = export_rows(counts)
    audit.record("statistics.export", detail={"first": when.months[0], "last": when.months[-1], "rows": len(rows),
                                              "format": "csv"})
    return header, rows


def late_notifications(session: Session, when: Period) -> Counter[str]:
    """届出期間経過 per month of the notification (第52条): the 転入・転居 completed past the 14 days."""
    start = when.first
    end = (when.last.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    rows = session.execute(select(CaseEvent.detail).where(CaseEvent.action == LATE)).scalars()
    late: Counter[str] = Counter()
    for detail in rows:
        notified = dt.date.fromisoformat(json.loads(detail or "{}").get("notified_on", "1900-01-01"))
        if start <= notified < end:
            late[notified.strftime("%Y-%m")] += 1
    return late
