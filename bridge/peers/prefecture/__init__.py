"""The prefecture server (都道府県サーバー) as a bridge peer: takes the 本人確認情報 updates of 住基法第30条の6 (F8).

Like the real server it matches updates on the 住民票コード, so it refuses, without storing, an
update whose code is missing or fails its check digit (R10's format check on the receiving side):
the schema of ``identity.update`` in ``bridge.messages`` requires it, with the ``juminhyo-code`` format.
"""

from __future__ import annotations

from bridge import messages
from bridge.peers.receiver import PeerSpec

PARTY = "peer:prefecture"
IDENTITY_UPDATE = messages.IDENTITY_UPDATE


PREFECTURE = PeerSpec(
    name="prefecture",
    title="Prefecture server (simulated)",
    parties=(PARTY,),
    accepted_types=frozenset({IDENTITY_UPDATE}),
)
