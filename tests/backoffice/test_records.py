"""Ledger changes (F5): 記載, 修正, 消除 with an append-only history; removed records are kept."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select, text

from backoffice.models import AuditLog, IdoReason, RecordStatus, Resident, ResidentHistory, Sex
from core.addressmaster import load_machiaza
from tests.factories import juminhyo_code, make_household, make_resident, my_number


def test_creating_a_record_writes_its_first_history_entry_and_an_audit_row(bo_session, bo_app):
    from backoffice.services import records

    household = make_household(bo_session)
    town = load_machiaza(bo_app.config["MUNICIPALITY_CODE"])[1]
    resident = records.create_record(
        bo_session, household=household, reason=IdoReason.MOVE_IN, changed_on=dt.date(2026, 4, 1),
        notified_on=dt.date(2026, 4, 3), by="clerk1", my_number=my_number(77),
        atena_number="A0000000000077", juminhyo_code=juminhyo_code(77), name="北上　一郎",
        name_kana="キタカミ　イチロウ",
        birth_date=dt.date(1990, 5, 5), sex=Sex.MALE, relationship_to_head="世帯主", is_householder=True,
        machiaza_code=town.code, banchi="3番地", previous_address="岩手県北上市青柳町1番地")
    bo_session.commit()
    assert resident.address_search.startswith(town.name)
    entry = bo_session.execute(select(ResidentHistory).where(ResidentHistory.resident_id == resident.id)).scalar_one()
    assert entry.reason is IdoReason.MOVE_IN and json.loads(entry.before) == {}
    assert my_number(77) not in entry.after
    assert bo_session.execute(select(AuditLog.action).where(AuditLog.action == "ledger.create")).scalar_one()


def test_a_record_with_a_bad_my_number_is_refused_and_nothing_is_written(bo_session, bo_app):
    from backoffice.services import records

    household = make_household(bo_session)
    bo_session.commit()
    bad = my_number(5)[:-1] + str((int(my_number(5)[-1]) + 1) % 10)
    with pytest.raises(records.RecordError) as err:
        records.create_record(bo_session, household=household, reason=IdoReason.BIRTH, changed_on=dt.date(2026, 1, 1),
                              notified_on=None, by="clerk1", my_number=bad, atena_number="A1",
                              juminhyo_code=juminhyo_code(5), name="x", name_kana="エックス",
                              birth_date=dt.date(2026, 1, 1), sex=Sex.FEMALE, relationship_to_head="子",
                              machiaza_code=load_machiaza("032051")[0].code, banchi="1")
    assert err.value.field == "my_number"
    bo_session.rollback()
    assert bo_session.execute(select(Resident)).first() is None


def test_amending_keeps_before_and_after(bo_session, bo_app):
    from backoffice.services import records

    resident = make_resident(bo_session, bo_app.config)
    records.amend_record(bo_session, resident, reason=IdoReason.MOVE_WITHIN, changed_on=dt.date(2026, 5, 1),
                         notified_on=dt.date(2026, 5, 2), by="clerk1", banchi="99番地", katagaki="ハイツ101")
    bo_session.commit()
    entry = bo_session.execute(select(ResidentHistory)).scalar_one()
    assert json.loads(entry.before)["banchi"] != "99番地"
    assert json.loads(entry.after)["banchi"] == "99番地" and json.loads(entry.after)["katagaki"] == "ハイツ101"
    assert resident.last_reason is IdoReason.MOVE_WITHIN and resident.address_search.endswith("99番地")


def test_the_my_number_cannot_be_amended_as_an_ordinary_item(bo_session, bo_app):
    from backoffice.services import records

    resident = make_resident(bo_session, bo_app.config)
    with pytest.raises(records.RecordError) as err:
        records.amend_record(bo_session, resident, reason=IdoReason.CORRECTION, changed_on=dt.date(2026, 5, 1),
                             notified_on=None, by="clerk1", my_number_encrypted=b"x")
    assert err.value.field == "my_number_encrypted"


@pytest.mark.sqlite
def test_a_removed_record_is_kept_as_a_joshu_and_cannot_be_amended(bo_session, bo_app, backend):
    from backoffice.services import records

    resident = make_resident(bo_session, bo_app.config)
    records.remove_record(bo_session, resident, reason=IdoReason.MOVE_OUT, changed_on=dt.date(2026, 6, 1),
                          notified_on=dt.date(2026, 6, 1), by="clerk1", confirmed_moveout_address="岩手県北上市")
    bo_session.commit()
    kept = bo_session.get(Resident, resident.id)
    assert kept.status is RecordStatus.REMOVED and kept.removal_reason is IdoReason.MOVE_OUT
    assert kept.removed_on == dt.date(2026, 6, 1)
    with pytest.raises(records.RecordError):
        records.amend_record(bo_session, kept, reason=IdoReason.CORRECTION, changed_on=dt.date(2026, 6, 2),
                             notified_on=None, by="clerk1", banchi="1")


def test_history_rows_cannot_be_changed_or_deleted_on_postgresql(bo_session, bo_app):
    from backoffice.services import records

    resident = make_resident(bo_session, bo_app.config)
    records.amend_record(bo_session, resident, reason=IdoReason.CORRECTION, changed_on=dt.date(2026, 5, 1),
                         notified_on=None, by="clerk1", banchi="2番地")
    bo_session.commit()
    engine = bo_app.extensions["engine"]
    for stmt in ("UPDATE resident_history SET recorded_by = 'x'", "DELETE FROM resident_history",
                 "DELETE FROM resident"):
        with pytest.raises(Exception, match=r"append-only|never deleted"), engine.begin() as conn:
            conn.execute(text(stmt))


def _record_again(session, app, *, code: str, number: str, name: str = "花巻　太郎"):  # type: ignore[no-untyped-def]
    """記載 through the service, as a 転入 does."""
    from backoffice.services import records

    return records.create_record(
        session, household=make_household(session), reason=IdoReason.MOVE_IN, changed_on=dt.date(2026, 7, 1),
        notified_on=dt.date(2026, 7, 1), by="clerk1", my_number=number, atena_number=f"R{code}",
        juminhyo_code=code, name=name, name_kana="ハナマキ　タロウ", birth_date=dt.date(1980, 4, 1), sex=Sex.MALE,
        relationship_to_head="世帯主", is_householder=True,
        machiaza_code=load_machiaza(app.config["MUNICIPALITY_CODE"])[0].code, banchi="7番地",
        previous_address="岩手県北上市青柳町1番地")


@pytest.mark.sqlite
def test_a_person_who_returns_gets_a_new_current_record_beside_the_joshu(bo_session, bo_app, backend):
    from backoffice.services import records

    code, number = juminhyo_code(4242), my_number(4242)
    first = make_resident(bo_session, bo_app.config, juminhyo_code=code, my_number=number)
    records.remove_record(bo_session, first, reason=IdoReason.MOVE_OUT, changed_on=dt.date(2020, 3, 31),
                          notified_on=dt.date(2020, 3, 20), by="clerk1", confirmed_moveout_address="岩手県北上市")
    bo_session.commit()
    again = _record_again(bo_session, bo_app, code=code, number=number)
    bo_session.commit()
    rows = bo_session.execute(select(Resident).where(Resident.juminhyo_code == code)
                              .order_by(Resident.id)).scalars().all()
    assert [(r.id, r.status) for r in rows] == [(first.id, RecordStatus.REMOVED), (again.id, RecordStatus.CURRENT)]
    assert rows[0].my_number_index == rows[1].my_number_index is not None
    assert rows[0].removed_on == dt.date(2020, 3, 31)  # the 除票 is kept as it was
    assert records.current_record_with(bo_session, juminhyo_code=code).id == again.id


@pytest.mark.sqlite
def test_a_second_current_record_with_the_same_code_or_my_number_is_refused_naming_the_field(
        bo_session, bo_app, backend):
    from backoffice.services import records

    current = make_resident(bo_session, bo_app.config, juminhyo_code=juminhyo_code(4343), my_number=my_number(4343))
    bo_session.commit()
    for code, number, field, label in ((juminhyo_code(4343), my_number(4344), "juminhyo_code", "住民票コード"),
                                       (juminhyo_code(4345), my_number(4343), "my_number", "個人番号")):
        with pytest.raises(records.RecordError) as err:
            _record_again(bo_session, bo_app, code=code, number=number, name="別人　次郎")
        assert err.value.field == field and label in err.value.message.split(" / ")[0]
        bo_session.rollback()
    assert [r.id for r in bo_session.execute(select(Resident)).scalars()] == [current.id]


@pytest.mark.sqlite
def test_the_database_refuses_a_second_current_record_with_the_same_code_or_my_number(bo_session, bo_app, backend):
    from sqlalchemy.exc import IntegrityError

    make_resident(bo_session, bo_app.config, juminhyo_code=juminhyo_code(4646), my_number=my_number(4646))
    bo_session.commit()
    for overrides in ({"juminhyo_code": juminhyo_code(4646), "my_number": my_number(4647)},
                      {"juminhyo_code": juminhyo_code(4648), "my_number": my_number(4646)}):
        with pytest.raises(IntegrityError):
            make_resident(bo_session, bo_app.config, **overrides)  # straight to the table, past the service
        bo_session.rollback()
        # The same numbers on a 除票 are accepted: that is how a returning person's old record is kept.
        make_resident(bo_session, bo_app.config, status=RecordStatus.REMOVED, removed_on=dt.date(2019, 1, 1),
                      removal_reason=IdoReason.MOVE_OUT, **overrides)
        bo_session.commit()
    statuses = sorted(r.status.value for r in bo_session.execute(select(Resident)).scalars())
    assert statuses == ["current", "removed", "removed"]
