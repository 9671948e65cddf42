"""Test data factories: ledger records built the way the ledger stores them."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from sqlalchemy.orm import Session

from backoffice.models import Household, IdoReason, RecordStatus, Resident, Sex
from core import checkdigits, clock
from core.addressmaster import load_machiaza
from core.fieldcrypto import FieldCipher, blind_index
from core.textfold import fold
from tests.leakscan import REGISTRY

_counter = itertools.count(1)


def my_number(n: int) -> str:
    """A valid 12-digit My Number derived from ``n``."""
    return checkdigits.make_my_number(f"{(n * 7919 + 31337) % 10**11:011d}")


def juminhyo_code(n: int) -> str:
    """A valid 11-digit 住民票コード derived from ``n``."""
    return checkdigits.make_juminhyo_code(f"{(n * 104729 + 17) % 10**10:010d}")


def make_household(session: Session, *, householder_name: str = "花巻　太郎") -> Household:
    """A household (flushed)."""
    n = next(_counter)
    household = Household(household_number=f"H{n:09d}", householder_name=householder_name, created_at=clock.utcnow())
    session.add(household)
    session.flush()
    return household


def make_resident(session: Session, config: Any, *, household: Household | None = None, **overrides: Any) -> Resident:
    """A current resident of the configured municipality, with an encrypted My Number (flushed)."""
    n = next(_counter)
    code = config["MUNICIPALITY_CODE"]
    machiaza = load_machiaza(code)[0]
    number = overrides.pop("my_number", my_number(n))
    values: dict[str, Any] = {
        "atena_number": f"T{n:014d}",
        "juminhyo_code": juminhyo_code(n),
        "name": "花巻　太郎",
        "name_kana": "ハナマキ　タロウ",
        "birth_date": dt.date(1980, 4, 1),
        "sex": Sex.MALE,
        "relationship_to_head": "世帯主",
        "is_householder": True,
        "machiaza_code": machiaza.code,
        "banchi": f"{n}番地",
        "katagaki": None,
        "became_resident_on": dt.date(1980, 4, 1),
        "became_resident_reason": IdoReason.BIRTH,
        "address_set_on": dt.date(1980, 4, 1),
        "address_set_reason": IdoReason.BIRTH,
        "status": RecordStatus.CURRENT,
        "last_reason": IdoReason.BIRTH,
        "last_changed_on": dt.date(1980, 4, 1),
        "updated_at": clock.utcnow(),
        "updated_by": "test",
    }
    values.update(overrides)
    if household is None:
        household = make_household(session, householder_name=values["name"])
    machiaza_name = next(m.name for m in load_machiaza(code) if m.code == values["machiaza_code"])
    resident = Resident(
        household_id=household.id,
        my_number_encrypted=FieldCipher(config["FIELD_ENCRYPTION_KEY"]).encrypt(number, context=b"my_number"),
        my_number_index=blind_index(config["BLIND_INDEX_KEY"], number, purpose="my_number"),
        name_search=fold(values["name"]),
        kana_search=fold(values["name_kana"]),
        address_search=fold(machiaza_name + values["banchi"]),
        **values,
    )
    session.add(resident)
    session.flush()
    REGISTRY.add(names=[values["name"], values["name_kana"]], addresses=[machiaza_name + values["banchi"]],
                 codes=[values["juminhyo_code"]])  # the leak scan looks for them where they must not be
    return resident
