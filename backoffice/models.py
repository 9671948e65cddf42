"""The back-office database: the resident ledger (住民基本台帳), staff, terminals, operation log.

The ledger holds only the items of the 住民基本台帳ファイル listed in 別添1 of the protection
assessment (F13, R3). Derived search keys (folded name, kana and address) are kept beside the
record so a search never has to decrypt or scan; they carry nothing the record does not.
"""

from __future__ import annotations

import datetime as dt
import enum

from flask_login import UserMixin
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.audit import AuditHeadMixin, AuditLogMixin
from core.db import UTCDateTime, intpk, new_metadata, str20, str50, str100, str200, tzdatetime
from core.sessions import ServerSessionMixin


class Base(DeclarativeBase):
    """Declarative base of the back-office database."""

    metadata = new_metadata()


def _enum(cls: type[enum.Enum]) -> Enum:
    # Enums are stored by value, as short strings with a CHECK constraint.
    return Enum(cls, values_callable=lambda e: [m.value for m in e], native_enum=False, length=20)


class Sex(enum.Enum):
    """性別, coded as in the resident-register standard."""

    MALE = "1"
    FEMALE = "2"


class RecordStatus(enum.Enum):
    """Whether a record is current or removed (消除, kept as 除票)."""

    CURRENT = "current"
    REMOVED = "removed"


class IdoReason(enum.Enum):
    """異動事由: why a record was created, changed or removed."""

    BIRTH = "出生"
    MOVE_IN = "転入"
    MOVE_WITHIN = "転居"
    MOVE_OUT = "転出"
    DEATH = "死亡"
    HOUSEHOLD_CHANGE = "世帯変更"
    CORRECTION = "職権修正"
    NATURALISATION = "帰化"
    NATIONALITY_ACQUIRED = "国籍取得"
    RESIDENCE_FORFEITED = "職権消除"
    ARRIVAL_FROM_ABROAD = "国外転入"


class Household(Base):
    """世帯: the people living together, with one householder (世帯主)."""

    __tablename__ = "household"

    id: Mapped[intpk]
    household_number: Mapped[str20] = mapped_column(unique=True)  # 世帯番号
    householder_name: Mapped[str100]  # 世帯主氏名 (as printed on certificates)
    created_at: Mapped[tzdatetime]

    members: Mapped[list[Resident]] = relationship(back_populates="household", order_by="Resident.id")


class Resident(Base):
    """住民票: one person's record in the ledger; removed records stay (除票)."""

    __tablename__ = "resident"
    __table_args__ = (
        Index("ix_resident_name_search_birth", "name_search", "birth_date"),
        Index("ix_resident_kana_search_birth", "kana_search", "birth_date"),
        Index("ix_resident_address_search", "address_search"),
        CheckConstraint("length(juminhyo_code) = 11", name="juminhyo_code_length"),
    )

    id: Mapped[intpk]
    atena_number: Mapped[str20] = mapped_column(unique=True)  # 宛名番号
    household_id: Mapped[int] = mapped_column(ForeignKey("household.id"), index=True)
    juminhyo_code: Mapped[str] = mapped_column(String(11), unique=True)  # 住民票コード
    # 個人番号: AES-256-GCM ciphertext, found only through its keyed blind index.
    my_number_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    my_number_index: Mapped[str | None] = mapped_column(String(64), unique=True)

    name: Mapped[str100]  # 氏名
    name_kana: Mapped[str200]  # カナ氏名 (fullwidth katakana)
    birth_date: Mapped[dt.date] = mapped_column(Date, index=True)  # 生年月日
    sex: Mapped[Sex] = mapped_column(_enum(Sex))  # 性別
    relationship_to_head: Mapped[str20]  # 続柄
    is_householder: Mapped[bool] = mapped_column(Boolean, default=False)  # 世帯主
    # 住所: 町字 code from the address master + 番地 + 方書.
    machiaza_code: Mapped[str20] = mapped_column(index=True)
    banchi: Mapped[str50]
    katagaki: Mapped[str | None] = mapped_column(String(100))
    honseki: Mapped[str | None] = mapped_column(String(200))  # 本籍
    hittosha: Mapped[str | None] = mapped_column(String(100))  # 筆頭者
    # 住民となった年月日 / 事由 / 届出年月日
    became_resident_on: Mapped[dt.date] = mapped_column(Date)
    became_resident_reason: Mapped[IdoReason] = mapped_column(_enum(IdoReason))
    became_resident_notified_on: Mapped[dt.date | None] = mapped_column(Date)
    # 住所を定めた年月日 / 事由 / 届出年月日
    address_set_on: Mapped[dt.date] = mapped_column(Date)
    address_set_reason: Mapped[IdoReason] = mapped_column(_enum(IdoReason))
    address_set_notified_on: Mapped[dt.date | None] = mapped_column(Date)
    previous_address: Mapped[str | None] = mapped_column(String(200))  # 前住所
    planned_moveout_address: Mapped[str | None] = mapped_column(String(200))  # 転出予定地
    planned_moveout_on: Mapped[dt.date | None] = mapped_column(Date)
    confirmed_moveout_address: Mapped[str | None] = mapped_column(String(200))  # 転出確定地
    removed_on: Mapped[dt.date | None] = mapped_column(Date)  # 住民でなくなった年月日
    removal_reason: Mapped[IdoReason | None] = mapped_column(_enum(IdoReason))  # 消除事由
    status: Mapped[RecordStatus] = mapped_column(_enum(RecordStatus), index=True)
    # Foreign residents (外国人住民).
    nationality: Mapped[str | None] = mapped_column(String(50))  # 国籍・地域
    residence_status: Mapped[str | None] = mapped_column(String(50))  # 在留資格
    residence_expiry: Mapped[dt.date | None] = mapped_column(Date)  # 在留期間等の満了の日
    tsusho: Mapped[str | None] = mapped_column(String(100))  # 通称
    alphabet_name: Mapped[str | None] = mapped_column(String(200))  # アルファベット氏名
    # 個別記載事項: the date each status was acquired (None: not applicable).
    nhi_since: Mapped[dt.date | None] = mapped_column(Date)  # 国民健康保険
    late_elderly_since: Mapped[dt.date | None] = mapped_column(Date)  # 後期高齢者医療
    ltc_since: Mapped[dt.date | None] = mapped_column(Date)  # 介護保険
    pension_since: Mapped[dt.date | None] = mapped_column(Date)  # 国民年金
    child_allowance_since: Mapped[dt.date | None] = mapped_column(Date)  # 児童手当
    # The last change (異動事由, 異動年月日, 届出年月日, 更新年月日, 更新者ID).
    last_reason: Mapped[IdoReason] = mapped_column(_enum(IdoReason))
    last_changed_on: Mapped[dt.date] = mapped_column(Date)
    last_notified_on: Mapped[dt.date | None] = mapped_column(Date)
    updated_at: Mapped[tzdatetime]
    updated_by: Mapped[str50]
    # Search keys derived from the items above (folded for width and kana).
    name_search: Mapped[str200]
    kana_search: Mapped[str200]
    address_search: Mapped[str200]

    household: Mapped[Household] = relationship(back_populates="members")
    history: Mapped[list[ResidentHistory]] = relationship(order_by="ResidentHistory.id", viewonly=True)
    cards: Mapped[list[CardRecord]] = relationship(order_by="CardRecord.id", viewonly=True)


