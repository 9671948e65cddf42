"""`make run`'s development key exchange: the portal can seal for every connected municipality."""

from __future__ import annotations

import datetime as dt

import pytest

from scripts.run import PEER_MODULES, SecondCity, _exchange_development_keys, _register_development_parties


def test_the_portal_can_seal_for_every_connected_municipality_after_the_development_key_exchange(tmp_path):
    from core.envelope import KeyRegistry, seal

    directory = str(tmp_path / "keys")
    portal = {"APP_ENV": "development", "BRIDGE_KEY_DIRECTORY": directory, "INSTANCE_PATH": str(tmp_path),
              "CONNECTED_MUNICIPALITIES": ("032051", "032069")}
    backoffice = {**portal, "MUNICIPALITY_CODE": "032051"}
    _exchange_development_keys({**portal, "BRIDGE_PARTY": "portal"}, {**backoffice, "BRIDGE_PARTY": "muni:032051"})
    keys = KeyRegistry.from_config(portal, party="portal")
    for party in ("muni:032051", "muni:032069"):
        assert keys.knows(party)
        seal({"x": 1}, message_type="application.submitted", sender="portal", recipient=party, keys=keys)
    assert KeyRegistry.from_config(backoffice, party="muni:032051").knows("portal")


def test_two_cities_register_every_party_with_every_other_so_each_city_can_seal_for_the_other(tmp_path, monkeypatch):
    from core.envelope import KeyRegistry, open_envelope, seal

    monkeypatch.delenv("SECOND_MUNICIPALITY_CODE", raising=False)
    monkeypatch.delenv("SECOND_BACKOFFICE_DATABASE_URL", raising=False)
    second = SecondCity.from_environment("032051", 5000, tmp_path)
    assert (second.code, second.port) == ("032069", 5001)
    assert second.database_url == f"sqlite:///{tmp_path / 'backoffice-032069.db'}"
    assert second.env({"PATH": "/bin"})["MUNICIPALITY_CODE"] == "032069"
    config = {"APP_ENV": "development", "BRIDGE_KEY_DIRECTORY": str(tmp_path / "keys")}
    peers = [party for parties in PEER_MODULES.values() for party in parties]
    _register_development_parties(config, ["portal", "muni:032051", "muni:032069", *peers])
    hanamaki = KeyRegistry.from_config(config, party="muni:032051")
    kitakami = KeyRegistry.from_config(config, party="muni:032069")
    token = seal({"items": {}}, message_type="moveout.certificate", sender="muni:032051", recipient="muni:032069",
                 keys=hanamaki)
    opened = open_envelope(token.token, me="muni:032069", keys=kitakami,
                           accepted_types={"moveout.certificate"}, max_age=dt.timedelta(days=1),
                           now=dt.datetime.now(dt.UTC))
    assert opened.sender == "muni:032051"
    assert all(hanamaki.knows(party) for party in peers)
    monkeypatch.setenv("SECOND_MUNICIPALITY_CODE", "032051")
    with pytest.raises(SystemExit):
        SecondCity.from_environment("032051", 5000, tmp_path)
