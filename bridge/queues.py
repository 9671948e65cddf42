"""Queue names of the bridge, who consumes each, and the rq queue object (JSON serializer, never pickle).

| queue | carries | consumed by |
|---|---|---|
| ``intake:<code>`` | applications, portal → the back office of ``<code>`` | ``muni:<code>`` |
| ``muni:<code>`` | 転出証明書情報, 転入通知, back office → back office | ``muni:<code>`` |
| ``status`` | application status, back offices → portal | ``portal`` |
| ``outbound:<peer>`` | back office → a peer (prefecture, J-LIS, departments, stand-in) | ``peer:<peer>`` |
| ``ack:<party>`` | acknowledgements to ``<party>`` | ``<party>`` |
"""

from __future__ import annotations

import re
from typing import Final

from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from core.envelope import validate_party

ACK = "ack"
_CODE = re.compile(r"^\d{6}$")


class QueueNames:
    """The only place queue names are spelled."""

    STATUS: Final = "status"

    @staticmethod
    def intake(code: str) -> str:
        """Applications from the portal to the back office of municipality ``code``."""
        return f"intake:{_code(code)}"

    @staticmethod
    def muni(code: str) -> str:
        """Messages from other back offices to the back office of municipality ``code``."""
        return f"muni:{_code(code)}"

    @staticmethod
    def outbound(peer: str) -> str:
        """Messages from back offices to one peer (``prefecture`` or ``peer:prefecture`` alike)."""
        party = peer if peer.startswith("peer:") else f"peer:{peer}"
        return f"outbound:{validate_party(party).removeprefix('peer:')}"

    @staticmethod
    def ack(party: str) -> str:
        """Acknowledgements addressed to ``party``."""
        return f"ack:{validate_party(party)}"

    @staticmethod
    def consumer(name: str) -> str:
        """The party whose workers consume queue ``name``; ValueError for a name the system does not use."""
        kind, _, rest = name.partition(":")
        if name == QueueNames.STATUS:
            return "portal"
        if kind in ("intake", "muni") and _CODE.match(rest):
            return f"muni:{rest}"
        if kind == "outbound" and rest:
            return validate_party(f"peer:{rest}")
        if kind == ACK and rest:
            return validate_party(rest)
        raise ValueError(f"not a bridge queue: {name!r}")

    @staticmethod
    def consumed_by(party: str) -> list[str]:
        """The queues ``party`` runs workers for (one worker process per queue)."""
        validate_party(party)
        if party == "portal":
            return [QueueNames.STATUS, QueueNames.ack(party)]
        if party.startswith("muni:"):
            code = party.removeprefix("muni:")
            return [QueueNames.intake(code), QueueNames.muni(code), QueueNames.ack(party)]
        return [QueueNames.outbound(party), QueueNames.ack(party)]

    @staticmethod
    def for_message(*, sender: str, recipient: str, message_type: str) -> str:
        """The queue a message from ``sender`` to ``recipient`` travels on; ValueError where no route exists."""
        validate_party(sender)
        validate_party(recipient)
        if message_type == ACK:
            return QueueNames.ack(recipient)
        if sender == "portal" and recipient.startswith("muni:"):
            return QueueNames.intake(recipient.removeprefix("muni:"))
        if sender.startswith("muni:"):
            if recipient == "portal":
                return QueueNames.STATUS
            if recipient.startswith("muni:") and recipient != sender:
                return QueueNames.muni(recipient.removeprefix("muni:"))
            if recipient.startswith("peer:"):
                return QueueNames.outbound(recipient)
        raise ValueError(f"no route from {sender} to {recipient} for {message_type}")


def get_queue(name: str, connection: Redis) -> Queue:
    """The rq queue ``name`` with the JSON serializer (a pickled job would let Redis run code in a worker)."""
    QueueNames.consumer(name)
    return Queue(name, connection=connection, serializer=JSONSerializer)


def _code(code: str) -> str:
    if not _CODE.match(code):
        raise ValueError(f"a municipality code has 6 digits: {code!r}")
    return code
