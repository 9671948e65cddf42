"""Staff accounts: passwords (argon2id), TOTP second factor, lockout, server-side sessions."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from sqlalchemy import case, literal, or_, select, update
from sqlalchemy.orm import Session, object_session
from sqlalchemy.orm.attributes import set_committed_value

from backoffice.models import Role, Staff, StaffRole, StaffSession, Terminal
from backoffice.services import audit
from core import clock
from core.fieldcrypto import FieldCipher
from core.refusal import Refused
from core.sessions import SessionStore

MIN_PASSWORD = 12
MAX_PASSWORD = 128
TOTP_ISSUER = "Juki Backoffice"


class StaffError(Refused, ValueError):
    """A staff command or form was given something it cannot accept; ``field`` names the input."""


def _hasher() -> PasswordHasher:
    if current_app.config["APP_ENV"] == "test":
        # Same algorithm (argon2id) with a low cost so the suite stays fast.
        return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return PasswordHasher()


def _cipher() -> FieldCipher:
    return FieldCipher(current_app.config["FIELD_ENCRYPTION_KEY"])


def check_password_policy(password: str) -> None:
    """Refuse passwords that are too short or too long (ASVS 6.2: length, no composition rules)."""
    if len(password) < MIN_PASSWORD:
        raise StaffError("password", f"password must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise StaffError("password", f"password must be at most {MAX_PASSWORD} characters")


def add_staff(session: Session, *, login_id: str, name: str, password: str, roles: list[str]) -> tuple[Staff, str]:
    """Create an account and return it with its new TOTP secret (shown once, never again)."""
    login_id = login_id.strip()
    plain = login_id.replace("_", "").replace(".", "")
    if not login_id or len(login_id) > 50 or not login_id.isascii() or not plain.isalnum():
        raise StaffError("login_id", "login ID must be 1-50 ASCII letters, digits, '.' or '_'")
    if not name.strip():
        raise StaffError("name", "name is required")
    if not roles:
        raise StaffError("role", "at least one role is required")
    try:
        role_values = sorted({Role(r) for r in roles}, key=lambda r: r.value)
    except ValueError as exc:
        raise StaffError("role", f"role must be one of {', '.join(r.value for r in Role)}") from exc
    check_password_policy(password)
    if session.execute(select(Staff.id).where(Staff.login_id == login_id)).first():
        raise StaffError("login_id", f"login ID {login_id!r} is already taken")
    secret = pyotp.random_base32()
    now = clock.utcnow()
    staff = Staff(
        login_id=login_id,
        name=name.strip(),
        password_hash=_hasher().hash(password),
        totp_secret_encrypted=_cipher().encrypt(secret, context=b"totp"),
        failed_attempts=0,
        created_at=now,
        password_changed_at=now,
        roles=[StaffRole(role=r) for r in role_values],
    )
    session.add(staff)
    session.flush()
    audit.record("staff.add", target_type="staff", target_id=staff.id,
                 detail={"login_id": login_id, "roles": [r.value for r in role_values]})
    return staff, secret


def provisioning_uri(staff: Staff, secret: str) -> str:
    """The otpauth:// URI an authenticator app reads (printed once at creation)."""
    return pyotp.TOTP(secret).provisioning_uri(name=staff.login_id, issuer_name=TOTP_ISSUER)


def totp_secret(staff: Staff) -> str:
    """Decrypt the TOTP secret of ``staff``."""
    return _cipher().decrypt(staff.totp_secret_encrypted, context=b"totp")


def get_by_login(session: Session, login_id: str) -> Staff | None:
    """The account with this login ID, if any."""
    return session.execute(select(Staff).where(Staff.login_id == login_id)).scalar_one_or_none()


@dataclass(frozen=True)
class SignInResult:
    """What a sign-in attempt came to; ``reason`` is internal and never shown as such."""

    staff: Staff | None
    reason: str  # ok, unknown, bad_password, bad_totp, locked, disabled, now_locked


_DUMMY_HASH: dict[str, str] = {}


def _matching_step(staff: Staff, code: str) -> int | None:
    """The 30-second step (now, or one either side for clock drift) whose TOTP code is ``code``, if any."""
    code = code.strip()
    if not (len(code) == 6 and code.isdigit()):
        return None
    totp = pyotp.TOTP(totp_secret(staff))
    now = clock.utcnow()
    for offset in (0, -1, 1):
        at = now + dt.timedelta(seconds=30 * offset)
        if secrets.compare_digest(totp.at(at), code):
            return int(at.timestamp()) // 30
    return None


