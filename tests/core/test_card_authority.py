"""The card authority behind one interface (core/jpki/cardauthority.py), chosen by configuration (F10)."""

from __future__ import annotations

import ast
import datetime as dt
import json
from pathlib import Path

import pytest

from core.config import ConfigError
from core.jpki.cardauthority import Holder, RevocationReason, card_authority

ROOT = Path(__file__).resolve().parents[2]


def test_the_simulator_is_one_card_authority_chosen_by_configuration(jlis_config):
    authority = card_authority({**jlis_config, "CARD_AUTHORITY": "simulator"})
    holder = Holder(name="宮沢　賢", birth_date=dt.date(1990, 8, 27), sex="1", address="岩手県花巻市花城町9-30")
    issued = authority.issue(holder, card_expires_on=dt.date(2036, 8, 27), with_signature=True)
    assert issued.sign is not None
    # 証明書紐付け: the card's authentication certificate names its signature certificate.
    assert authority.sign_serials_of_card(issued.auth.serial) == (issued.sign.serial,)
    assert authority.status(issued.auth.serial) is None
    assert authority.suspend(issued.auth.serial) is True
    assert authority.status(issued.auth.serial) is RevocationReason.CERTIFICATE_HOLD
    assert authority.release_hold(issued.auth.serial) is True and authority.status(issued.auth.serial) is None
    assert authority.revoke(issued.sign.serial, RevocationReason.AFFILIATION_CHANGED) is True
    assert authority.revoke(issued.sign.serial, RevocationReason.AFFILIATION_CHANGED) is False  # already revoked
    card = json.loads(authority.write_card(issued, "1234", "ABC123", iterations=1000))
    assert set(card) >= {"auth", "sign"}
    with pytest.raises(LookupError):
        authority.status(10**30)


def test_an_authority_nobody_built_is_refused_by_name(jlis_config, monkeypatch):
    from core import config

    monkeypatch.setenv("CARD_AUTHORITY", "jlis-production")
    settings = config.load({"APP_ENV": "test"})
    assert settings["CARD_AUTHORITY"] == "jlis-production"  # a setting of the environment
    with pytest.raises(ConfigError, match="'jlis-production'"):
        card_authority({**jlis_config, "CARD_AUTHORITY": settings["CARD_AUTHORITY"]})


@pytest.mark.parametrize("path", ["backoffice/services/cards.py", "backoffice/services/counter.py",
                                  "backoffice/cards/views.py", "backoffice/cards/forms.py",
                                  "backoffice/counter/views.py"])
def test_the_card_and_counter_code_reach_the_authority_only_through_the_interface(path):
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not {m for m in imported if m.startswith("bridge.peers.jlis")}
