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
    BigInteger,
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
    text,
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
    HOUSEHOLDER_CHANGE = "世帯主変更"
    CORRECTION = "職権修正"
    NATURALISATION = "帰化"
    NATIONALITY_ACQUIRED = "国籍取得"
    RESIDENCE_FORFEITED = "職権消除"
    ARRIVAL_FROM_ABROAD = "国外転入"
    MOVE_OUT_CANCELLED = "転出取消"  # the 転出届 cancelled before the 転入: the 除票 is current again


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
        # The search keys are matched by prefix (``LIKE 'key%'``): on PostgreSQL only a byte-order operator class
        # can serve that under any collation but "C". The address index carries the birth date and both name keys,
        # so whatever comes with an address prefix is checked inside the index, not row by row (issue 11).
        Index("ix_resident_name_search_prefix", "name_search", "birth_date",
              postgresql_ops={"name_search": "text_pattern_ops"}),
        Index("ix_resident_kana_search_prefix", "kana_search", "birth_date",
              postgresql_ops={"kana_search": "text_pattern_ops"}),
        Index("ix_resident_address_search_prefix", "address_search", "birth_date", "name_search", "kana_search",
              postgresql_ops={"address_search": "text_pattern_ops", "name_search": "text_pattern_ops",
                              "kana_search": "text_pattern_ops"}),
        CheckConstraint("length(juminhyo_code) = 11", name="juminhyo_code_length"),
        # Both numbers stay with the person for life and a 除票 is kept for ever, so a person who returns
        # has a 除票 and a new current record with the same numbers: unique among current records only (R10).
        Index("uq_resident_juminhyo_code_current", "juminhyo_code", unique=True,
              postgresql_where=text("status = 'current'"), sqlite_where=text("status = 'current'")),
        Index("uq_resident_my_number_index_current", "my_number_index", unique=True,
              postgresql_where=text("status = 'current'"), sqlite_where=text("status = 'current'")),
    )

    id: Mapped[intpk]
    atena_number: Mapped[str20] = mapped_column(unique=True)  # 宛名番号
    household_id: Mapped[int] = mapped_column(ForeignKey("household.id"), index=True)
    juminhyo_code: Mapped[str] = mapped_column(String(11), index=True)  # 住民票コード
    # 個人番号: AES-256-GCM ciphertext, found only through its keyed blind index.
    my_number_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    my_number_index: Mapped[str | None] = mapped_column(String(64), index=True)

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
    removal_notified_on: Mapped[dt.date | None] = mapped_column(Date)  # 住民でなくなった届出年月日
    status: Mapped[RecordStatus] = mapped_column(_enum(RecordStatus), index=True)
    # Foreign residents (外国人住民): 住民基本台帳法第30条の45 and the items of 別添1.
    foreign_resident_category: Mapped[str | None] = mapped_column(String(20))  # 第30条の45に規定する区分
    # 在留カード等の番号 (在留カード, 特別永住者証明書, ...): AES-256-GCM like the My Number; nothing searches it.
    residence_card_number_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    became_foreign_resident_on: Mapped[dt.date | None] = mapped_column(Date)  # 外国人住民となった年月日
    became_foreign_resident_reason: Mapped[str | None] = mapped_column(String(20))  # 外国人住民となった事由
    became_foreign_resident_notified_on: Mapped[dt.date | None] = mapped_column(Date)  # 外国人住民となった届出年月日
    nationality: Mapped[str | None] = mapped_column(String(50))  # 国籍・地域
    residence_status: Mapped[str | None] = mapped_column(String(50))  # 在留資格
    # 在留期間等 (年, 月, 日), as the 在留カード states it, and its end (在留期間等の満了の日).
    residence_period_years: Mapped[int | None] = mapped_column(Integer)
    residence_period_months: Mapped[int | None] = mapped_column(Integer)
    residence_period_days: Mapped[int | None] = mapped_column(Integer)
    residence_expiry: Mapped[dt.date | None] = mapped_column(Date)  # 在留期間等の満了の日
    special_permanent_certificate_issued_on: Mapped[dt.date | None] = mapped_column(Date)  # 特別永住者証明書交付年月日
    tsusho: Mapped[str | None] = mapped_column(String(100))  # 通称
    alphabet_name: Mapped[str | None] = mapped_column(String(200))  # アルファベット氏名
    alphabet_name_kana: Mapped[str | None] = mapped_column(String(200))  # カナアルファベット氏名
    kanji_name: Mapped[str | None] = mapped_column(String(100))  # 漢字氏名 (併記)
    kanji_name_kana: Mapped[str | None] = mapped_column(String(200))  # カナ漢字氏名
    electoral_roll: Mapped[bool | None] = mapped_column(Boolean)  # 選挙人名簿資格 (None: not applicable)
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


