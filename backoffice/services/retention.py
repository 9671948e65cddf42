"""The back office's retention rules (R16): which records go after how long (core/retention.py runs them)."""

from __future__ import annotations

from sqlalchemy import Table

from backoffice.models import BridgeAlert, DeadLetter, ProcessedMessage, Resident, ResidentHistory, StaffSession
from core.retention import Rule, bridge_rules, not_referenced

# 150 years, counting the most leap days 150 years can hold: the cut-off is never later than the law's.
JOSHU_DAYS = 150 * 365 + 38


def _table(model: type) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


def rules() -> list[Rule]:
    """Every kind of back-office record with a retention period, its default and its floor."""
    resident, history = _table(Resident), _table(ResidentHistory)
    card = resident.metadata.tables["card_record"]
    unreferenced = not_referenced(resident, except_tables=("resident_history", "card_record"))
    return [
        Rule("joshu", resident, "removed_on", JOSHU_DAYS, JOSHU_DAYS,
             "除票: 150 years from removal (住民基本台帳法施行令第34条, since 2019)",
             where=lambda t: (t.c.status == "removed") & unreferenced(t),
             children=((history, "resident_id"), (card, "resident_id"))),
        Rule("sessions", _table(StaffSession), "last_seen_at", 90, 1, "city rules: staff sessions, 90 days"),
        *bridge_rules(_table(ProcessedMessage), _table(DeadLetter), _table(BridgeAlert)),
    ]
