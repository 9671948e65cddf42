"""The ledger holds only the items of 別添1 (F13, R3)."""

from __future__ import annotations

from backoffice.models import Resident

# The 住民基本台帳ファイル items of 別添1 that this ledger stores, by column.
ASSESSED_ITEMS = {
    "atena_number", "household_id", "juminhyo_code", "my_number_encrypted", "name", "name_kana", "birth_date", "sex",
    "relationship_to_head", "is_householder", "machiaza_code", "banchi", "katagaki", "honseki", "hittosha",
    "became_resident_on", "became_resident_reason", "became_resident_notified_on", "address_set_on",
    "address_set_reason", "address_set_notified_on", "previous_address", "planned_moveout_address",
    "planned_moveout_on", "confirmed_moveout_address", "removed_on", "removal_reason", "status", "nationality",
    "residence_status", "residence_expiry", "tsusho", "alphabet_name", "nhi_since", "late_elderly_since", "ltc_since",
    "pension_since", "child_allowance_since", "last_reason", "last_changed_on", "last_notified_on", "updated_at",
    "updated_by",
}
# Keys derived from the items above, needed to find a record without decrypting or scanning.
DERIVED = {"id", "my_number_index", "name_search", "kana_search", "address_search"}


def test_the_ledger_holds_only_the_items_of_the_assessment():
    columns = {c.name for c in Resident.__table__.columns}
    assert columns - ASSESSED_ITEMS - DERIVED == set()
    assert ASSESSED_ITEMS - columns == set()