# Where the ledger keeps each item of the 住民基本台帳ファイル in 別添1 of the protection assessment
# (data/assessment/betten1.txt, the document's own list): resident columns, or ``household.<column>``.
BETTEN1_ITEMS: dict[str, tuple[str, ...]] = {
    "宛名番号": ("atena_number",), "世帯番号": ("household_id", "household.household_number"),
    "個人番号": ("my_number_encrypted",), "住民票コード": ("juminhyo_code",), "カナ氏名": ("name_kana",),
    "氏名": ("name",), "生年月日": ("birth_date",), "性別": ("sex",), "現住所情報": ("machiaza_code", "banchi"),
    "方書": ("katagaki",), "住民となった年月日": ("became_resident_on",),
    "住民となった事由": ("became_resident_reason",), "住民となった届出年月日": ("became_resident_notified_on",),
    "住民でなくなった年月日": ("removed_on", "status"), "住民でなくなった事由": ("removal_reason",),
    "住民でなくなった届出年月日": ("removal_notified_on",), "住所を定めた年月日": ("address_set_on",),
    "住所を定めた事由": ("address_set_reason",), "住所を定めた届出年月日": ("address_set_notified_on",),
    "外国人住民となった年月日": ("became_foreign_resident_on",),
    "外国人住民となった事由": ("became_foreign_resident_reason",),
    "外国人住民となった届出年月日": ("became_foreign_resident_notified_on",),
    "続柄": ("relationship_to_head", "is_householder"), "世帯主名": ("household.householder_name",),
    "本籍地情報": ("honseki",), "筆頭者": ("hittosha",), "前住所情報": ("previous_address",),
    "転出予定地情報": ("planned_moveout_address", "planned_moveout_on"),
    "転出確定地情報": ("confirmed_moveout_address",), "カナアルファベット氏名": ("alphabet_name_kana",),
    "カナ漢字氏名": ("kanji_name_kana",), "アルファベット氏名": ("alphabet_name",), "漢字氏名": ("kanji_name",),
    "通称": ("tsusho",), "国籍・地域コード": ("nationality",), "在留資格コード": ("residence_status",),
    "在留期間等年": ("residence_period_years",), "在留期間等月": ("residence_period_months",),
    "在留期間等日": ("residence_period_days",), "在留期間等の満了の日": ("residence_expiry",),
    "特別永住者証明書交付年月日": ("special_permanent_certificate_issued_on",),
    "選挙人名簿資格": ("electoral_roll",), "国民健康保険資格情報": ("nhi_since",),
    "後期高齢者医療資格情報": ("late_elderly_since",), "介護保険資格情報": ("ltc_since",),
    "国民年金情報": ("pension_since",), "児童手当受給資格情報": ("child_allowance_since",),
    "異動事由": ("last_reason",), "異動年月日": ("last_changed_on",), "届出年月日": ("last_notified_on",),
    "更新年月日": ("updated_at",), "更新者ID": ("updated_by",),
}
# Items 住民基本台帳法第30条の45 requires on a foreign resident's record that 別添1 does not name: kept, and the
# assessment's list is to be amended (docs/moves.md).
ARTICLE_30_45_ITEMS: dict[str, tuple[str, ...]] = {
    "第30条の45に規定する区分": ("foreign_resident_category",),
    "在留カード等の番号": ("residence_card_number_encrypted",),
}
# Keys derived from the items above, kept to find a record without decrypting or scanning.
DERIVED_COLUMNS = ("id", "my_number_index", "name_search", "kana_search", "address_search")


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
    # 継続利用 after a move between municipalities: the destination takes the record over at the 転入
    # (``transferred_from``); the card is presented with its PIN within 90 days (``continuation_due``,
    # ``continued_on``), else it is marked for renewal (``renewal_required_on``). The origin keeps its own
    # record, marked with the municipality that now keeps the card (``transferred_to``), and no longer acts on it.
    transferred_from: Mapped[str | None] = mapped_column(String(6))
    continuation_due: Mapped[dt.date | None] = mapped_column(Date, index=True)
    continued_on: Mapped[dt.date | None] = mapped_column(Date)
    renewal_required_on: Mapped[dt.date | None] = mapped_column(Date)
    transferred_to: Mapped[str | None] = mapped_column(String(6))


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
    """One application that arrived from the portal, with what intake found; unique per receipt number.

    Two people check each case (R7): the one who confirms it can never approve it. The rule is in
    ``backoffice.services.cases`` and, so that no code path can get round it, in a CHECK constraint.
    ``version`` is bumped on every change, so a stale write fails instead of overwriting another.
    """

    __tablename__ = "application_case"
    __table_args__ = (
        CheckConstraint("approved_by IS NULL OR (confirmed_by IS NOT NULL AND approved_by <> confirmed_by)",
                        name="approver_is_not_confirmer"),
    )

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
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)  # who is working on it
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    confirmed_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))  # 確認
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))  # 承認
    approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}

    claimer: Mapped[Staff | None] = relationship(foreign_keys=[claimed_by], viewonly=True)
    confirmer: Mapped[Staff | None] = relationship(foreign_keys=[confirmed_by], viewonly=True)
    approver: Mapped[Staff | None] = relationship(foreign_keys=[approved_by], viewonly=True)


