"""The portal database (internet zone): resident accounts keyed by card certificate, sessions, operation log.

What the portal knows about a resident comes only from the resident: the four basic items of the
signature certificate they signed with when they first linked their card (§3.6 of the card note).
"""

from __future__ import annotations

import datetime as dt

from flask_login import UserMixin
from sqlalchemy import Date, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.audit import AuditHeadMixin, AuditLogMixin
from core.db import UTCDateTime, intpk, new_metadata, tzdatetime
from core.sessions import ServerSessionMixin


class Base(DeclarativeBase):
    """Declarative base of the portal database."""

    metadata = new_metadata()


class PortalAccount(UserMixin, Base):
    """A resident's portal account, keyed by the issuing CA's key id and the serial of the card's auth certificate."""

    __tablename__ = "portal_account"
    __table_args__ = (UniqueConstraint("cert_issuer", "cert_serial"),)

    id: Mapped[intpk]
    # Key identifier of the issuing CA: two CA generations share one DN.
    cert_issuer: Mapped[str] = mapped_column(String(200))
    cert_serial: Mapped[str] = mapped_column(String(64))
    cert_not_after: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[tzdatetime]
    last_sign_in_at: Mapped[tzdatetime]
    # The link to the four basic items, made once with a signature (identity binding).
    linked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    sign_cert_issuer: Mapped[str | None] = mapped_column(String(200))
    sign_cert_serial: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(100))
    address: Mapped[str | None] = mapped_column(String(300))
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    sex: Mapped[str | None] = mapped_column(String(1))

    @property
    def is_linked(self) -> bool:
        """Whether the account knows whose card this is."""
        return self.linked_at is not None


class ResidentSession(ServerSessionMixin, Base):
    """A resident's server-side sign-in session."""

    __tablename__ = "resident_session"

    id: Mapped[intpk]
    account_id: Mapped[int] = mapped_column(ForeignKey("portal_account.id"), index=True)


class AuditLog(AuditLogMixin, Base):
    """The portal's operation log (sign-ins, refused access to another resident's data)."""


class AuditHead(AuditHeadMixin, Base):
    """Chain head of the portal operation log."""
