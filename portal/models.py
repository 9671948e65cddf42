"""The portal database (internet zone): resident accounts keyed by card certificate, operation log."""

from __future__ import annotations

from flask_login import UserMixin
from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.audit import AuditHeadMixin, AuditLogMixin
from core.db import intpk, new_metadata, tzdatetime


class Base(DeclarativeBase):
    """Declarative base of the portal database."""

    metadata = new_metadata()


class PortalAccount(UserMixin, Base):
    """A resident's portal account, keyed by the issuer and serial of the card's authentication certificate."""

    __tablename__ = "portal_account"
    __table_args__ = (UniqueConstraint("cert_issuer", "cert_serial"),)

    id: Mapped[intpk]
    cert_issuer: Mapped[str] = mapped_column(String(200))
    cert_serial: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[tzdatetime]


class AuditLog(AuditLogMixin, Base):
    """The portal's operation log (sign-ins, refused access to another resident's data)."""


class AuditHead(AuditHeadMixin, Base):
    """Chain head of the portal operation log."""
