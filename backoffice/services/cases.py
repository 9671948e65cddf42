"""Reading cases for the clerk's inbox: counts per status, oldest first, and one case with what intake found."""

from __future__ import annotations

import base64
import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backoffice.models import Case, CaseStatus
from backoffice.services import audit


def counts(session: Session) -> dict[CaseStatus, int]:
    """How many cases are in each status."""
    rows = session.execute(select(Case.status, func.count()).group_by(Case.status)).all()
    found = dict(rows)
    return {status: int(found.get(status, 0)) for status in CaseStatus}


def inbox(session: Session, *, status: CaseStatus | None, kind: str | None) -> list[Case]:
    """Cases to work, oldest first (open ones unless a status is chosen)."""
    stmt = select(Case).order_by(Case.received_at, Case.id)
    if status is not None:
        stmt = stmt.where(Case.status == status)
    else:
        stmt = stmt.where(Case.status.in_((CaseStatus.RECEIVED, CaseStatus.IN_REVIEW, CaseStatus.CONFIRMED)))
    if kind:
        stmt = stmt.where(Case.kind == kind)
    return list(session.execute(stmt.limit(500)).scalars())


def get_case(session: Session, case_id: int) -> Case | None:
    """One case; opening it is logged."""
    case = session.get(Case, case_id)
    if case is not None:
        audit.record("case.view", target_type="case", target_id=case.id)
    return case


def signed_application(case: Case) -> dict[str, Any]:
    """The application as the resident signed it (verified again at intake)."""
    segment = case.signed_jws.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    application: dict[str, Any] = claims.get("application", {})
    return application
