"""The portal's retention rules (R16): which records go after how long (core/retention.py runs them)."""

from __future__ import annotations

from sqlalchemy import Table

from core.retention import Rule, bridge_rules, not_referenced
from portal.models import (
    Application,
    ApplicationEvent,
    BridgeAlert,
    DeadLetter,
    Draft,
    ProcessedMessage,
    ResidentSession,
)

FINAL = ("completed", "rejected", "withdrawn")


def _table(model: type) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


def rules() -> list[Rule]:
    """Every kind of portal record with a retention period, its default and its floor."""
    application = _table(Application)
    unreferenced = not_referenced(application, except_tables=("application_event",))
    return [
        Rule("applications", application, "updated_at", 1826, 1,
             "city document rules: an application and its signed payload, 5 years after it was closed",
             where=lambda t: t.c.status.in_(FINAL) & unreferenced(t),
             children=((_table(ApplicationEvent), "application_id"),), newest_first=True),
        Rule("drafts", _table(Draft), "updated_at", 30, 1, "city rules: unsent drafts, 30 days"),
        Rule("sessions", _table(ResidentSession), "last_seen_at", 90, 1, "city rules: resident sessions, 90 days"),
        *bridge_rules(_table(ProcessedMessage), _table(DeadLetter), _table(BridgeAlert)),
    ]