class ResidentHistory(Base):
    """異動履歴: an append-only record of every change to a resident record."""

    __tablename__ = "resident_history"

    id: Mapped[intpk]
    resident_id: Mapped[int] = mapped_column(ForeignKey("resident.id"), index=True)
    reason: Mapped[IdoReason] = mapped_column(_enum(IdoReason))
    changed_on: Mapped[dt.date] = mapped_column(Date)  # 異動年月日
    notified_on: Mapped[dt.date | None] = mapped_column(Date)
    recorded_at: Mapped[tzdatetime]
    recorded_by: Mapped[str50]
    before: Mapped[str] = mapped_column(Text)  # JSON; the My Number never appears in it
    after: Mapped[str] = mapped_column(Text)


class CardStatus(enum.Enum):
    """State of a My Number Card as the city knows it."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"
    EXPIRED = "expired"


class CardRecord(Base):
    """A My Number Card issued to a resident, with its two certificate serials."""

    __tablename__ = "card_record"

    id: Mapped[intpk]
    resident_id: Mapped[int] = mapped_column(ForeignKey("resident.id"), index=True)
    card_number: Mapped[str] = mapped_column(String(12), unique=True)
    auth_cert_serial: Mapped[str | None] = mapped_column(String(64), unique=True)
    sign_cert_serial: Mapped[str | None] = mapped_column(String(64), unique=True)
    issued_on: Mapped[dt.date] = mapped_column(Date)
    expires_on: Mapped[dt.date] = mapped_column(Date)
    sign_cert_expires_on: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[CardStatus] = mapped_column(_enum(CardStatus))
    updated_at: Mapped[tzdatetime]


class Role(enum.Enum):
    """Staff roles from DESIGN.md."""

    CLERK = "clerk"
    APPROVER = "approver"
    NUMBER_USE = "number_use"
    ADMIN = "admin"
    AUDITOR = "auditor"


class Staff(UserMixin, Base):
    """A member of staff who signs in with login ID, password and a TOTP code."""

    __tablename__ = "staff"

    id: Mapped[intpk]
    login_id: Mapped[str50] = mapped_column(unique=True)
    name: Mapped[str100]
    password_hash: Mapped[str] = mapped_column(String(200))
    totp_secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    last_totp_step: Mapped[int | None] = mapped_column(Integer)  # refuses a code used twice
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[tzdatetime]
    password_changed_at: Mapped[tzdatetime]

    roles: Mapped[list[StaffRole]] = relationship(cascade="all, delete-orphan", lazy="selectin")

    @property
    def role_set(self) -> frozenset[Role]:
        """The roles this person holds."""
        return frozenset(r.role for r in self.roles)


class StaffRole(Base):
    """One role held by one member of staff."""

    __tablename__ = "staff_role"
    __table_args__ = (UniqueConstraint("staff_id", "role"),)

    id: Mapped[intpk]
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    role: Mapped[Role] = mapped_column(_enum(Role))


class StaffSession(ServerSessionMixin, Base):
    """A server-side sign-in session of a member of staff, bound to the terminal it was opened on."""

    __tablename__ = "staff_session"

    id: Mapped[intpk]
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    terminal_id: Mapped[int | None] = mapped_column(ForeignKey("terminal.id"))


class Terminal(Base):
    """A registered terminal (端末); only these are served personal data (R1)."""

    __tablename__ = "terminal"

    id: Mapped[intpk]
    name: Mapped[str50] = mapped_column(unique=True)
    enrollment_code_hash: Mapped[str | None] = mapped_column(String(64))
    enrollment_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    cookie_token_hash: Mapped[str | None] = mapped_column(String(64))  # rotates on each enrollment
    cert_fingerprint: Mapped[str | None] = mapped_column(String(100), unique=True)
    created_at: Mapped[tzdatetime]
    enrolled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class CaseStatus(enum.Enum):
    """Where a case stands in the back office (the resident sees the portal's status words)."""

    RECEIVED = "received"
    IN_REVIEW = "in_review"
    RETURNED = "returned"
    CONFIRMED = "confirmed"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    COMPLETED = "completed"


class Case(Base):
    """One application that arrived from the portal, with what intake found; unique per receipt number."""

    __tablename__ = "application_case"

    id: Mapped[intpk]
    receipt_number: Mapped[str] = mapped_column(String(30), unique=True)
    message_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(30), index=True)
    move_id: Mapped[str | None] = mapped_column(String(36), index=True)
    status: Mapped[CaseStatus] = mapped_column(_enum(CaseStatus), index=True)
    status_reason: Mapped[str | None] = mapped_column(Text)
    applicant_resident_id: Mapped[int | None] = mapped_column(ForeignKey("resident.id"), index=True)
    mover_resident_ids: Mapped[str] = mapped_column(Text)  # JSON list; null entries for movers not found
    signed_jws: Mapped[str] = mapped_column(Text)  # the application exactly as the resident signed it
    sign_cert_serial: Mapped[str] = mapped_column(String(64))
    signature_checked_at: Mapped[tzdatetime]  # verified again here, with a fresh revocation check
    findings: Mapped[str] = mapped_column(Text)  # JSON list of {code, detail} for the clerk
    sensitive: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[tzdatetime]
    updated_at: Mapped[tzdatetime]