class AcceptedSignature(Base):
    """A resident's signature this back office has acted on, so that it is acted on once (issue 10, replay).

    ``signature_sha256`` is the SHA-256 of the JWS signing input (header and payload exactly as signed),
    ``part`` what it was taken for here: a case kind (``move_out``, ``move_in_reservation``,
    ``in_city_reservation``, ``certificate``) or ``withdrawal``. One signed move legitimately makes a
    転出届 in one city and a 転入予約 in another; each city records its own. Here, one signature makes
    at most one case per part it names for this city, and a second message carrying it is refused.
    """

    __tablename__ = "accepted_signature"
    __table_args__ = (UniqueConstraint("signature_sha256", "part", name="uq_accepted_signature_part"),)

    id: Mapped[intpk]
    signature_sha256: Mapped[str] = mapped_column(String(64))
    part: Mapped[str] = mapped_column(String(30))
    case_id: Mapped[int] = mapped_column(ForeignKey("application_case.id"), index=True)
    message_id: Mapped[str] = mapped_column(String(36))
    signed_at: Mapped[tzdatetime]  # the iat the resident signed
    accepted_at: Mapped[tzdatetime]


class MoveOutMover(Base):
    """A resident a 転出届 case names as a mover, as intake found them: the duplicate move-out check's index.

    Intake refuses a 転出届 for someone an open one already names. Asking this table (by resident,
    joined to the case's kind and status) keeps that check one indexed query, where reading every open
    move-out case's ``mover_resident_ids`` grew with the season. Written with the case, never changed:
    a move-out case's movers are fixed at intake.
    """

    __tablename__ = "move_out_mover"

    case_id: Mapped[int] = mapped_column(ForeignKey("application_case.id"), primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("resident.id"), primary_key=True, index=True)


class CaseEvent(Base):
    """One step in the history of a case: who did what, from which status to which (append-only)."""

    __tablename__ = "case_event"

    id: Mapped[intpk]
    case_id: Mapped[int] = mapped_column(ForeignKey("application_case.id"), index=True)
    action: Mapped[str] = mapped_column(String(30))  # received, claim, release, confirm, return, reject, approve, ...
    from_status: Mapped[CaseStatus | None] = mapped_column(_enum(CaseStatus))
    to_status: Mapped[CaseStatus | None] = mapped_column(_enum(CaseStatus))
    actor: Mapped[str50]  # a login ID, or "bridge" / "system"
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    detail: Mapped[str | None] = mapped_column(Text)  # JSON
    created_at: Mapped[tzdatetime]


