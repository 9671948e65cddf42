"""The municipality registry of the portal: every listed municipality, and which ones take applications here.

The names and codes come from core.addressmaster (data/municipalities.csv); this module adds what only
the portal knows: whether a municipality is connected (runs a back office on the bridge, so online
applications can be routed to it) and the name of its intake queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.queues import QueueNames
from core import addressmaster
from core.config import UnknownMunicipalityError, connected_municipalities
from core.textfold import fold

# Raised when the configuration names a connected municipality the registry does not list.
MunicipalityRegistryError = UnknownMunicipalityError


@dataclass(frozen=True, slots=True)
class RegisteredMunicipality:
    """A municipality as the portal sees it: code, prefecture, name, kana and whether it is connected."""

    code: str
    prefecture: str
    name: str
    kana: str
    connected: bool

    @property
    def intake_queue(self) -> str | None:
        """The bridge queue applications to this municipality go to, or None when it is not connected."""
        return intake_queue_name(self.code) if self.connected else None

    @property
    def full_name(self) -> str:
        """Prefecture and name together (岩手県花巻市), as addresses are written."""
        return f"{self.prefecture}{self.name}"


def intake_queue_name(code: str) -> str:
    """The name of the intake queue of the municipality with ``code`` (``intake:<code>``)."""
    return QueueNames.intake(code)


def _connected_codes() -> frozenset[str]:
    return frozenset(connected_municipalities())


def _registered(municipality: addressmaster.Municipality, connected: frozenset[str]) -> RegisteredMunicipality:
    return RegisteredMunicipality(code=municipality.code, prefecture=municipality.prefecture, name=municipality.name,
                                  kana=municipality.kana, connected=municipality.code in connected)


def all_municipalities() -> list[RegisteredMunicipality]:
    """Every listed municipality, in the order of the data file (by local government code)."""
    connected = _connected_codes()
    return [_registered(m, connected) for m in addressmaster.load_municipalities()]


def get(code: str) -> RegisteredMunicipality | None:
    """The municipality with the 6-digit ``code``, or None if the registry does not list it."""
    municipality = addressmaster.municipality_by_code(code)
    return _registered(municipality, _connected_codes()) if municipality else None


def is_connected(code: str) -> bool:
    """True if applications to the municipality with ``code`` can be filed online here."""
    return code in _connected_codes()


def search(prefix: str) -> list[RegisteredMunicipality]:
    """Municipalities whose name or kana reading starts with ``prefix`` (folded: kana, width and case ignored).

    The prefecture may lead the prefix (「岩手県花巻」); an empty prefix lists every municipality.
    """
    wanted = fold(prefix)
    return [m for m in all_municipalities()
            if fold(m.name).startswith(wanted) or fold(m.kana).startswith(wanted)
            or fold(m.full_name).startswith(wanted)]