class AuditLog(AuditLogMixin, Base):
    """操作ログ of the back office (R6, R14)."""


class AuditHead(AuditHeadMixin, Base):
    """Chain head of the back-office operation log."""


# -- the bridge (bridge/outbox.py): outbox, processed messages, dead letters ------------------------

from bridge.outbox import AlertMixin, DeadLetterMixin, OutboxMixin, ProcessedMessageMixin  # noqa: E402


class Outbox(OutboxMixin, Base):
    """Sealed messages from this back office (status, notices, acks) until their recipient acknowledges them."""


class ProcessedMessage(ProcessedMessageMixin, Base):
    """Messages this back office has applied (applications, notices, acks); a duplicate changes nothing."""


class DeadLetter(DeadLetterMixin, Base):
    """Messages to this back office that were refused or kept failing, for an administrator (R18)."""


class BridgeAlert(AlertMixin, Base):
    """Bridge events this back office's operator must know about (``flask --app wsgi:backoffice_app alerts``)."""


# -- provisions (backoffice/services/provision.py): the 提供記録 of R4 -------------------------------


class ProvisionRecord(Base):
    """提供記録: one provision (提供) or transfer (移転) of resident data to a recipient of data/recipients.json (R4).

    Item names only, never their values: the values travel sealed in the outbox row ``message_id``.
    """

    __tablename__ = "provision_record"

    id: Mapped[intpk]
    recipient_id: Mapped[str50] = mapped_column(index=True)  # an id of data/recipients.json
    message_type: Mapped[str50]
    message_id: Mapped[str] = mapped_column(String(36), unique=True)  # the outbox row that carried the data
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("resident.id"), index=True)
    items_sent: Mapped[str] = mapped_column(Text)  # JSON list of the item names sent
    legal_basis: Mapped[str] = mapped_column(Text)  # as the data file stated it when the data left
    reason: Mapped[str200]  # why it was sent (the case or event), no personal data
    detail: Mapped[str] = mapped_column(Text)  # JSON: the party, the queue and the item names withheld
    created_at: Mapped[tzdatetime] = mapped_column(index=True)
    created_by: Mapped[str50]
