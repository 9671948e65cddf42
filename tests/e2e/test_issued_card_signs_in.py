"""A card issued at the counter by the back-office CLI signs in on the portal, in the browser and by API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from backoffice.models import CardRecord
from tests.factories import make_resident

ROOT = Path(__file__).resolve().parent.parent.parent
pytestmark = pytest.mark.browser


def test_a_card_issued_by_the_cli_signs_in_through_the_browser_and_the_reference_client(
        bo_app, live_portal, page, tmp_path):
    from backoffice.extensions import db

    with bo_app.app_context():
        resident = make_resident(db.session, bo_app.config, name="高橋　ミツ", name_kana="タカハシ　ミツ")
        code = resident.juminhyo_code
        db.session.commit()
    card = tmp_path / "card.json"
    result = bo_app.test_cli_runner().invoke(args=["cards", "issue", code, "--pin", "4321", "--password", "XYZ789",
                                                   "--out", str(card)])
    assert result.exit_code == 0, result.output
    assert json.loads(card.read_text())["auth"]["kdf"]["iter"] >= 600_000  # the real cost, in the browser too
    with bo_app.app_context():
        assert db.session.execute(select(CardRecord.status)).scalar_one().value == "active"

    origin = live_portal.config["SITE_ORIGIN"]
    page.goto(origin + "/auth/sign-in")
    page.get_by_label("カード").set_input_files(str(card))
    page.get_by_label("暗証番号（数字4桁）").fill("4321")
    page.get_by_role("button", name="サインイン").click()
    page.wait_for_url(origin + "/auth/link", timeout=30_000)
    page.get_by_label("署名用パスワード（英数字6〜16文字）").fill("XYZ789")
    page.get_by_role("button", name="署名して続ける").click()
    page.wait_for_url(origin + "/mypage/", timeout=30_000)
    assert "高橋　ミツ" in page.locator("#identity").inner_text()

    client = subprocess.run([sys.executable, str(ROOT / "docs/examples/reference_client.py"), origin, str(card), "4321",
                             "XYZ789"], capture_output=True, text=True, timeout=120)
    assert client.returncode == 0, client.stderr
    assert json.loads(client.stdout)["signed_in_as"]["name"] == "高橋　ミツ"
