"""Every search shape the two-of-four rule accepts can be served from an index on PostgreSQL (issue 11).

At 300,000 residents a kana prefix with an address prefix took 298 ms (p95) because no index could serve
``LIKE 'prefix%'`` under the database's collation, and the ledger was read whole. Here, with a few thousand
synthetic residents and sequential scans switched off, the plan of each statement the search runs (the
capped count and the page) must narrow ``resident`` through an index condition: no ``Seq Scan`` and no
index scan that only filters.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from typing import Any

import pytest
from sqlalchemy import select, text

from backoffice.models import Resident, Sex
from backoffice.services import ledger

RESIDENTS = 3000


@pytest.fixture
def seeded(bo_app: Any) -> dict[str, Any]:
    """A seeded ledger, analysed, and the items of one resident to search by (as a clerk would type them)."""
    from backoffice.demo.seed import seed_ledger
    from backoffice.extensions import db
    from core.addressmaster import machiaza_by_code

    cfg = bo_app.config
    with bo_app.app_context():
        seed_ledger(db.session, residents=RESIDENTS, seed=3, municipality_code=cfg["MUNICIPALITY_CODE"],
                    field_key=cfg["FIELD_ENCRYPTION_KEY"], index_key=cfg["BLIND_INDEX_KEY"],
                    as_of=dt.date(2025, 6, 1))
        db.session.commit()
        db.session.execute(text("ANALYZE resident"))
        db.session.commit()
        person = db.session.execute(select(Resident).where(Resident.name_search.like("高橋%"))
                                    .order_by(Resident.id)).scalars().first()
        assert person is not None
        return {"name": person.name_search[:2], "kana": person.kana_search[:2],
                "address": machiaza_by_code(cfg["MUNICIPALITY_CODE"], person.machiaza_code).name,
                "birth_date": person.birth_date, "sex": person.sex, "code": person.juminhyo_code}


def shapes(p: dict[str, Any]) -> dict[str, ledger.SearchCriteria]:
    """Every kind of search the rule accepts: the code alone, or two or three basic items (sex only narrows)."""
    c = ledger.SearchCriteria
    return {
        "name+birth_date": c(name=p["name"], birth_date=p["birth_date"]),
        "kana+birth_date": c(name=p["kana"], birth_date=p["birth_date"]),
        "address+birth_date": c(address=p["address"], birth_date=p["birth_date"]),
        "name+address": c(name=p["name"], address=p["address"]),
        "kana+address": c(name=p["kana"], address=p["address"]),
        "kana+address+sex": c(name=p["kana"], address=p["address"], sex=Sex(p["sex"])),
        "name+address+birth_date": c(name=p["name"], address=p["address"], birth_date=p["birth_date"]),
        "juminhyo_code": c(juminhyo_code=p["code"]),
    }


def _unserved_scans(plan: dict[str, Any]) -> list[str]:
    """The scans of ``resident`` in a JSON plan that read it without an index condition narrowing them."""
    out = []
    node_type = plan["Node Type"]
    if plan.get("Relation Name") == "resident" or plan.get("Index Name", "").startswith(("ix_resident", "uq_resident")):
        if node_type == "Seq Scan":
            out.append("Seq Scan on resident")
        elif node_type in ("Index Scan", "Index Only Scan", "Bitmap Index Scan") and "Index Cond" not in plan:
            out.append(f"{node_type} using {plan['Index Name']} without an index condition")
    for child in plan.get("Plans", []):
        out.extend(_unserved_scans(child))
    return out


def _plan(session: Any, statement: Any) -> dict[str, Any]:
    """EXPLAIN of the statement exactly as SQLAlchemy compiles it, with its bound values."""
    compiled = statement.compile(dialect=session.bind.dialect)
    params = {k: v.value if isinstance(v, enum.Enum) else v for k, v in compiled.params.items()}  # as stored
    row = session.connection().exec_driver_sql("EXPLAIN (FORMAT JSON) " + str(compiled), params).scalar_one()
    return (row if isinstance(row, list) else json.loads(row))[0]["Plan"]


def test_every_accepted_search_shape_is_served_by_an_index(bo_app, seeded):
    from backoffice.extensions import db

    with bo_app.test_request_context("/"):
        session = db.session
        session.execute(text("SET LOCAL enable_seqscan = off"))
        size = bo_app.config["SEARCH_PAGE_SIZE"]
        found = {}
        for shape, criteria in shapes(seeded).items():
            stmt = ledger._query(criteria)
            statements = {"count": ledger.count_statement(stmt), "page": ledger.page_statement(stmt, 1, size)}
            for kind, statement in statements.items():
                found[f"{shape} {kind}"] = _unserved_scans(_plan(session, statement))
            assert ledger.search(session, criteria, audited=False).total >= 1, shape
        session.rollback()
    assert {k: v for k, v in found.items() if v} == {}
