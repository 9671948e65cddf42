"""Ledger enquiry (F6): the two-of-four search rule (R11), record view, My Number masking (R2).

Two basic items alone do not stop someone from listing the ledger: one kana of the name and one
character of the address met the rule and listed 405 of the 1,000 demo residents through 210 CSV
exports. So each prefix item has a minimum (``NAME_MIN_CHARS`` folded characters; an address from
the start of a whole 町字 of this municipality), an export holds at most ``LEDGER_EXPORT_MAX_ROWS``
records, and each person may export ``LEDGER_EXPORTS_PER_HOUR`` times an hour, counted from the
operation log. Every refusal is in the operation log.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache

from flask import current_app
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from backoffice.models import AuditLog, Resident, ResidentHistory, Role, Sex, Staff
from backoffice.services import audit, records, support
from core import checkdigits, clock
from core.addressmaster import load_machiaza, machiaza_by_code, municipality_by_code
from core.refusal import Refused
from core.textfold import fold

MASKED = "************"
LEDGER_READERS = frozenset({Role.CLERK, Role.APPROVER, Role.NUMBER_USE})
# A name prefix shorter than this (after folding) matches a large share of any ledger: one kana
# is one of about 70 initials. Two characters still find a one-kanji family name with the first
# character of the given name (「林」 + 「太」).
NAME_MIN_CHARS = 2
# A search counts its matches up to this many and then says "more than": counting every match of a wide
# search reads every matching row, and a clerk cannot use a list of thousands anyway (issue 11).
SEARCH_COUNT_CAP = 1000


class SearchRefused(Refused, ValueError):
    """A search that the rules do not allow; ``field`` names the input to correct, ``code`` the rule."""

    def __init__(self, field: str, code: str) -> None:
        super().__init__(field, code, code=code)


class ExportRefused(ValueError):
    """An export the limits do not allow (too many rows, too many exports this hour); nothing was exported."""

    def __init__(self, code: str, *, rows: int, limit: int) -> None:
        super().__init__(code)
        self.code = code
        self.rows = rows
        self.limit = limit


@lru_cache(maxsize=8)
def _machiaza_keys(municipality_code: str) -> tuple[str, ...]:
    return tuple(fold(m.name) for m in load_machiaza(municipality_code))


def _whole_machiaza(address: str) -> bool:
    """Whether ``address`` begins with the whole name of one of this municipality's 町字."""
    key = fold(address)
    return any(key.startswith(name) for name in _machiaza_keys(current_app.config["MUNICIPALITY_CODE"]))


@dataclass(frozen=True)
class SearchCriteria:
    """What a clerk typed; empty strings mean 'not given'."""

    juminhyo_code: str = ""
    name: str = ""
    address: str = ""
    birth_date: dt.date | None = None
    sex: Sex | None = None

    def counted_items(self) -> list[str]:
        """The basic items that count toward the two-of-four rule (sex never counts)."""
        items = []
        if self.name.strip():
            items.append("name")
        if self.address.strip():
            items.append("address")
        if self.birth_date is not None:
            items.append("birth_date")
        return items

    def for_log(self) -> dict[str, str]:
        """The criteria as written to the operation log."""
        out = {"name": self.name, "address": self.address, "juminhyo_code": self.juminhyo_code,
               "birth_date": self.birth_date.isoformat() if self.birth_date else "",
               "sex": self.sex.value if self.sex else ""}
        return {k: v for k, v in out.items() if v}


