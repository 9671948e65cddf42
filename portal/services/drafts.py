"""Answers typed so far in a journey, kept in the portal database so back and forward keep them."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core import clock
from portal.models import Draft, PortalAccount


def _row(session: Session, account: PortalAccount, journey: str) -> Draft | None:
    stmt = select(Draft).where(Draft.account_id == account.id, Draft.journey == journey)
    return session.execute(stmt).scalar_one_or_none()


def load(session: Session, account: PortalAccount, journey: str) -> dict[str, Any]:
    """The answers so far (empty at the start)."""
    row = _row(session, account, journey)
    return json.loads(row.data) if row else {}


def save(session: Session, account: PortalAccount, journey: str, answers: dict[str, Any]) -> None:
    """Merge ``answers`` into the draft."""
    row = _row(session, account, journey)
    if row is None:
        row = Draft(account_id=account.id, journey=journey, data="{}", updated_at=clock.utcnow())
        session.add(row)
    data = json.loads(row.data)
    data.update(answers)
    row.data, row.updated_at = json.dumps(data, ensure_ascii=False), clock.utcnow()
    session.flush()


def clear(session: Session, account: PortalAccount, journey: str) -> None:
    """Forget the draft (after sending, or when the resident starts again)."""
    session.execute(delete(Draft).where(Draft.account_id == account.id, Draft.journey == journey))
