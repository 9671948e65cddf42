"""The ledger holds the items of 別添1, as the assessment document lists them, and nothing else (F13, R3)."""

from __future__ import annotations

import re
from pathlib import Path

from backoffice.models import ARTICLE_30_45_ITEMS, BETTEN1_ITEMS, DERIVED_COLUMNS, Household, Resident

BETTEN1 = Path(__file__).resolve().parents[2] / "data" / "assessment" / "betten1.txt"


def _document_items() -> list[str]:
    """The items of ``1 住民基本台帳ファイル`` in the assessment's 別添1, in the document's order."""
    text = BETTEN1.read_text(encoding="utf-8")
    section = text.split("1 住民基本台帳ファイル", 1)[1].split("2 本人確認情報ファイル", 1)[0]
    numbered = re.findall(r"(\d+)\. ([^、\n]+)", section)
    assert [int(n) for n, _ in numbered] == list(range(1, len(numbered) + 1))
    return [item.strip() for _, item in numbered]


def test_every_item_of_the_document_has_its_place_in_the_ledger():
    items = _document_items()
    assert len(items) == 53
    assert set(items) - set(BETTEN1_ITEMS) == set()  # an item of the document the ledger does not keep
    assert set(BETTEN1_ITEMS) - set(items) == set()  # an item the document does not list
    resident = {c.name for c in Resident.__table__.columns}
    household = {c.name for c in Household.__table__.columns}
    for item, columns in {**BETTEN1_ITEMS, **ARTICLE_30_45_ITEMS}.items():
        for column in columns:
            table, _, name = column.rpartition(".")
            assert name in (household if table == "household" else resident), (item, column)


def test_the_ledger_holds_nothing_else():
    columns = {c.name for c in Resident.__table__.columns}
    placed = {c for cs in [*BETTEN1_ITEMS.values(), *ARTICLE_30_45_ITEMS.values()] for c in cs if "." not in c}
    assert columns - placed - set(DERIVED_COLUMNS) == set()


def test_the_foreign_resident_items_of_article_30_45_are_kept():
    columns = {c.name for c in Resident.__table__.columns}
    assert {"foreign_resident_category", "residence_card_number_encrypted", "residence_status",
            "residence_period_years", "residence_expiry", "became_foreign_resident_on"} <= columns
