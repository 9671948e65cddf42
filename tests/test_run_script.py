"""`make run`'s development key exchange: the portal can seal for every connected municipality."""

from __future__ import annotations

from scripts.run import _exchange_development_keys


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
