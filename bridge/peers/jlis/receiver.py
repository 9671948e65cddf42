"""J-LIS as a bridge peer: takes ``card.revocation`` from back offices and revokes the certificate (F10, R13).

On a new revocation message the simulated CA (``service.open_simulator``) revokes the named
certificate (the signature certificate after a change of the four basic items or a 転入, the
authentication certificate too of a card lapsed past the 特例転入 limit) with the given reason and
publishes fresh CRLs (``service.publish``), so the portal and the back office refuse the
certificate from then on. The back office sends these in the transaction of the ledger change
(``backoffice.services.cards.send_revocation``); a message delivered twice is stored and applied
once. The message is stored exactly as it arrived: J-LIS gets what the city sent, unedited (R13).

``python -m bridge.peers.jlis.receiver worker|list|refused|keys`` (``python -m bridge.peers.jlis``
keeps ``init`` and ``publish``).
"""

from __future__ import annotations

import sys
from typing import Any

from bridge import messages
from bridge.handlers import PermanentFailure
from bridge.peers.jlis.service import open_simulator, publish
from bridge.peers.jlis.simulator import RevocationReason
from bridge.peers.receiver import PeerConfig, PeerSpec, run_cli
from core.envelope import Opened

PARTY = "peer:jlis"
CARD_REVOCATION = messages.CARD_REVOCATION


def _revocation(items: dict[str, Any]) -> tuple[int, RevocationReason]:
    # Decimal digits and a reason J-LIS knows: the schema of card.revocation checked both on arrival.
    return int(items["card_serial"]), RevocationReason(items["revocation_reason"])


def revoke_certificate(message: Opened, config: PeerConfig) -> None:
    """Revoke the certificate in the simulated CA and publish fresh CRLs (a repeat changes nothing)."""
    serial, reason = _revocation(message.payload["items"])
    simulator = open_simulator(config.values)
    try:
        simulator.revoke(serial, reason)
    except LookupError:
        raise PermanentFailure("unknown_certificate", "J-LIS issued no certificate with that serial") from None
    publish(config.values, simulator)


JLIS = PeerSpec(
    name="jlis",
    title="J-LIS certificate authority (simulated)",
    parties=(PARTY,),
    accepted_types=frozenset({CARD_REVOCATION}),
    effect=revoke_certificate,
)


def main(argv: list[str]) -> int:
    """Run one command of the J-LIS receiver."""
    return run_cli(JLIS, argv, prog="python -m bridge.peers.jlis.receiver")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
