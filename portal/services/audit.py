"""Writing the portal's operation log (sign-ins, sign-outs, identity links, refused access to others' data).

The same name as the back office's writer (``backoffice.services.audit.record``); the portal's takes the session.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, g, has_request_context, request
from sqlalchemy.orm import Session

from core.audit import AuditChain, chain_for
from portal.models import AuditHead, AuditLog


def chain() -> AuditChain:
    """The portal's operation-log chain."""
    return chain_for(current_app.config, log_model=AuditLog, head_model=AuditHead, name="portal")


def record(session: Session, action: str, *, actor: str, outcome: str = "success", actor_id: int | None = None,
           target_type: str | None = None, target_id: str | None = None, client_addr: str | None = None,
           detail: dict[str, Any] | None = None) -> AuditLog:
    """Append one row in the caller's transaction (no personal data: ids and codes only)."""
    request_id = g.get("request_id") if has_request_context() else None
    if client_addr is None and has_request_context():
        client_addr = request.remote_addr
    row: AuditLog = chain().append(session, action=action, actor=actor, outcome=outcome, actor_id=actor_id,
                                   target_type=target_type, target_id=target_id, request_id=request_id,
                                   client_addr=client_addr, detail=detail)
    return row
