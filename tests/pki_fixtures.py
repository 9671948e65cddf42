"""The simulated J-LIS, its golden card and the trust configuration, shared by the card and PKI tests.

Module-scoped: one PKI per test module (a few seconds of RSA). Two CA generations unless the module
overrides ``pki_generations`` (a fixture returning 1).
"""

from __future__ import annotations

import pytest

from bridge.peers.jlis.simulator import IssuedCard
from bridge.peers.jlis.testkit import SimulatedPki
from core.jpki import TrustConfig


@pytest.fixture(scope="module")
def pki_generations() -> int:
    """How many CA generations the module's simulated J-LIS has (override with 1 for one)."""
    return 2


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory, pki_generations: int) -> SimulatedPki:
    """A simulated J-LIS with published CRLs."""
    return SimulatedPki(tmp_path_factory.mktemp("pki"), generations=pki_generations)


@pytest.fixture(scope="module")
def card(pki: SimulatedPki) -> IssuedCard:
    """The golden card: an adult's, with both certificates, from the latest generation."""
    return pki.issue_card()


@pytest.fixture(scope="module")
def trust(pki: SimulatedPki) -> TrustConfig:
    """The test TrustConfig over every generation's anchors."""
    return pki.trust()
