"""Public verification of issued certificates: the municipalities send a code's hash, its issue date and status.

The portal never learns whose certificate it is: no name, no address, no issue number, only what the
verification page may say (valid or revoked, and the dates).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge import messages
from bridge.handlers import PermanentFailure, register
from core import certcode, clock
from core.envelope import Opened
from portal.models import CertificateState, CertificateVerification
from portal.services import audit

ISSUED = messages.CERTIFICATE_ISSUED
REVOKED = messages.CERTIFICATE_REVOKED


class NotYetIssued(RuntimeError):
    """A revocation arrived before its issue; the bridge retries it until the issue is in."""


def _municipality(opened: Opened) -> str:
    return opened.sender.removeprefix("muni:")


def receive_issued(session: Session, opened: Opened) -> None:
    """Record a newly issued certificate (once; the same message again changes nothing)."""
    # 64 hex digits and a date: bridge.messages checked both on arrival.
    digest, issued_on = opened.payload["codeHash"], dt.date.fromisoformat(opened.payload["issuedOn"])
    existing = session.execute(select(CertificateVerification).where(
        CertificateVerification.code_hash == digest)).scalar_one_or_none()
    if existing is not None:
        return
    session.add(CertificateVerification(code_hash=digest, municipality_code=_municipality(opened), issued_on=issued_on,
                                        status=CertificateState.VALID, updated_at=clock.utcnow()))
    session.flush()


def receive_revoked(session: Session, opened: Opened) -> None:
    """Mark a certificate revoked; only the municipality that issued it can revoke it."""
    digest, revoked_on = opened.payload["codeHash"], dt.date.fromisoformat(opened.payload["revokedOn"])
    row = session.execute(select(CertificateVerification).where(
        CertificateVerification.code_hash == digest)).scalar_one_or_none()
    if row is None:
        raise NotYetIssued("revocation before its issue")
    if row.municipality_code != _municipality(opened):
        raise PermanentFailure("unknown_certificate", "revocation of a certificate this sender did not issue")
    row.status, row.revoked_on, row.updated_at = CertificateState.REVOKED, revoked_on, clock.utcnow()


@dataclass(frozen=True)
class Verdict:
    """What the public page says: the status and the dates, nothing else."""

    status: CertificateState
    issued_on: dt.date
    revoked_on: dt.date | None


def verify(session: Session, code: str) -> Verdict | None:
    """Look a typed code up (by its hash); every look-up is in the operation log, without the code."""
    row = None
    if certcode.is_well_formed(code):
        row = session.execute(select(CertificateVerification).where(
            CertificateVerification.code_hash == certcode.code_hash(code))).scalar_one_or_none()
    audit.record(session, "certificate.verify", actor="public", outcome="success" if row else "failure",
                 target_type="certificate_verification", target_id=str(row.id) if row else None,
                 detail={"status": row.status.value if row else "not_found"})
    if row is None:
        return None
    return Verdict(row.status, row.issued_on, row.revoked_on)


def register_handlers() -> None:
    """The certificate messages the portal takes from municipalities."""
    register(ISSUED, receive_issued, zone="portal", senders={"muni:*"})
    register(REVOKED, receive_revoked, zone="portal", senders={"muni:*"})
