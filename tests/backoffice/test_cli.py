"""Back-office commands: staff, terminals, audit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from backoffice.models import Staff, Terminal


def _run(bo_app, *args, input=None):
    return bo_app.test_cli_runner().invoke(args=list(args), input=input)


@pytest.mark.sqlite
def test_staff_add_reads_the_password_and_prints_the_totp_uri_once(bo_app):
    result = _run(bo_app, "staff", "add", "clerk9", "--name", "窓口 九郎", "--role", "clerk", "--role", "approver",
                  input="a long enough passphrase\na long enough passphrase\n")
    assert result.exit_code == 0, result.output
    assert "otpauth://totp/" in result.output and "clerk9" in result.output
    from backoffice.extensions import db

    with bo_app.app_context():
        staff = db.session.execute(select(Staff).where(Staff.login_id == "clerk9")).scalar_one()
        assert {r.value for r in staff.role_set} == {"clerk", "approver"}


def test_staff_add_with_a_short_password_names_the_field_and_creates_nothing(bo_app):
    result = _run(bo_app, "staff", "add", "clerk9", "--name", "X", "--role", "clerk", input="short\nshort\n")
    assert result.exit_code == 2 and "password" in result.output
    from backoffice.extensions import db

    with bo_app.app_context():
        assert db.session.execute(select(Staff)).first() is None


def test_terminals_add_prints_a_code_and_revoke_revokes(bo_app):
    result = _run(bo_app, "terminals", "add", "counter-3")
    assert result.exit_code == 0 and "Enrollment code" in result.output
    assert _run(bo_app, "terminals", "revoke", "counter-3").exit_code == 0
    assert _run(bo_app, "terminals", "revoke", "nowhere").exit_code == 2
    from backoffice.extensions import db

    with bo_app.app_context():
        assert db.session.execute(select(Terminal.revoked_at)).scalar_one() is not None


def test_audit_checkpoint_writes_a_signed_checkpoint(bo_app):
    _run(bo_app, "terminals", "add", "counter-3")
    result = _run(bo_app, "audit", "checkpoint")
    assert result.exit_code == 0 and "Checkpoint at row" in result.output


@pytest.mark.sqlite
def test_seed_prints_the_count_and_the_time_and_a_second_run_changes_nothing(bo_app):
    first = _run(bo_app, "seed", "--residents", "300", "--seed", "7")
    assert first.exit_code == 0, first.output
    assert re.search(r"Seeded 300 residents in \d+ households in [\d.]+ s \(300 records", first.output)
    again = _run(bo_app, "seed", "--residents", "300", "--seed", "7")
    assert again.exit_code == 0 and "nothing changed (300 records" in again.output


def test_demo_creates_staff_of_every_role_and_a_terminal_code_once(bo_app):
    result = _run(bo_app, "demo", "--residents", "50")
    assert result.exit_code == 0, result.output
    for role in ("clerk", "approver", "number_use", "admin", "auditor"):
        assert re.search(rf"roles [a-z_,]*{role}", result.output), role
    assert re.search(r"enrollment code: [A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}", result.output)
    # Two approvers: a case one of them confirmed can be approved by the other.
    assert len(re.findall(r"roles approver", result.output)) == 2
    # A ready card of an adult resident, with what unlocks it, and more residents to issue cards to.
    path, pin, password = re.search(r"Demo card of .+\): (\S+)\n {2}PIN (\d{4}) {2}signature password (\S+)",
                                    result.output).groups()
    card = json.loads(Path(path).read_text())
    assert card["sign"]["cert"] and pin == "1234" and re.fullmatch(r"DEMO\d{4}", password)
    assert len(re.findall(r"^ {2}\d{11} {2}\S+", result.output, re.MULTILINE)) == 5
    assert "already present" in _run(bo_app, "demo").output