class CaseNote(Base):
    """A note between clerks on a case; never sent to the resident."""

    __tablename__ = "case_note"

    id: Mapped[intpk]
    case_id: Mapped[int] = mapped_column(ForeignKey("application_case.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[tzdatetime]

    author: Mapped[Staff] = relationship(viewonly=True)


class VisitResult(enum.Enum):
    """The outcome of a card check at the counter."""

    VERIFIED = "verified"
    REFUSED = "refused"


class CounterVisit(Base):
    """窓口来庁: one card check at the counter for a case (R9), kept whether it passed or not.

    A 転入 or 転居 is completed only with a verified visit of the case's applicant or a mover,
    made on the same terminal within a short window.
    """

    __tablename__ = "counter_visit"

    id: Mapped[intpk]
    case_id: Mapped[int] = mapped_column(ForeignKey("application_case.id"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))  # the clerk at the counter
    terminal_id: Mapped[int] = mapped_column(ForeignKey("terminal.id"))
    checked_at: Mapped[tzdatetime]
    result: Mapped[VisitResult] = mapped_column(_enum(VisitResult))
    reason: Mapped[str | None] = mapped_column(String(50))  # why a check was refused (a code, no personal data)
    cert_serial: Mapped[str | None] = mapped_column(String(64))  # the card's authentication certificate
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("resident.id"))  # the card holder, once matched


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


# -- paused intake (backoffice/services/intake_pause.py) -------------------------------------------


class IntakePause(Base):
    """An application kind whose intake an administrator paused, and why."""

    __tablename__ = "intake_pause"

    kind: Mapped[str] = mapped_column(String(40), primary_key=True)  # an application kind (bridge.messages)
    reason: Mapped[str] = mapped_column(Text)
    paused_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    paused_by: Mapped[str50]  # the administrator's login id


class HeldMessage(Base):
    """An application held back while its kind is paused: the envelope as received (ciphertext), in arrival order."""

    __tablename__ = "held_message"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(36), unique=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    queue: Mapped[str] = mapped_column(String(80))
    envelope: Mapped[str] = mapped_column(Text)
    held_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


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


# -- certificates (backoffice/services/certificates.py): 住民票の写し and 住民票記載事項証明書 (F7, R14) --------


class CertificateStatus(enum.Enum):
    """Whether an issued certificate still stands (a verifier sees only this and the issue date)."""

    VALID = "valid"
    REVOKED = "revoked"


class IssuedCertificate(Base):
    """One issued certificate: what was printed (sealed), its verification code's hash, its mailing and status.

    The printed content, verification code included, is kept only as AES-256-GCM ciphertext so the same
    document can be printed again; the code itself is never stored in the clear, only its SHA-256.
    """

    __tablename__ = "issued_certificate"

    id: Mapped[intpk]
    case_id: Mapped[int] = mapped_column(ForeignKey("application_case.id"), index=True)
    issue_number: Mapped[str] = mapped_column(String(30), unique=True)  # 発行番号
    kind: Mapped[str20]  # juminhyo (住民票の写し) or kisai_jiko (住民票記載事項証明書)
    resident_ids: Mapped[str] = mapped_column(Text)  # JSON list: whose records it certifies
    items: Mapped[str] = mapped_column(Text)  # JSON list of the optional item names printed (no values)
    copies: Mapped[int] = mapped_column(Integer)
    content_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_on: Mapped[dt.date] = mapped_column(Date)
    issued_at: Mapped[tzdatetime]
    issued_by: Mapped[str50]
    status: Mapped[CertificateStatus] = mapped_column(_enum(CertificateStatus), index=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str | None] = mapped_column(String(50))
    revocation_reason: Mapped[str | None] = mapped_column(String(200))
    mailed_on: Mapped[dt.date | None] = mapped_column(Date)  # 発送日
    tracking_number: Mapped[str | None] = mapped_column(String(30))  # 追跡番号
    mailed_by: Mapped[str | None] = mapped_column(String(50))

# -- moves between municipalities (backoffice/services/moves.py) ------------------------------------


class MoveoutCertificate(Base):
    """転出証明書情報 for one person, received from the former municipality (住基法第24条の2), until the 転入.

    The items travel and stay encrypted (they hold the My Number); matching uses the move id of
    the online application and the digest of its signature, or a keyed index of the folded name and
    birth date, never plaintext.
    """

    __tablename__ = "moveout_certificate"

    id: Mapped[intpk]
    message_id: Mapped[str] = mapped_column(String(36), unique=True)  # the bridge message that carried it
    origin: Mapped[str50]  # the sending party, muni:<code>
    move_id: Mapped[str | None] = mapped_column(String(36), index=True)
    move_signature: Mapped[str | None] = mapped_column(String(64))  # SHA-256 of the signed move's signing input
    juminhyo_code: Mapped[str] = mapped_column(String(11), index=True)
    person_index: Mapped[str] = mapped_column(String(64), index=True)
    items_encrypted: Mapped[bytes] = mapped_column(LargeBinary)  # AES-256-GCM of the JSON items
    case_id: Mapped[int | None] = mapped_column(ForeignKey("application_case.id"), index=True)
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("resident.id"))  # the record the 転入 created
    received_at: Mapped[tzdatetime]
    matched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


