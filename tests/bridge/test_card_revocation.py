# ruff: noqa: F811  (the peers' fixtures are test_peers.py's, imported by name and requested by the tests)
"""Card revocations a ledger change causes go to J-LIS over the bridge (F10, R13).

Everything real: the back office on PostgreSQL, a private redis-server, the relay, the J-LIS peer's
worker as a process revoking in the simulated CA, and the back office's worker applying its ack.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from bridge.outbox import ACKNOWLEDGED
from bridge.peers.jlis import receiver as jlis
from bridge.peers.jlis.service import open_simulator
from bridge.queues import QueueNames
from core import clock as clock_module
from core.addressmaster import load_machiaza
from tests.bridge.test_peers import (  # noqa: F401  (the fixtures)
    ACK_QUEUE,
    ack_count,
    bridge_settings,
    enqueue,
    peer_keys,
    peers,
)
from tests.factories import make_resident


def _resident_with_card(bridged: Any) -> tuple[int, int, int]:
    """A resident of 33 holding a card issued at the counter; returns (resident id, auth serial, sign serial)."""
    from backoffice.extensions import db
    from backoffice.services import cards

    app = bridged.bo_app
    with app.test_request_context("/"):
        resident = make_resident(db.session, app.config, birth_date=dt.date(1993, 5, 1))
        card, _file = cards.issue_card(db.session, resident_code=resident.juminhyo_code, pin="1234",
                                       password="ABC123", issued_by="clerk1", iterations=1000)
        db.session.commit()
        assert card.sign_cert_serial is not None and card.auth_cert_serial is not None
        return int(resident.id), int(card.auth_cert_serial), int(card.sign_cert_serial)


def _change_address(bridged: Any, resident_id: int, *, commit: bool) -> bool:
    """A 転居 as the counter records it: amend the address, then the cards hook, in one transaction."""
    from backoffice.extensions import db
    from backoffice.models import IdoReason, Resident
    from backoffice.services import cards, records

    app = bridged.bo_app
    other = load_machiaza(app.config["MUNICIPALITY_CODE"])[1]
    with app.app_context():
        resident = db.session.get(Resident, resident_id)
        before = records.snapshot(resident)
        today = clock_module.today_jst()
        records.amend_record(db.session, resident, reason=IdoReason.MOVE_WITHIN, changed_on=today,
                             notified_on=today, by="clerk1", machiaza_code=other.code, banchi="2番地")
        sent = cards.revoke_for_changed_basic_items(db.session, resident=resident, before=before,
                                                    after=records.snapshot(resident), by="clerk1")
        if commit:
            db.session.commit()
        else:
            db.session.rollback()
    return sent


def test_a_rolled_back_change_revokes_nothing_and_a_committed_one_reaches_jlis_once(
        bridged, peers, jlis_config):
    resident_id, auth, sign = _resident_with_card(bridged)
    simulator = open_simulator(jlis_config)

    # The change fails after the hook (the transaction rolls back): the certificate stays valid.
    assert _change_address(bridged, resident_id, commit=False) is True
    assert simulator.certificate_record(sign).revocation_reason is None
    assert bridged.relay(bridged.bo_app) == 0

    assert _change_address(bridged, resident_id, commit=True) is True
    [row] = bridged.rows(bridged.bo_app, "outbox")
    assert (row.message_type, row.recipient) == ("card.revocation", jlis.PARTY)
    assert bridged.relay(bridged.bo_app) == 1
    # Delivered a second time, as a republish after a lost ack puts it: J-LIS stores and applies it once.
    enqueue(bridged, QueueNames.outbound(jlis.PARTY), row.id, row.envelope, job_id=secrets.token_hex(8))
    log = peers.work("jlis")

    [got] = peers.store("jlis").received()
    assert got.payload == {"items": {"card_serial": str(sign), "revocation_reason": "affiliationChanged"}}
    assert "duplicate suppressed" in log
    assert simulator.certificate_record(sign).revocation_reason.value == "affiliationChanged"
    assert simulator.certificate_record(auth).revocation_reason is None  # the card still signs in
    assert ack_count(bridged) == 2
    bridged.run_burst("backoffice", ACK_QUEUE, cli=True)
    assert [r.state for r in bridged.rows(bridged.bo_app, "outbox")] == [ACKNOWLEDGED]
