"""Ledger exports (R11): no listing of the ledger by one-character prefixes, a cap per export, a count per hour."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter
from typing import Any

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import func, select

from backoffice.models import AuditLog, Resident, Sex
from core.addressmaster import load_machiaza
from tests.conftest import csrf_from
from tests.factories import make_resident

# Every katakana a name can begin with: what someone listing the ledger one initial at a time tries.
KANA_INITIALS = ("アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワ"
                 "ガギグゲゴザジズゼゾダヂヅデドバビブベボパピプペポヴ")
DEMO_RESIDENTS = 1000


def _address_initials(municipality_code: str, n: int = 3) -> list[str]:
    """The ``n`` commonest first characters of the 町字 names in the public address master."""
    counts = Counter(m.name[0] for m in load_machiaza(municipality_code))
    return [ch for ch, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def _post(client: Any, token: str, **fields: str) -> Any:
    return client.post("/ledger/search", data={"csrf_token": token, **fields})


def _csv_codes(response: Any) -> list[str]:
    if response.mimetype != "text/csv":
        return []
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    return [row[0] for row in rows[1:]]


def _audit(bo_app: Any, action: str) -> list[AuditLog]:
    from backoffice.extensions import db

    with bo_app.app_context():
        return list(db.session.execute(
            select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.seq)).scalars())


def prefix_attack(client: Any, municipality_code: str) -> tuple[set[str], int, int]:
    """One kana of the name and one character of the address, every pair: (records listed, exports, refusals)."""
    token = csrf_from(client, "/ledger/search")
    listed: set[str] = set()
    exports = refused = 0
    for address in _address_initials(municipality_code):
        for kana in KANA_INITIALS:
            response = _post(client, token, name=kana, address=address, export="csv")
            if response.mimetype == "text/csv":
                exports += 1
                listed.update(_csv_codes(response))
            else:
                refused += 1
    return listed, exports, refused


@pytest.fixture
def demo_ledger(bo_app: Any) -> int:
    """The demo ledger as ``flask demo`` seeds it: 1,000 synthetic residents."""
    from backoffice.demo.seed import seed_ledger
    from backoffice.extensions import db

    cfg = bo_app.config
    with bo_app.app_context():
        seed_ledger(db.session, residents=DEMO_RESIDENTS, seed=1, municipality_code=cfg["MUNICIPALITY_CODE"],
                    field_key=cfg["FIELD_ENCRYPTION_KEY"], index_key=cfg["BLIND_INDEX_KEY"],
                    as_of=dt.date(2025, 6, 1))
        db.session.commit()
        return int(db.session.execute(select(func.count(Resident.id))).scalar_one())


@pytest.fixture
def three_sato(bo_app: Any) -> str:
    """Three 佐藤 in the first 町字 of the master; returns that 町字's name."""
    from backoffice.extensions import db

    with bo_app.app_context():
        for given, kana, born in (("花子", "ハナコ", dt.date(1985, 6, 15)), ("太郎", "タロウ", dt.date(1950, 1, 2)),
                                  ("次郎", "ジロウ", dt.date(1985, 6, 15))):
            make_resident(db.session, bo_app.config, name=f"佐藤　{given}", name_kana=f"サトウ　{kana}",
                          sex=Sex.MALE, birth_date=born)
        db.session.commit()
    return load_machiaza(bo_app.config["MUNICIPALITY_CODE"])[0].name


def test_the_one_character_prefix_attack_lists_nobody(backoffice, bo_app, demo_ledger):
    client = backoffice.client_for("clerk1", "clerk")
    listed, exports, refused = prefix_attack(client, bo_app.config["MUNICIPALITY_CODE"])
    assert (len(listed), exports) == (0, 0), (
        f"one-character prefixes listed {len(listed)} of {demo_ledger} residents through {exports} CSV exports")
    assert refused == len(KANA_INITIALS) * 3
    reasons = Counter(r.detail_dict()["reason"] for r in _audit(bo_app, "ledger.export") if r.outcome == "denied")
    assert reasons == Counter({"name_too_short": refused})