# -- support measures (支援措置) for victims of DV, stalking and abuse (backoffice/services/support.py) --


class SupportMeasure(Base):
    """支援措置 on one person and the household members it covers, set and extended by two people (R22).

    In force from ``starts_on`` to ``ends_on`` once approved. No account of the case is kept here (that
    stays on paper with the police or consultation centre's opinion); an extension keeps only its short reason.
    """

    __tablename__ = "support_measure"

    id: Mapped[intpk]
    resident_id: Mapped[int] = mapped_column(ForeignKey("resident.id"), index=True)
    covered_ids: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of the resident ids it also covers
    starts_on: Mapped[dt.date] = mapped_column(Date)
    ends_on: Mapped[dt.date] = mapped_column(Date)
    hide_from_household: Mapped[bool] = mapped_column(Boolean, default=True)  # omitted from others' 世帯票
    requested_by: Mapped[str50]
    requested_at: Mapped[tzdatetime]
    approved_by: Mapped[str | None] = mapped_column(String(50))
    approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # An extension waiting for its second person: the new end, why, and who asked for it.
    pending_ends_on: Mapped[dt.date | None] = mapped_column(Date)
    pending_by: Mapped[str | None] = mapped_column(String(50))
    pending_reason: Mapped[str | None] = mapped_column(String(200))
    # A change of the household members covered, waiting for its second person: the new list (JSON) and who asked.
    pending_covered_ids: Mapped[str | None] = mapped_column(Text)
    pending_covered_by: Mapped[str | None] = mapped_column(String(50))
    # JSON: each approved change, oldest first: an extension (change "extension": ends_on, reason) or a change of
    # the members covered (change "covered": covered), each with who asked (by) and who approved (approved_by).
    history: Mapped[str] = mapped_column(Text, default="[]")


# -- the resident's own requests (backoffice/services/requests.py): 開示・訂正・利用停止請求 (R20) -----------


class ResidentRequest(Base):
    """A disclosure (開示), correction (訂正) or suspension (利用停止) request about one's own record (R20).

    Decided by two people (a clerk confirms, a different approver decides) within the statutory 30
    days, extendable with a reason. A granted correction is made through the ledger's own update.
    """

    __tablename__ = "resident_request"

    id: Mapped[intpk]
    kind: Mapped[str20]  # disclosure, correction, suspension
    resident_id: Mapped[int] = mapped_column(ForeignKey("resident.id"), index=True)
    item: Mapped[str | None] = mapped_column(String(50))  # correction: the item; suspension: the use named
    correct_value: Mapped[str | None] = mapped_column(Text)  # correction: the value the resident says is right
    received_at: Mapped[tzdatetime]
    received_by: Mapped[str50]
    due_on: Mapped[dt.date] = mapped_column(Date, index=True)
    extension_reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str20] = mapped_column(default="received", index=True)  # received, confirmed, granted, refused
    confirmed_by: Mapped[str | None] = mapped_column(String(50))
    decided_by: Mapped[str | None] = mapped_column(String(50))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    decision_reason: Mapped[str | None] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)  # disclosure: JSON of the record and the accesses; no staff names
    # Filed on the portal: its receipt number (the status goes back under it), the SHA-256 of the resident's
    # signing input (one request per signature) and the reason the resident gave.
    receipt_number: Mapped[str | None] = mapped_column(String(30), unique=True)
    signature_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    statement: Mapped[str | None] = mapped_column(Text)