def check_second_factor(staff: Staff, code: str) -> bool:
    """Accept a current TOTP code once (a code already used is refused), also against parallel requests.

    The step is spent by one conditional ``UPDATE … RETURNING``: of concurrent transactions presenting
    the same code, PostgreSQL lets one update the row and re-checks the condition for the others after
    it commits, so they find the step spent. A check and a separate write would let all of them pass.
    The same rule serves sign-in, the screen unlock and the step-up at approval. A locked or disabled
    account spends no code.
    """
    step = _matching_step(staff, code)
    if step is None:
        return False
    session = object_session(staff)
    if session is None:
        raise RuntimeError("check_second_factor needs an account loaded in a session")
    spent = session.execute(
        update(Staff)
        .where(Staff.id == staff.id, or_(Staff.last_totp_step.is_(None), Staff.last_totp_step < step),
               Staff.locked_at.is_(None), Staff.disabled_at.is_(None))
        .values(last_totp_step=step)
        .returning(Staff.id)
        .execution_options(synchronize_session=False)
    ).first()
    if spent is None:
        return False
    set_committed_value(staff, "last_totp_step", step)
    return True


def _count_failure(session: Session, staff: Staff) -> tuple[int, bool] | None:
    """Add one failure in the database itself and lock at the threshold; None if the account was already locked.

    ``failed_attempts = failed_attempts + 1`` under the row lock the ``UPDATE`` takes, so parallel
    failures all count (a read-add-write in Python loses them). Failures stop counting once the account
    is locked, so the count of a locked account is exactly the threshold.
    """
    threshold = current_app.config["LOCKOUT_THRESHOLD"]
    row = session.execute(
        update(Staff)
        .where(Staff.id == staff.id, Staff.locked_at.is_(None), Staff.disabled_at.is_(None))
        .values(failed_attempts=Staff.failed_attempts + 1,
                locked_at=case((Staff.failed_attempts + 1 >= threshold,
                                 literal(clock.utcnow(), Staff.locked_at.type)), else_=None))
        .returning(Staff.failed_attempts, Staff.locked_at)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        return None
    set_committed_value(staff, "failed_attempts", row.failed_attempts)
    set_committed_value(staff, "locked_at", row.locked_at)
    return row.failed_attempts, row.locked_at is not None


def authenticate(session: Session, *, login_id: str, password: str, totp_code: str) -> SignInResult:
    """Check ID, password and TOTP; count failures and lock the account at the threshold."""
    hasher = _hasher()
    staff = get_by_login(session, login_id.strip())
    if staff is None:
        # Spend the same time as a real check, so the response does not reveal unknown IDs.
        key = str(current_app.config["APP_ENV"])
        if key not in _DUMMY_HASH:
            _DUMMY_HASH[key] = hasher.hash(secrets.token_hex(16))
        try:
            hasher.verify(_DUMMY_HASH[key], password)
        except (VerificationError, InvalidHashError):
            pass
        audit.record("staff.sign_in", outcome="failure", actor=login_id[:50] or "-", detail={"reason": "unknown"})
        return SignInResult(None, "unknown")
    if staff.disabled_at is not None:
        audit.record("staff.sign_in", outcome="denied", actor=staff.login_id, actor_id=staff.id,
                     detail={"reason": "disabled"})
        return SignInResult(None, "disabled")
    if staff.locked_at is not None:
        audit.record("staff.sign_in", outcome="denied", actor=staff.login_id, actor_id=staff.id,
                     detail={"reason": "locked"})
        return SignInResult(None, "locked")
    try:
        password_ok = hasher.verify(staff.password_hash, password)
    except (VerificationError, InvalidHashError):
        password_ok = False
    reason = "ok"
    if not password_ok:
        reason = "bad_password"
    elif not check_second_factor(staff, totp_code):
        reason = "bad_totp"
    if reason != "ok":
        counted = _count_failure(session, staff)
        if counted is None:
            # Locked (or disabled) by a parallel attempt since this one read the account.
            audit.record("staff.sign_in", outcome="denied", actor=staff.login_id, actor_id=staff.id,
                         detail={"reason": "locked"})
            return SignInResult(None, "locked")
        failed_attempts, now_locked = counted
        if now_locked:
            reason = "now_locked"
        audit.record("staff.sign_in", outcome="failure", actor=staff.login_id, actor_id=staff.id,
                     detail={"reason": reason, "failed_attempts": failed_attempts})
        return SignInResult(None, reason)
    # The code was spent under this transaction's row lock (check_second_factor): no failure can land in between.
    staff.failed_attempts = 0
    if hasher.check_needs_rehash(staff.password_hash):
        staff.password_hash = hasher.hash(password)
    session.flush()
    audit.record("staff.sign_in", actor=staff.login_id, actor_id=staff.id)
    return SignInResult(staff, "ok")


SESSIONS = SessionStore(StaffSession, "staff_id")


def start_session(session: Session, *, staff: Staff, terminal: Terminal | None) -> str:
    """Open a new server-side session on this terminal and return its token."""
    return SESSIONS.start(session, staff.id, terminal_id=terminal.id if terminal else None)


def resume_session(session: Session, token: str, *, terminal_id: int | None) -> tuple[Staff | None, str]:
    """Find the live session for ``token``; end it if idle, too old, moved terminal or account blocked."""
    row = SESSIONS.live(session, token)
    if row is None:
        return None, "ended"
    cfg = current_app.config
    staff = session.get(Staff, row.staff_id)
    reason = None
    if staff is None or staff.disabled_at is not None or staff.locked_at is not None:
        reason = "account_blocked"
    elif row.terminal_id != terminal_id:
        reason = "terminal_changed"
    else:
        reason = SESSIONS.expiry_reason(row, idle=dt.timedelta(minutes=cfg["IDLE_TIMEOUT_MINUTES"]),
                                        absolute=dt.timedelta(hours=cfg["ABSOLUTE_SESSION_HOURS"]))
    if reason is not None:
        SESSIONS.close(session, row, reason)
        return None, reason
    if clock.utcnow() - row.last_seen_at >= dt.timedelta(minutes=cfg["SCREEN_LOCK_MINUTES"]):
        # The screen locked itself in the browser (R19); a reload or a new tab must find it locked here too.
        # Not touched: a locked session still ends at the idle timeout counted from the last real activity.
        return staff, "locked"
    SESSIONS.touch(session, row)
    return staff, "ok"


def unlock_session(session: Session, token: str) -> None:
    """The one-time code was given at the locked screen: the session is active again from now."""
    row = SESSIONS.live(session, token)
    if row is not None:
        SESSIONS.touch(session, row)


def end_session(session: Session, token: str, *, reason: str = "sign_out") -> None:
    """End the session for ``token`` (sign-out)."""
    SESSIONS.end(session, token, reason=reason)


def end_all_sessions(session: Session, staff_id: int, *, reason: str) -> int:
    """End every live session of one account; returns how many were ended."""
    return SESSIONS.end_all(session, staff_id, reason=reason)


def unlock(session: Session, staff: Staff) -> None:
    """Lift a lockout (admin action)."""
    staff.locked_at = None
    staff.failed_attempts = 0
    session.flush()
    audit.record("staff.unlock", target_type="staff", target_id=staff.id, detail={"login_id": staff.login_id})


def disable(session: Session, staff: Staff) -> None:
    """Disable an account and end all its sessions at once."""
    staff.disabled_at = clock.utcnow()
    ended = end_all_sessions(session, staff.id, reason="disabled")
    session.flush()
    audit.record("staff.disable", target_type="staff", target_id=staff.id,
                 detail={"login_id": staff.login_id, "sessions_ended": ended})


def change_password(session: Session, staff: Staff, new_password: str) -> None:
    """Set a new password and end every live session of the account."""
    check_password_policy(new_password)
    staff.password_hash = _hasher().hash(new_password)
    staff.password_changed_at = clock.utcnow()
    ended = end_all_sessions(session, staff.id, reason="password_changed")
    session.flush()
    audit.record("staff.password_change", target_type="staff", target_id=staff.id, detail={"sessions_ended": ended})


def list_staff(session: Session) -> list[Staff]:
    """All accounts, by login ID."""
    return list(session.execute(select(Staff).order_by(Staff.login_id)).scalars())