def test_a_one_character_name_is_refused_naming_the_field_in_japanese_and_english(backoffice, bo_app, three_sato):
    client = backoffice.client_for("clerk1", "clerk")
    token = csrf_from(client, "/ledger/search")
    response = _post(client, token, name="サ", address=three_sato)
    link = BeautifulSoup(response.text, "html.parser").select_one(".error-summary a[href='#name']")
    assert link is not None and "2文字以上" in link.text, response.text
    assert BeautifulSoup(response.text, "html.parser").select("tr.result") == []
    client.get("/?lang=en")
    response = _post(client, token, name="ｻ", address=three_sato)  # half-width: still one character when folded
    link = BeautifulSoup(response.text, "html.parser").select_one(".error-summary a[href='#name']")
    assert link is not None and "at least 2 characters" in link.text
    denied = [r for r in _audit(bo_app, "ledger.search") if r.outcome == "denied"]
    assert [r.detail_dict()["reason"] for r in denied] == ["name_too_short", "name_too_short"]


def test_an_address_short_of_a_whole_town_area_is_refused_naming_the_field(backoffice, bo_app, three_sato):
    client = backoffice.client_for("clerk1", "clerk")
    token = csrf_from(client, "/ledger/search")
    partial = three_sato[:-1]
    assert all(m.name != partial for m in load_machiaza(bo_app.config["MUNICIPALITY_CODE"]))
    response = _post(client, token, name="佐藤", address=partial, export="csv")
    assert response.mimetype == "text/html"
    link = BeautifulSoup(response.text, "html.parser").select_one(".error-summary a[href='#address']")
    assert link is not None and "町字" in link.text
    assert [(r.outcome, r.detail_dict()["reason"]) for r in _audit(bo_app, "ledger.export")] == [
        ("denied", "address_too_short")]
    # The whole 町字, with or without the 番地 after it, is a search.
    assert len(_csv_codes(_post(client, token, name="佐藤", address=three_sato, export="csv"))) == 3
    assert len(_csv_codes(_post(client, token, name="サトウ", address=f"{three_sato}　", export="csv"))) == 3


def test_an_export_beyond_the_cap_is_refused_and_asks_to_narrow_the_search(backoffice, bo_app, three_sato):
    bo_app.config["LEDGER_EXPORT_MAX_ROWS"] = 2
    client = backoffice.client_for("clerk1", "clerk")
    token = csrf_from(client, "/ledger/search")
    response = _post(client, token, name="佐藤", address=three_sato, export="csv")
    assert response.mimetype == "text/html", "a search matching 3 records was exported with a cap of 2"
    summary = BeautifulSoup(response.text, "html.parser").select_one(".error-summary").text
    assert "絞り込" in summary and "2" in summary
    rows = _audit(bo_app, "ledger.export")
    assert [(r.outcome, r.detail_dict()["reason"], r.detail_dict()["rows"]) for r in rows] == [
        ("denied", "too_many_rows", 3)]
    narrowed = _post(client, token, name="佐藤", address=three_sato, birth_date="1985-06-15", export="csv")
    assert len(_csv_codes(narrowed)) == 2


def test_the_hourly_count_refuses_the_export_after_the_limit(backoffice, bo_app, three_sato):
    from backoffice.extensions import db
    from backoffice.services import ledger

    bo_app.config["LEDGER_EXPORTS_PER_HOUR"] = 3
    client = backoffice.client_for("clerk1", "clerk")
    token = csrf_from(client, "/ledger/search")
    for _ in range(3):
        assert len(_csv_codes(_post(client, token, name="佐藤", address=three_sato, export="csv"))) == 3
    fourth = _post(client, token, name="佐藤", address=three_sato, export="csv")
    assert fourth.mimetype == "text/html", "the 4th export within the hour was served with a limit of 3"
    summary = BeautifulSoup(fourth.text, "html.parser").select_one(".error-summary").text
    assert "1時間" in summary
    rows = _audit(bo_app, "ledger.export")
    assert [(r.outcome, r.detail_dict().get("reason"), r.detail_dict()["rows"]) for r in rows] == [
        ("success", None, 3), ("success", None, 3), ("success", None, 3), ("denied", "hourly_limit", 3)]
    with bo_app.app_context():
        assert ledger.exports_in_last_hour(db.session, rows[0].actor_id) == 3
    # A search is still a search; only the export is counted.
    assert "tr" in _post(client, token, name="佐藤", address=three_sato).text
    backoffice.clock.advance(minutes=61)  # the session has gone idle meanwhile: sign in again
    assert backoffice.sign_in(client, "clerk1").status_code == 302
    again = _post(client, csrf_from(client, "/ledger/search"), name="佐藤", address=three_sato, export="csv")
    assert len(_csv_codes(again)) == 3
