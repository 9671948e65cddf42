"""Registered terminals (R1): one-time enrollment codes, signed terminal cookies, proxy certificates."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from flask import Request, current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from backoffice.models import Terminal
from backoffice.services import audit
from core import clock
from core.app import peer_address
from core.refusal import Refused

COOKIE_NAME = "bo_terminal"
ENROLLMENT_HOURS = 24
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O/1/I: read aloud and typed by hand


class TerminalError(Refused, ValueError):
    """A terminal command or form got something it cannot accept; ``field`` names the input."""


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["TERMINAL_COOKIE_KEY"], salt="terminal")


def add_terminal(session: Session, *, name: str, cert_fingerprint: str | None = None) -> tuple[Terminal, str]:
    """Register a terminal and return it with a one-time enrollment code (valid 24 hours)."""
    name = name.strip()
    if not name or len(name) > 50:
        raise TerminalError("name", "terminal name must be 1-50 characters")
    if session.execute(select(Terminal.id).where(Terminal.name == name)).first():
        raise TerminalError("name", f"terminal {name!r} already exists")
    code = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    now = clock.utcnow()
    terminal = Terminal(
        name=name,
        enrollment_code_hash=_sha(code),
        enrollment_expires_at=now + dt.timedelta(hours=ENROLLMENT_HOURS),
        cert_fingerprint=cert_fingerprint.lower().replace(":", "") if cert_fingerprint else None,
        created_at=now,
    )
    session.add(terminal)
    session.flush()
    audit.record("terminal.add", target_type="terminal", target_id=terminal.id, detail={"name": name})
    return terminal, f"{code[:4]}-{code[4:8]}-{code[8:]}"


def enroll(session: Session, code: str) -> tuple[Terminal, str] | None:
    """Redeem an enrollment code: returns the terminal and the cookie value to set, or None."""
    digest = _sha(_normalise_code(code))
    terminal = session.execute(
        select(Terminal).where(Terminal.enrollment_code_hash == digest).with_for_update()
    ).scalar_one_or_none()
    now = clock.utcnow()
    if terminal is None or terminal.revoked_at is not None or (
        terminal.enrollment_expires_at is not None and terminal.enrollment_expires_at < now
    ):
        audit.record("terminal.enroll", outcome="failure", detail={"reason": "invalid_code"})
        return None
    token = secrets.token_urlsafe(32)
    terminal.enrollment_code_hash = None  # one-time
    terminal.enrollment_expires_at = None
    terminal.cookie_token_hash = _sha(token)
    terminal.enrolled_at = now
    session.flush()
    audit.record("terminal.enroll", target_type="terminal", target_id=terminal.id, detail={"name": terminal.name})
    return terminal, _serializer().dumps({"t": terminal.id, "k": token})


def identify(session: Session, req: Request) -> tuple[Terminal | None, str]:
    """Which registered terminal sent ``req``; the reason says why none did."""
    cfg = current_app.config
    header = req.headers.get(cfg["TERMINAL_CERT_HEADER"])
    # The TLS proxy's own address: X-Forwarded-For has already made remote_addr the client's.
    if header and peer_address(req) in cfg["TRUSTED_PROXIES"]:
        fp = header.strip().lower().replace(":", "")
        terminal = session.execute(select(Terminal).where(Terminal.cert_fingerprint == fp)).scalar_one_or_none()
        if terminal is None:
            return None, "unknown_certificate"
        if terminal.revoked_at is not None:
            return None, "revoked"
        return terminal, "ok"
    raw = req.cookies.get(COOKIE_NAME)
    if not raw:
        return None, "unregistered"
    try:
        data = _serializer().loads(raw)
        terminal_id, token = int(data["t"]), str(data["k"])
    except (BadSignature, KeyError, TypeError, ValueError):
        return None, "bad_cookie"
    terminal = session.get(Terminal, terminal_id)
    if terminal is None or terminal.cookie_token_hash is None or not secrets.compare_digest(
        terminal.cookie_token_hash, _sha(token)
    ):
        return None, "bad_cookie"
    if terminal.revoked_at is not None:
        return None, "revoked"
    return terminal, "ok"


def revoke(session: Session, name: str) -> Terminal:
    """Revoke a terminal: its cookie and certificate stop working at once."""
    terminal = session.execute(select(Terminal).where(Terminal.name == name)).scalar_one_or_none()
    if terminal is None:
        raise TerminalError("name", f"no terminal named {name!r}")
    terminal.revoked_at = clock.utcnow()
    terminal.enrollment_code_hash = None
    session.flush()
    audit.record("terminal.revoke", target_type="terminal", target_id=terminal.id, detail={"name": name})
    return terminal


def list_terminals(session: Session) -> list[Terminal]:
    """All terminals, by name."""
    return list(session.execute(select(Terminal).order_by(Terminal.name)).scalars())
