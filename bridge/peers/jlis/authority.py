"""The simulated J-LIS (JPKI-SIM) as a ``core.jpki.cardauthority.CardAuthority``: CARD_AUTHORITY = "simulator".

Refused outside development and test (``open_simulator``). The card it issues is the virtual card
file (docs/virtual-card.md).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Mapping
from typing import Any

from bridge.peers.jlis.service import open_simulator, publish
from bridge.peers.jlis.simulator import JlisSimulator
from bridge.peers.jlis.virtualcard import write_card_file
from core.jpki.cardauthority import Holder, IssuedCard, RevocationReason


class SimulatedCardAuthority:
    """CardAuthority over the simulated J-LIS (JPKI-SIM); refused outside development and test."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._config = config
        self._simulator: JlisSimulator = open_simulator(config)

    def issue(
        self, holder: Holder, *, card_expires_on: dt.date, with_signature: bool, replaces_serial: int | None = None
    ) -> IssuedCard:
        """Issue through the simulator, linking the new card to the one it renews (新旧紐付け) when known."""
        replaces = None
        if replaces_serial is not None:
            try:
                replaces = self._simulator.linkage(replaces_serial).card_id
            except LookupError:
                # A card this authority never issued (another simulator directory): issue without the link.
                replaces = None
        return self._simulator.issue_card(
            holder, card_expires_on=card_expires_on, with_signature=with_signature, replaces=replaces
        )

    def write_card(self, issued: IssuedCard, pin: str, password: str | None, *, iterations: int) -> bytes:
        """The virtual card file (UTF-8 JSON), its keys locked by the PIN and the password."""
        buffer = io.StringIO()
        write_card_file(issued, pin, password, buffer, iterations=iterations)
        return buffer.getvalue().encode("utf-8")

    def revoke(self, serial: int, reason: RevocationReason) -> bool:
        """Revoke in the simulator; a hold can be made permanent, anything else is final."""
        before = self._simulator.certificate_record(serial).revocation_reason
        after = self._simulator.revoke(serial, reason).revocation_reason
        return after != before

    def suspend(self, serial: int) -> bool:
        """Put the certificate on hold (certificateHold)."""
        return self.revoke(serial, RevocationReason.CERTIFICATE_HOLD)

    def release_hold(self, serial: int) -> bool:
        """Lift a hold in the simulator."""
        if self._simulator.certificate_record(serial).revocation_reason is not RevocationReason.CERTIFICATE_HOLD:
            return False
        self._simulator.release_hold(serial)
        return True

    def status(self, serial: int) -> RevocationReason | None:
        """Return the simulator's revocation reason for ``serial``."""
        return self._simulator.certificate_record(serial).revocation_reason

    def publish(self) -> None:
        """Write the anchors and a fresh CRL of every CA (service.publish)."""
        publish(self._config, self._simulator)

    def sign_serials_of_card(self, auth_serial: int) -> tuple[int, ...]:
        """The card's signature certificate serials from the simulator's 紐付け情報 (the current one last)."""
        linkage = self._simulator.linkage(auth_serial)
        current = () if linkage.sign_serial is None else (linkage.sign_serial,)
        return (*linkage.previous_sign_serials, *current)
