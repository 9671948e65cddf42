"""The prefecture server (都道府県サーバー) as a bridge peer: takes the 本人確認情報 updates of 住基法第30条の6 (F8).

Like the real server it matches updates on the 住民票コード, so it refuses, without storing, an
update whose code is missing or fails its check digit (R10's format check on the receiving side).
"""

from __future__ import annotations

from bridge.handlers import PermanentFailure
from bridge.peers.receiver import PeerSpec
from core.checkdigits import is_valid_juminhyo_code
from core.envelope import Opened

PARTY = "peer:prefecture"
IDENTITY_UPDATE = "identity.update"


def check_identity_update(message: Opened) -> None:
    """The 住民票コード an update is matched on must be 11 digits with a valid check digit."""
    code = message.payload["items"].get("juminhyo_code")
    if not isinstance(code, str) or not is_valid_juminhyo_code(code):
        raise PermanentFailure("schema_error", "juminhyo_code is not a valid 住民票コード")


PREFECTURE = PeerSpec(
    name="prefecture",
    title="Prefecture server (simulated)",
    parties=(PARTY,),
    accepted_types=frozenset({IDENTITY_UPDATE}),
    required_items={IDENTITY_UPDATE: frozenset({"juminhyo_code", "change_reason", "change_date"})},
    check=check_identity_update,
)
