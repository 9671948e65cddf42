"""The portal database (internet zone): resident accounts keyed by card certificate, sessions, operation log.

What the portal knows about a resident comes only from the resident: the four basic items of the
signature certificate they signed with when they first linked their card (§3.6 of the card note).
"""

from __future__ import annotations

import datetime as dt
import enum

from flask_login import UserMixin
from sqlalchemy import Boolean, Date, Enum, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.audit import AuditHeadMixin, AuditLogMixin
from core.db import UTCDateTime, intpk, new_metadata, tzdatetime
from core.sessions import ServerSessionMixin


class Base(DeclarativeBase):
    """Declarative base of the portal database."""

    metadata = new_metadata()


def _enum(cls: type[enum.Enum]) -> Enum:
    # Stored by value as a short string.
    return Enum(cls, values_callable=lambda e: [m.value for m in e], native_enum=False, length=30)


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
    # Carried in every API bearer token; API sign-out raises it, so every token issued before is refused.
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    @property
    def is_linked(self) -> bool:
        """Whether the account knows whose card this is."""
        return self.linked_at is not None


class ResidentSession(ServerSessionMixin, Base):
    """A resident's server-side sign-in session."""

    __tablename__ = "resident_session"

    id: Mapped[intpk]
    account_id: Mapped[int] = mapped_column(ForeignKey("portal_account.id"), index=True)


class ApplicationKind(enum.Enum):
    """What a resident filed; the three move parts are linked by one move id."""

    MOVE_OUT = "move_out"  # 転出届
    MOVE_IN_RESERVATION = "move_in_reservation"  # 転入予約
    IN_CITY_RESERVATION = "in_city_reservation"  # 転居予約
    CERTIFICATE = "certificate"  # 住民票の写し / 記載事項証明書
    # The resident's own requests (R20), each one a request case in the back office.
    DISCLOSURE_REQUEST = "disclosure_request"  # 開示請求
    CORRECTION_REQUEST = "correction_request"  # 訂正請求
    SUSPENSION_REQUEST = "suspension_request"  # 利用停止請求


class ApplicationStatus(enum.Enum):
    """Where an application stands, as the resident sees it."""

    SUBMITTED = "submitted"
    RECEIVED = "received"
    IN_REVIEW = "in_review"
    RETURNED = "returned"
    APPROVED = "approved"
    COMPLETED = "completed"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class Move(Base):
    """One move, which may be filed as several applications (転出届 + 転入予約)."""

    __tablename__ = "move"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("portal_account.id"), index=True)
    created_at: Mapped[tzdatetime]


class Application(Base):
    """A signed application as the resident sent it; the signed JWS is kept exactly as received."""

    __tablename__ = "application"

    id: Mapped[intpk]
    receipt_number: Mapped[str] = mapped_column(String(30), unique=True)  # 到達番号
    account_id: Mapped[int] = mapped_column(ForeignKey("portal_account.id"), index=True)
    move_id: Mapped[str | None] = mapped_column(ForeignKey("move.id"), index=True)
    kind: Mapped[ApplicationKind] = mapped_column(_enum(ApplicationKind))
    municipality_code: Mapped[str] = mapped_column(String(6))  # the recipient municipality
    status: Mapped[ApplicationStatus] = mapped_column(_enum(ApplicationStatus), index=True)
    status_reason: Mapped[str | None] = mapped_column(Text)  # a clerk's words, as typed
    status_reason_code: Mapped[str | None] = mapped_column(String(40))  # a reason of the city's own (bridge.reasons)
    version: Mapped[int] = mapped_column(Integer, default=1)
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("application.id"))
    signed_jws: Mapped[str] = mapped_column(Text)
    sign_cert_serial: Mapped[str] = mapped_column(String(64))
    summary: Mapped[str] = mapped_column(Text)  # JSON: what lists show (no more than the resident typed)
    # A granted disclosure request: the answer from the municipality (JSON: the record and who accessed it).
    answer: Mapped[str | None] = mapped_column(Text)
    submitted_at: Mapped[tzdatetime]
    updated_at: Mapped[tzdatetime]

    events: Mapped[list[ApplicationEvent]] = relationship(order_by="ApplicationEvent.id", viewonly=True)


class ApplicationEvent(Base):
    """One step of an application's status history."""

    __tablename__ = "application_event"

    id: Mapped[intpk]
    application_id: Mapped[int] = mapped_column(ForeignKey("application.id"), index=True)
    status: Mapped[ApplicationStatus] = mapped_column(_enum(ApplicationStatus))
    reason: Mapped[str | None] = mapped_column(Text)
    reason_code: Mapped[str | None] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(50))  # resident, portal, or the municipality that handled it
    at: Mapped[tzdatetime]


class Draft(Base):
    """What a resident has typed so far in one journey, kept server-side (never in a cookie or Redis)."""

    __tablename__ = "draft"
    __table_args__ = (UniqueConstraint("account_id", "journey"),)

    id: Mapped[intpk]
    account_id: Mapped[int] = mapped_column(ForeignKey("portal_account.id"))
    journey: Mapped[str] = mapped_column(String(20))
    data: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[tzdatetime]


class AuditLog(AuditLogMixin, Base):
    """The portal's operation log (sign-ins, refused access to another resident's data)."""


class AuditHead(AuditHeadMixin, Base):
    """Chain head of the portal operation log."""


# -- the bridge (bridge/outbox.py): outbox, processed messages, dead letters ------------------------

from bridge.outbox import AlertMixin, DeadLetterMixin, OutboxMixin, ProcessedMessageMixin  # noqa: E402


class Outbox(OutboxMixin, Base):
    """Sealed messages from the portal (applications, withdrawals, acks) until their recipient acknowledges them."""


class ProcessedMessage(ProcessedMessageMixin, Base):
    """Messages the portal has applied (status updates, acks); a duplicate changes nothing."""


class DeadLetter(DeadLetterMixin, Base):
    """Messages to the portal that were refused or kept failing, for an administrator."""


class CertificateState(enum.Enum):
    """What the public verification page may say about a certificate."""

    VALID = "valid"
    REVOKED = "revoked"


class CertificateVerification(Base):
    """A certificate a municipality issued, as the public may check it: the code's hash, dates, status — no person."""

    __tablename__ = "certificate_verification"

    id: Mapped[intpk]
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    municipality_code: Mapped[str] = mapped_column(String(6))
    issued_on: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[CertificateState] = mapped_column(_enum(CertificateState))
    revoked_on: Mapped[dt.date | None] = mapped_column(Date)
    updated_at: Mapped[tzdatetime]

class BridgeAlert(AlertMixin, Base):
    """Bridge events the portal's operator must know about (``flask --app wsgi:portal_app alerts``)."""


class IntakeNotice(Base):
    """A municipality paused the intake of one application kind: its residents see that processing is delayed."""

    __tablename__ = "intake_notice"

    municipality_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean)
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())  # as the municipality sent it: newer wins
