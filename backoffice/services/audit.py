"""Writing the back-office operation log from a request, a job or a command."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, has_request_context, request
from flask_login import current_user

from backoffice.extensions import db
from backoffice.models import AuditHead, AuditLog
from core.audit import AuditChain, chain_for


def chain() -> AuditChain:
    """The operation-log chain of this back-office instance."""
    return chain_for(current_app.config, log_model=AuditLog, head_model=AuditHead,
                     name=current_app.config["MUNICIPALITY_CODE"])


def record(
    action: str,
    *,
    outcome: str = "success",
    target_type: str | None = None,
    target_id: str | int | None = None,
    detail: dict[str, Any] | None = None,
    actor: str | None = None,
    actor_id: int | None = None,
) -> AuditLog:
    """Append one row for ``action``, filling who, where and which request from the context."""
    terminal_id = None
    request_id = None
    client_addr = None
    if has_request_context():
        terminal = g.get("terminal")
        terminal_id = terminal.id if terminal is not None else None
        request_id = g.get("request_id")
        client_addr = request.remote_addr
        if actor is None and current_user.is_authenticated:
            actor, actor_id = current_user.login_id, current_user.id
    row: AuditLog = chain().append(
        db.session,
        action=action,
        actor=actor or "system",
        actor_id=actor_id,
        outcome=outcome,
        terminal_id=terminal_id,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        request_id=request_id,
        client_addr=client_addr,
        detail=detail,
    )
    return row
