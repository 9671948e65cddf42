"""The simulated J-LIS as the running system sees it: opened from configuration, publishing anchors and CRLs.

The portal and the back office only read what this publishes (trust anchors and CRLs under
``JPKI_*``); the back office asks it for certificates through ``backoffice.services.cards``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bridge.peers.jlis.simulator import JlisSimulator, assert_allowed


def open_simulator(config: Mapping[str, Any]) -> JlisSimulator:
    """Open (or create, on first use) the simulated J-LIS; refused in production."""
    assert_allowed(config["APP_ENV"])
    return JlisSimulator(Path(config["JLIS_DIRECTORY"]) / "ca")


def publish(config: Mapping[str, Any], simulator: JlisSimulator | None = None) -> None:
    """Write the trust anchors and a fresh CRL of every CA where the portal and back office read them."""
    sim = simulator or open_simulator(config)
    anchors = Path(config["JPKI_AUTH_ANCHORS"]).parent
    anchors.mkdir(parents=True, exist_ok=True)
    sim.export_trust_anchors(anchors)
    crl_dir = Path(config["JPKI_CRL_DIRECTORY"])
    crl_dir.mkdir(parents=True, exist_ok=True)
    sim.publish_crls(crl_dir)
