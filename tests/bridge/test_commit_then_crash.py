"""Fault (c): a process that dies right after the portal's commit, before any publish, loses nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bridge.outbox import PENDING
from tests.bridge.conftest import BO_PARTY, INTAKE

ROOT = Path(__file__).resolve().parent.parent.parent
WRITE_THEN_DIE = f"""
import os
from bridge.outbox import add_message
from portal import create_app
from portal.extensions import db
from portal.models import Outbox
from tests.bridge.handlers import define_test_messages

define_test_messages()
app = create_app()
with app.app_context():
    keys = app.extensions["bridge"].keys()
    for n in range(30):
        add_message(db.session, Outbox, message_type="test.note", recipient="{BO_PARTY}", payload={{"n": n}},
                    keys=keys, sender="portal", queue="{INTAKE}")
    db.session.commit()
    os._exit(137)  # killed at once: no publish, no clean shutdown
"""


def test_a_process_killed_right_after_its_commit_loses_nothing_and_each_message_takes_effect_once(bridged):
    died = subprocess.run([sys.executable, "-c", WRITE_THEN_DIE], cwd=ROOT, env=bridged.env, timeout=120)
    assert died.returncode == 137
    rows = bridged.rows(bridged.portal_app, "outbox")
    assert len(rows) == 30 and {r.state for r in rows} == {PENDING}
    assert bridged.redis.client().llen(f"rq:queue:{INTAKE}") == 0  # nothing had reached Redis
    # After the restart: the relay finds what the dead process committed, and it is delivered once.
    assert bridged.relay(bridged.portal_app) == 30
    bridged.run_burst("backoffice", INTAKE)
    assert bridged.effects() == (30, 30)
    assert bridged.relay(bridged.portal_app) == 0  # nothing is published twice while waiting for the acks
