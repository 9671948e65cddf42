"""The city's other departments (庁内連携) as bridge peers: one receiver serving every ``peer:dept:*`` party (F12).

Each department is a party of its own with its own keys and queue (``outbound:dept:<name>``), so a
message sealed to the tax division cannot be opened as the school board's; the one store records
which department got what.
"""

from __future__ import annotations

from bridge import messages
from bridge.peers.receiver import PeerSpec

# The departments data/recipients.json names (its ids are dept:<name> with "_" where a party has "-").
DEPARTMENTS = ("tax", "nhi", "pension", "child-allowance", "ltc", "school")
PARTIES = tuple(f"peer:dept:{name}" for name in DEPARTMENTS)
NOTICE_TYPES = frozenset(messages.DEPT_NOTICES)

DEPARTMENTS_PEER = PeerSpec(
    name="departments",
    title="City departments (simulated)",
    parties=PARTIES,
    accepted_types=NOTICE_TYPES,
)