@dataclass
class SearchPage:
    """One page of search results."""

    residents: list[Resident]
    total: int  # at most SEARCH_COUNT_CAP; ``more`` says whether there are more matches than that
    page: int
    page_size: int
    more: bool = False
    pages: int = field(init=False)

    def __post_init__(self) -> None:
        self.pages = max(1, -(-self.total // self.page_size))


def _query(criteria: SearchCriteria):  # type: ignore[no-untyped-def]
    if criteria.juminhyo_code:
        code = criteria.juminhyo_code.strip()
        if not checkdigits.is_valid_juminhyo_code(code):
            raise SearchRefused("juminhyo_code", "invalid_juminhyo_code")
        return select(Resident).where(Resident.juminhyo_code == code)
    if len(criteria.counted_items()) < 2:
        raise SearchRefused("name", "two_of_four")
    # Every prefix given must be long enough to narrow: a birth date is always a whole date (the form's type).
    if criteria.name.strip() and len(fold(criteria.name)) < NAME_MIN_CHARS:
        raise SearchRefused("name", "name_too_short")
    if criteria.address.strip() and not _whole_machiaza(criteria.address):
        raise SearchRefused("address", "address_too_short")
    stmt = select(Resident)
    if criteria.name.strip():
        key = fold(criteria.name)
        stmt = stmt.where(or_(Resident.name_search.startswith(key, autoescape=True),
                              Resident.kana_search.startswith(key, autoescape=True)))
    if criteria.address.strip():
        stmt = stmt.where(Resident.address_search.startswith(fold(criteria.address), autoescape=True))
    if criteria.birth_date is not None:
        stmt = stmt.where(Resident.birth_date == criteria.birth_date)
    if criteria.sex is not None:
        stmt = stmt.where(Resident.sex == criteria.sex)
    return stmt


def count_statement(stmt, cap: int = SEARCH_COUNT_CAP):  # type: ignore[no-untyped-def]
    """How many records ``stmt`` matches, counting no further than ``cap`` + 1 (so a wide search stops early)."""
    return select(func.count()).select_from(stmt.with_only_columns(Resident.id).limit(cap + 1).subquery())


def page_statement(stmt, page: int, size: int):  # type: ignore[no-untyped-def]
    """One page of ``stmt``'s matches in kana order."""
    return stmt.order_by(Resident.kana_search, Resident.id).offset((page - 1) * size).limit(size)


def search(session: Session, criteria: SearchCriteria, *, page: int = 1, audited: bool = True) -> SearchPage:
    """Search the ledger; refuses (and logs) a search with fewer than two basic items."""
    size = current_app.config["SEARCH_PAGE_SIZE"]
    try:
        stmt = _query(criteria)
    except SearchRefused as exc:
        audit.record("ledger.search", outcome="denied", detail={"criteria": criteria.for_log(), "reason": exc.code})
        raise
    counted = int(session.execute(count_statement(stmt)).scalar_one())
    total, more = min(counted, SEARCH_COUNT_CAP), counted > SEARCH_COUNT_CAP
    page = max(1, page)
    rows = session.execute(page_statement(stmt, page, size)).scalars().all()
    if audited:
        detail = {"criteria": criteria.for_log(), "results": total, "page": page}
        audit.record("ledger.search", detail={**detail, "more": True} if more else detail)
    return SearchPage(list(rows), total, page, size, more)


def exports_in_last_hour(session: Session, staff_id: int) -> int:
    """How many exports this person made in the last hour, as the operation log records them."""
    since = clock.utcnow() - dt.timedelta(hours=1)
    return int(session.execute(
        select(func.count(AuditLog.seq)).where(AuditLog.action == "ledger.export", AuditLog.outcome == "success",
                                              AuditLog.actor_id == staff_id, AuditLog.ts > since)
    ).scalar_one())


def export(session: Session, criteria: SearchCriteria, *, staff_id: int) -> list[Resident]:
    """Every match for a CSV export, under the search rule, the row cap and the hourly count; all logged.

    A search matching more than ``LEDGER_EXPORT_MAX_ROWS`` exports nothing (narrow it instead of
    receiving a cut list that looks complete). The hourly count is soft: two exports started at the
    same instant may both pass; the log still records both.
    """
    cfg = current_app.config
    logged = criteria.for_log()
    try:
        stmt = _query(criteria)
    except SearchRefused as exc:
        audit.record("ledger.export", outcome="denied", detail={"criteria": logged, "reason": exc.code})
        raise
    total = int(session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one())
    per_hour = int(cfg["LEDGER_EXPORTS_PER_HOUR"])
    cap = int(cfg["LEDGER_EXPORT_MAX_ROWS"])
    refusal = None
    if exports_in_last_hour(session, staff_id) >= per_hour:
        refusal = ExportRefused("hourly_limit", rows=total, limit=per_hour)
    elif total > cap:
        refusal = ExportRefused("too_many_rows", rows=total, limit=cap)
    if refusal is not None:
        audit.record("ledger.export", outcome="denied",
                     detail={"criteria": logged, "reason": refusal.code, "rows": total, "limit": refusal.limit})
        raise refusal
    rows = list(session.execute(stmt.order_by(Resident.kana_search, Resident.id)).scalars())
    audit.record("ledger.export", detail={"criteria": logged, "rows": len(rows), "format": "csv"})
    return rows


def get_record(session: Session, resident_id: int) -> Resident | None:
    """Load a record with its household, history and cards, and log the view."""
    resident = session.execute(
        select(Resident).where(Resident.id == resident_id).options(selectinload(Resident.household))
    ).scalar_one_or_none()
    if resident is not None:
        audit.record("ledger.view", target_type="resident", target_id=resident.id)
        support.alert_access(session, resident.id, "ledger.view")  # R22: every access to a protected record
    return resident


def household_members(session: Session, resident: Resident) -> list[Resident]:
    """Everyone recorded in the same household, householder first."""
    return list(session.execute(
        select(Resident).where(Resident.household_id == resident.household_id)
        .order_by(Resident.is_householder.desc(), Resident.birth_date)
    ).scalars())


def history(session: Session, resident: Resident) -> list[ResidentHistory]:
    """The record's change history, newest first."""
    return list(session.execute(
        select(ResidentHistory).where(ResidentHistory.resident_id == resident.id).order_by(ResidentHistory.id.desc())
    ).scalars())


def may_see_my_number(staff: Staff) -> bool:
    """Only number-use staff may ever see a My Number (R2)."""
    return Role.NUMBER_USE in staff.role_set


def masked_my_number(resident: Resident) -> str:
    """The My Number as anyone sees it without the separate, audited unmask action."""
    return MASKED if resident.my_number_encrypted is not None else ""


def reveal_my_number(resident: Resident, staff: Staff) -> str:
    """Decrypt the My Number for number-use staff; every reveal is in the operation log."""
    if not may_see_my_number(staff):
        audit.record("ledger.unmask", outcome="denied", target_type="resident", target_id=resident.id)
        raise PermissionError("number_use role required")
    value = records.my_number(resident)
    if value is None:
        return ""
    audit.record("ledger.unmask", target_type="resident", target_id=resident.id)
    return value


def address_text(resident: Resident) -> str:
    """The address as printed: municipality-local 町字 name, 番地, 方書."""
    machiaza = machiaza_by_code(current_app.config["MUNICIPALITY_CODE"], resident.machiaza_code)
    text = (machiaza.name if machiaza else resident.machiaza_code) + resident.banchi
    return f"{text}　{resident.katagaki}" if resident.katagaki else text


def full_address_text(resident: Resident) -> str:
    """The address as a certificate prints it: prefecture and municipality (this back office's), then the rest."""
    code = current_app.config["MUNICIPALITY_CODE"]
    municipality = municipality_by_code(code)
    city = f"{municipality.prefecture}{municipality.name}" if municipality else ""
    return city + address_text(resident)


def export_rows(resident_list: list[Resident]) -> list[list[str]]:
    """Rows of the search-result CSV; the My Number column is masked like the screen."""
    return [[r.juminhyo_code, r.name, r.name_kana, r.birth_date.isoformat(), "男" if r.sex == Sex.MALE else "女",
             address_text(r), "現存" if r.status.value == "current" else "除票", masked_my_number(r)]
            for r in resident_list]
