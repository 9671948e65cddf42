"""The simulated J-LIS, its golden card and the trust configuration, shared by the card and PKI tests.

Module-scoped: one PKI per test module (a few seconds of RSA). Two CA generations unless the module
overrides ``pki_generations`` (a fixture returning 1).
"""

from __future__ import annotations

from typing import Any

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


def deliver_card_revocations(app: Any) -> list[str]:
    """J-LIS applies the ``card.revocation`` messages in ``app``'s outbox, as its receiver does on delivery.

    Each is opened with J-LIS's own keys and handed to ``bridge.peers.jlis.receiver.revoke_certificate``
    (the simulated CA revokes, then publishes CRLs); returns the serials. For tests that check a ledger
    change's effect at J-LIS without a relay and a peer worker (tests/bridge/test_card_revocation.py runs those).
    """
    import datetime as dt
    from types import SimpleNamespace

    from sqlalchemy import select

    from backoffice.extensions import db
    from backoffice.models import Outbox
    from bridge.messages import CARD_REVOCATION
    from bridge.peers.jlis import receiver
    from core import clock
    from core.envelope import KeyRegistry, key_directory, open_envelope

    serials = []
    with app.app_context():
        keys = KeyRegistry.from_config({"BRIDGE_KEY_DIRECTORY": str(key_directory(app.config))}, party=receiver.PARTY)
        rows = db.session.execute(select(Outbox).where(Outbox.message_type == CARD_REVOCATION)
                                  .order_by(Outbox.created_at, Outbox.id)).scalars().all()
        for row in rows:
            opened = open_envelope(row.envelope, me=receiver.PARTY, keys=keys, accepted_types={CARD_REVOCATION},
                                   max_age=dt.timedelta(days=1), now=clock.utcnow())
            receiver.revoke_certificate(opened, SimpleNamespace(values=app.config))  # type: ignore[arg-type]
            serials.append(str(opened.payload["items"]["card_serial"]))
    return serials
