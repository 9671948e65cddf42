"""Reading the operation log for the security officer: filters, pages, CSV export, verification."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backoffice.models import AuditLog
from backoffice.services import audit


@dataclass(frozen=True)
class LogFilter:
    """Filters the auditor can set; empty means any."""

    action: str = ""
    actor: str = ""
    outcome: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    def for_log(self) -> dict[str, str]:
        """The filter as written to the operation log."""
        return {k: str(v) for k, v in self.__dict__.items() if v}


def _query(f: LogFilter):  # type: ignore[no-untyped-def]
    stmt = select(AuditLog)
    if f.action:
        stmt = stmt.where(AuditLog.action.startswith(f.action, autoescape=True))
    if f.actor:
        stmt = stmt.where(AuditLog.actor == f.actor)
    if f.outcome:
        stmt = stmt.where(AuditLog.outcome == f.outcome)
    jst = dt.timezone(dt.timedelta(hours=9))
    if f.date_from:
        stmt = stmt.where(AuditLog.ts >= dt.datetime.combine(f.date_from, dt.time(), jst))
    if f.date_to:
        stmt = stmt.where(AuditLog.ts < dt.datetime.combine(f.date_to + dt.timedelta(days=1), dt.time(), jst))
    return stmt


def browse(session: Session, f: LogFilter, *, page: int, size: int = 50) -> tuple[list[AuditLog], int]:
    """One page of rows, newest first, and the total; the browsing itself is logged."""
    stmt = _query(f)
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    rows = list(session.execute(stmt.order_by(AuditLog.seq.desc()).offset((page - 1) * size).limit(size)).scalars())
    audit.record("audit.browse", detail={"filter": f.for_log(), "page": page})
    return rows, total


EXPORT_HEADER = ["seq", "ts", "actor", "actor_id", "terminal_id", "action", "target_type", "target_id",
                 "outcome", "request_id", "client_addr", "detail", "row_hash"]


def export_rows(session: Session, f: LogFilter) -> list[list[Any]]:
    """All matching rows for the CSV export (oldest first); the export is logged."""
    rows = list(session.execute(_query(f).order_by(AuditLog.seq)).scalars())
    audit.record("audit.export", detail={"filter": f.for_log(), "rows": len(rows), "format": "csv"})
    return [[r.seq, r.ts.isoformat(), r.actor, r.actor_id, r.terminal_id, r.action, r.target_type, r.target_id,
             r.outcome, r.request_id, r.client_addr, r.detail, r.row_hash] for r in rows]
