"""A stand-in for municipalities that run no back office of this code, as a bridge peer (F9).

It takes what one municipality sends another: the 転出証明書情報 (住基法第24条の2) for a resident
moving there, the 転入通知 (住基法第9条第1項) for one who moved here from there, and the 転出取消 that
withdraws a 転出証明書情報. A municipality that runs this code is not a peer but another back office (``muni:<code>``).
"""

from __future__ import annotations

from bridge import messages
from bridge.peers.receiver import PeerSpec

PARTY = "peer:muni-standin"
MOVEOUT_CERTIFICATE = messages.MOVEOUT_CERTIFICATE
MOVEIN_NOTICE = messages.MOVEIN_NOTICE
MOVEOUT_CANCELLATION = messages.MOVEOUT_CANCELLATION  # 転出取消: the certificate sent is withdrawn

STANDIN = PeerSpec(
    name="standin",
    title="Stand-in municipality (simulated)",
    parties=(PARTY,),
    # Both are matched to a person on the 住民票コード at the other municipality: their schemas require it.
    accepted_types=frozenset({MOVEOUT_CERTIFICATE, MOVEIN_NOTICE, MOVEOUT_CANCELLATION}),
)
