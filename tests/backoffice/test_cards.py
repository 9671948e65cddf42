"""Card issuance at the counter: the CLI, the pages, revocation, suspension and the four-items hook.

Everything is real: PostgreSQL through the fixtures, RSA keys from the simulated J-LIS, PBKDF2 card
files, CRLs written to disk and read back by core.jpki. PBKDF2 runs with 1,000 iterations except in
the one test that checks the default.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import stat
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select

from backoffice.models import AuditLog, CardRecord, CardStatus, IdoReason, RecordStatus
from backoffice.services import cards, records
from bridge.peers.jlis.cardclient import build_auth_token, build_signed_application
from bridge.peers.jlis.virtualcard import load_card, open_slot, slot_certificate
from core import clock as clock_module
from core.addressmaster import load_machiaza
from core.jpki import (
    AuthTokenError,
    BasicItems,
    RefusalCode,
    SignedApplicationError,
    TrustConfig,
    VerifiedAuth,
    verify_auth_token,
    verify_signed_application,
)
from tests.conftest import csrf_from
from tests.factories import juminhyo_code, make_resident
from tests.pki_fixtures import deliver_card_revocations

FAST = 1_000
PIN, PASSWORD = "1234", "ABC123"


@pytest.fixture(autouse=True)
def fast_card_files(bo_app: Any) -> None:
    """Card files with 1,000 PBKDF2 iterations, so the suite stays fast (the default is tested once)."""
    bo_app.config["CARD_FILE_ITERATIONS"] = FAST


# -- helpers ------------------------------------------------------------------------------------------


def _a_month_ago() -> dt.date:
    day = clock_module.today_jst() - dt.timedelta(days=30)
    # Never 29 February, so "the same day N years later" always exists.
    return day - dt.timedelta(days=1) if (day.month, day.day) == (2, 29) else day


def born(age: int) -> dt.date:
    """A birth date that makes the holder ``age`` today, with the birthday a month ago."""
    day = _a_month_ago()
    return day.replace(year=day.year - age)


def nth_birthday_after_today(birth_date: dt.date, n: int) -> dt.date:
    """The n-th birthday after today of someone whose birthday was a month ago."""
    return birth_date.replace(year=_a_month_ago().year + n)


def add_resident(app: Any, **overrides: Any) -> Any:
    """A committed current resident; returns the row (detached, attributes loaded)."""
    from backoffice.extensions import db

    with app.app_context():
        resident = make_resident(db.session, app.config, **overrides)
        db.session.commit()
        db.session.refresh(resident)
        db.session.expunge(resident)
    return resident


def run(app: Any, *args: str) -> Any:
    """Invoke a back-office command."""
    return app.test_cli_runner().invoke(args=list(args))


def card_records(app: Any) -> list[CardRecord]:
    """Every card record, oldest first."""
    from backoffice.extensions import db

    with app.app_context():
        rows = list(db.session.execute(select(CardRecord).order_by(CardRecord.id)).scalars())
        db.session.expunge_all()
    return rows


def audit_rows(app: Any, action: str) -> list[AuditLog]:
    """The operation-log rows of one action, in order."""
    from backoffice.extensions import db

    with app.app_context():
        rows = list(db.session.execute(select(AuditLog).where(AuditLog.action == action)
                                       .order_by(AuditLog.seq)).scalars())
        db.session.expunge_all()
    return rows


def trust(app: Any) -> TrustConfig:
    """What the portal trusts, built from the app's configured anchor and CRL paths."""
    cfg = app.config
    return TrustConfig.from_files(origin=cfg["SITE_ORIGIN"], app_env=cfg["APP_ENV"],
                                  auth_anchors_pem=cfg["JPKI_AUTH_ANCHORS"], sign_anchors_pem=cfg["JPKI_SIGN_ANCHORS"],
                                  crl_directory=cfg["JPKI_CRL_DIRECTORY"])


def new_nonce() -> str:
    """A 44-character challenge nonce, as the portal issues them."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def sign_in(app: Any, card_file: Any) -> VerifiedAuth:
    """Sign in with the card's auth slot and verify the token as the portal does."""
    nonce = new_nonce()
    token = build_auth_token(load_card(card_file), PIN, origin=app.config["SITE_ORIGIN"], nonce=nonce)
    return verify_auth_token(token, nonce=nonce, trust=trust(app))


def sign_application(app: Any, card_file: Any, expected_items: BasicItems | None = None) -> Any:
    """Sign an application with the card's sign slot and verify it as the back office does on arrival."""
    nonce, origin = new_nonce(), app.config["SITE_ORIGIN"]
    jws = build_signed_application(load_card(card_file), PASSWORD, aud=origin, nonce=nonce,
                                   application={"type": "move_out"})
    return verify_signed_application(jws, expected_nonce=nonce, expected_aud=origin, trust=trust(app),
                                     expected_items=expected_items)


def issue(app: Any, resident: Any, *, password: str | None = PASSWORD) -> tuple[CardRecord, bytes]:
    """Issue a card through the service (as a command would) and commit."""
    from backoffice.extensions import db

    with app.app_context():
        card, data = cards.issue_card(db.session, resident_code=resident.juminhyo_code, pin=PIN, password=password,
                                      issued_by="clerk1")
        db.session.commit()
        db.session.refresh(card)
        db.session.expunge(card)
    return card, data


# -- the issue command --------------------------------------------------------------------------------


def test_cards_issue_writes_a_card_file_that_signs_in_with_its_pin_and_records_the_card(bo_app, tmp_path):
    resident = add_resident(bo_app, birth_date=born(40), name="花巻　一郎")
    out = tmp_path / "card.json"
    result = run(bo_app, "cards", "issue", resident.juminhyo_code, "--pin", PIN, "--password", PASSWORD,
                 "--out", str(out))
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    document = load_card(out)
    [card] = card_records(bo_app)
    assert card.card_number in result.output
    key = open_slot(document, "auth", PIN)
    assert key.public_key().public_numbers() == slot_certificate(document, "auth").public_key().public_numbers()
    verified = sign_in(bo_app, out)
    assert str(verified.serial) == card.auth_cert_serial
    assert (card.resident_id, card.status) == (resident.id, CardStatus.ACTIVE)
    assert len(card.card_number) == 12 and card.card_number.isdigit()
    assert card.sign_cert_serial == str(slot_certificate(document, "sign").serial_number)
    assert card.issued_on == clock_module.today_jst()
    assert card.expires_on == nth_birthday_after_today(resident.birth_date, 10)
    assert card.sign_cert_expires_on == nth_birthday_after_today(resident.birth_date, 5)
    machiaza = next(m for m in load_machiaza(bo_app.config["MUNICIPALITY_CODE"]) if m.code == resident.machiaza_code)
    ledger_items = BasicItems(name="花巻　一郎", sex="1", birth_date=resident.birth_date,
                              address="岩手県花巻市" + machiaza.name + resident.banchi)
    assert sign_application(bo_app, out, expected_items=ledger_items).items.matches(ledger_items)
    [row] = audit_rows(bo_app, "card.issue")
    assert (row.actor, row.target_type, row.target_id) == ("cli", "card", str(card.id))
    assert row.detail_dict()["card_number"] == card.card_number
    assert PASSWORD not in row.canonical and f'"{PIN}"' not in row.canonical


def test_the_default_card_file_uses_at_least_600000_pbkdf2_iterations(bo_app, tmp_path):
    del bo_app.config["CARD_FILE_ITERATIONS"]
    resident = add_resident(bo_app, birth_date=born(30))
    out = tmp_path / "card.json"
    result = run(bo_app, "cards", "issue", resident.juminhyo_code, "--pin", PIN, "--password", PASSWORD,
                 "--out", str(out))
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["auth"]["kdf"]["iter"] >= 600_000
    assert document["sign"]["kdf"]["iter"] >= 600_000


@pytest.mark.parametrize(("field", "pin", "password"), [
    ("pin", "12a4", PASSWORD),
    ("pin", "12345", PASSWORD),
    ("pin", "１２３４", PASSWORD),
    ("password", PIN, "AB12"),
    ("password", PIN, "ABCDEFG"),
    ("password", PIN, "ABC-123"),
    ("password", PIN, "ßßß123"),
])
def test_a_wrong_format_pin_or_password_is_named_and_nothing_is_written(bo_app, tmp_path, field, pin, password):
    resident = add_resident(bo_app, birth_date=born(30))
    out = tmp_path / "card.json"
    result = run(bo_app, "cards", "issue", resident.juminhyo_code, "--pin", pin, "--password", password,
                 "--out", str(out))
    assert result.exit_code == 2
    assert f"Error: {field}: " in result.stderr
    assert not out.exists()
    assert card_records(bo_app) == [] and audit_rows(bo_app, "card.issue") == []


def test_an_unknown_or_removed_resident_code_is_named_and_nothing_is_written(bo_app, tmp_path):
    removed = add_resident(bo_app, birth_date=born(30), status=RecordStatus.REMOVED,
                           removed_on=dt.date(2024, 4, 1), removal_reason=IdoReason.MOVE_OUT)
    for code in (juminhyo_code(999_999), removed.juminhyo_code, "not-a-code"):
        out = tmp_path / f"{code}.json"
        result = run(bo_app, "cards", "issue", code, "--pin", PIN, "--password", PASSWORD, "--out", str(out))
        assert result.exit_code == 2 and "Error: resident_code: " in result.stderr, code
        assert not out.exists()
    assert card_records(bo_app) == []


def test_a_holder_of_14_gets_a_card_without_a_signature_certificate(bo_app, tmp_path):
    resident = add_resident(bo_app, birth_date=born(14))
    out = tmp_path / "card.json"
    result = run(bo_app, "cards", "issue", resident.juminhyo_code, "--pin", PIN, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert load_card(out)["sign"] is None
    [card] = card_records(bo_app)
    assert (card.sign_cert_serial, card.sign_cert_expires_on) == (None, None)
    assert card.expires_on == nth_birthday_after_today(resident.birth_date, 5)
    assert str(sign_in(bo_app, out).serial) == card.auth_cert_serial


def test_a_holder_of_16_gets_a_signature_certificate_on_a_card_valid_to_the_5th_birthday(bo_app):
    resident = add_resident(bo_app, birth_date=born(16))
    card, data = issue(bo_app, resident)
    assert card.sign_cert_serial is not None
    assert card.expires_on == nth_birthday_after_today(resident.birth_date, 5)
    assert str(sign_application(bo_app, data).serial) == card.sign_cert_serial


def test_a_holder_of_15_or_older_needs_a_password(bo_app, tmp_path):
    resident = add_resident(bo_app, birth_date=born(15))
    out = tmp_path / "card.json"
    result = run(bo_app, "cards", "issue", resident.juminhyo_code, "--pin", PIN, "--out", str(out))
    assert result.exit_code == 2 and "Error: password: " in result.stderr
    assert not out.exists() and card_records(bo_app) == []


def test_issuing_again_supersedes_the_old_card_and_its_certificate_is_refused_as_revoked(bo_app):
    resident = add_resident(bo_app, birth_date=born(50))
    old, old_file = issue(bo_app, resident)
    new, new_file = issue(bo_app, resident)
    before, after = card_records(bo_app)
    assert (before.id, before.status) == (old.id, CardStatus.REVOKED)
    assert (after.id, after.status) == (new.id, CardStatus.ACTIVE)
    with pytest.raises(AuthTokenError) as refused:
        sign_in(bo_app, old_file)
    assert refused.value.code is RefusalCode.CERT_REVOKED and refused.value.revocation_reason in (None, "superseded")
    with pytest.raises(SignedApplicationError) as refused_sign:
        sign_application(bo_app, old_file)
    assert refused_sign.value.code is RefusalCode.CERT_REVOKED
    assert str(sign_in(bo_app, new_file).serial) == new.auth_cert_serial
    assert audit_rows(bo_app, "card.issue")[-1].detail_dict()["superseded"] == [old.card_number]


# -- revoke, suspend, resume --------------------------------------------------------------------------


def test_cards_revoke_makes_sign_in_refuse_the_certificate_at_once(bo_app):
    card, data = issue(bo_app, add_resident(bo_app, birth_date=born(35)))
    assert str(sign_in(bo_app, data).serial) == card.auth_cert_serial
    result = run(bo_app, "cards", "revoke", card.auth_cert_serial, "--reason", "keyCompromise")
    assert result.exit_code == 0, result.output
    # No waiting for the next CRL: the command republished it.
    with pytest.raises(AuthTokenError) as refused:
        sign_in(bo_app, data)
    assert refused.value.code is RefusalCode.CERT_REVOKED
    [record] = card_records(bo_app)
    assert record.status is CardStatus.REVOKED
    [row] = audit_rows(bo_app, "card.revoke")
    assert row.detail_dict()["reason"] == "keyCompromise" and row.detail_dict()["certificate"] == "auth"


def test_cards_revoke_names_a_reason_or_serial_it_cannot_accept(bo_app):
    card, _data = issue(bo_app, add_resident(bo_app, birth_date=born(35)))
    bad_reason = run(bo_app, "cards", "revoke", card.auth_cert_serial, "--reason", "lost")
    assert bad_reason.exit_code == 2 and "Error: reason: " in bad_reason.stderr
    unknown = run(bo_app, "cards", "revoke", "12345", "--reason", "keyCompromise")
    assert unknown.exit_code == 2 and "Error: serial: " in unknown.stderr
    assert run(bo_app, "cards", "revoke", card.sign_cert_serial, "--reason", "keyCompromise").exit_code == 0
    again = run(bo_app, "cards", "revoke", card.sign_cert_serial, "--reason", "keyCompromise")
    assert again.exit_code == 2 and "already revoked" in again.stderr
    assert card_records(bo_app)[0].status is CardStatus.ACTIVE  # the auth certificate is untouched
    assert len(audit_rows(bo_app, "card.revoke")) == 1


def test_cards_suspend_holds_a_lost_card_and_resume_brings_it_back(bo_app):
    card, data = issue(bo_app, add_resident(bo_app, birth_date=born(35)))
    suspended = run(bo_app, "cards", "suspend", card.card_number)
    assert suspended.exit_code == 0, suspended.output
    assert card_records(bo_app)[0].status is CardStatus.SUSPENDED
    with pytest.raises(AuthTokenError) as refused:
        sign_in(bo_app, data)
    assert refused.value.code is RefusalCode.CERT_REVOKED
    with pytest.raises(SignedApplicationError):
        sign_application(bo_app, data)
    twice = run(bo_app, "cards", "suspend", card.card_number)
    assert twice.exit_code == 2 and "Error: card_number: " in twice.stderr
    resumed = run(bo_app, "cards", "resume", card.card_number)
    assert resumed.exit_code == 0, resumed.output
    assert card_records(bo_app)[0].status is CardStatus.ACTIVE
    assert str(sign_in(bo_app, data).serial) == card.auth_cert_serial
    assert str(sign_application(bo_app, data).serial) == card.sign_cert_serial
    assert [len(audit_rows(bo_app, a)) for a in ("card.suspend", "card.resume")] == [1, 1]
    unknown = run(bo_app, "cards", "resume", "000000000000")
    assert unknown.exit_code == 2 and "Error: card_number: " in unknown.stderr


# -- the pages ----------------------------------------------------------------------------------------


def _issue_form(client: Any, **fields: str) -> Any:
    """Post the issue form with a fresh CSRF token."""
    return client.post("/cards/issue", data={"csrf_token": csrf_from(client, "/cards/issue"), **fields})


def test_a_clerk_on_a_registered_terminal_issues_a_card_and_the_download_is_audited(backoffice):
    resident = add_resident(backoffice.app, birth_date=born(45))
    client = backoffice.client_for("clerk1", "clerk")
    page = BeautifulSoup(client.get("/cards/issue").text, "html.parser")
    assert {i["name"] for i in page.select("form input")} >= {"csrf_token", "resident_code", "pin", "password"}
    assert page.select_one("#pin-hint") is not None and page.select_one("#password-hint") is not None
    response = _issue_form(client, resident_code=resident.juminhyo_code, pin=PIN, password=PASSWORD)
    assert response.status_code == 200
    [card] = card_records(backoffice.app)
    assert response.headers["Content-Disposition"] == f"attachment; filename=card-{card.card_number}.json"
    assert response.headers["Cache-Control"] == "no-store"
    assert str(sign_in(backoffice.app, response.data).serial) == card.auth_cert_serial
    [issued] = audit_rows(backoffice.app, "card.issue")
    [downloaded] = audit_rows(backoffice.app, "card.download")
    assert (issued.actor, downloaded.actor) == ("clerk1", "clerk1")
    assert issued.actor_id is not None and issued.terminal_id is not None
    assert downloaded.target_id == str(card.id) and downloaded.seq > issued.seq


def test_the_issue_page_names_the_field_in_error_and_issues_nothing(backoffice):
    resident = add_resident(backoffice.app, birth_date=born(45))
    client = backoffice.client_for("clerk1", "clerk")
    client.get("/?lang=en")
    cases = [({"pin": "12a4", "password": PASSWORD}, "pin", "4 digits"),
             ({"pin": PIN, "password": "ABCDEFG"}, "password", "both letters and digits"),
             ({"pin": PIN, "password": PASSWORD, "resident_code": juminhyo_code(999_999)}, "resident_code",
              "No resident")]
    for fields, field, words in cases:
        response = _issue_form(client, **{"resident_code": resident.juminhyo_code, **fields})
        assert response.status_code == 200 and "Content-Disposition" not in response.headers
        soup = BeautifulSoup(response.text, "html.parser")
        link = soup.select_one(f".error-summary a[href='#{field}']")
        assert link is not None and words in link.text, response.text
        assert soup.select_one(f"#{field}")["aria-invalid"] == "true"
        secrets_fields = soup.select("input#pin, input#password")
        assert [i["type"] for i in secrets_fields] == ["password", "password"]
        assert all(not i.get("value") for i in secrets_fields)  # the PIN and password are never echoed
    assert card_records(backoffice.app) == []


@pytest.mark.parametrize("role", ["approver", "admin"])
def test_an_approver_only_or_admin_account_gets_403_on_the_issue_page(backoffice, role):
    client = backoffice.client_for(f"{role}9", role)
    assert client.get("/cards/issue").status_code == 403
    assert client.post("/cards/issue", data={"csrf_token": csrf_from(client, "/")}).status_code == 403
    assert card_records(backoffice.app) == []


def test_the_card_page_shows_the_card_and_suspends_resumes_and_revokes(backoffice):
    resident = add_resident(backoffice.app, birth_date=born(60), name="花巻　花子")
    card, data = issue(backoffice.app, resident)
    client = backoffice.client_for("clerk1", "clerk")
    url = f"/cards/{card.id}"

    def page() -> BeautifulSoup:
        return BeautifulSoup(client.get(url).text, "html.parser")

    soup = page()
    assert soup.select_one(".card-number").text == card.card_number
    assert card.auth_cert_serial in soup.select_one(".auth-serial").text
    assert card.sign_cert_serial in soup.select_one(".sign-serial").text
    assert "花巻　花子" in soup.text and resident.juminhyo_code in soup.text
    assert soup.select_one(".card-status")["data-status"] == "active"
    form = soup.select_one("form.suspend-form")
    client.post(form["action"], data={"csrf_token": form.select_one("input[name=csrf_token]")["value"]})
    soup = page()
    assert soup.select_one(".card-status")["data-status"] == "suspended"
    form = soup.select_one("form.resume-form")
    client.post(form["action"], data={"csrf_token": form.select_one("input[name=csrf_token]")["value"]})
    soup = page()
    assert soup.select_one(".card-status")["data-status"] == "active"
    form = soup.select_one("form.revoke-form")
    assert {o["value"] for o in form.select("select[name=serial] option")} == {
        "", card.auth_cert_serial, card.sign_cert_serial}
    client.post(form["action"], data={"csrf_token": form.select_one("input[name=csrf_token]")["value"],
                                      "serial": card.sign_cert_serial, "reason": "keyCompromise"})
    soup = page()
    assert "keyCompromise" in soup.select_one(".sign-serial").text
    assert soup.select_one(".card-status")["data-status"] == "active"
    with pytest.raises(SignedApplicationError) as refused:
        sign_application(backoffice.app, data)
    assert refused.value.code is RefusalCode.CERT_REVOKED
    assert [len(audit_rows(backoffice.app, a)) for a in ("card.suspend", "card.resume", "card.revoke")] == [1, 1, 1]
    assert audit_rows(backoffice.app, "card.view")[0].actor == "clerk1"


def test_the_card_page_is_for_clerks_only(backoffice):
    card, _data = issue(backoffice.app, add_resident(backoffice.app, birth_date=born(30)))
    client = backoffice.client_for("auditor1", "auditor")
    assert client.get(f"/cards/{card.id}").status_code == 403
    assert client.post(f"/cards/{card.id}/suspend", data={"csrf_token": csrf_from(client, "/")}).status_code == 403
    assert card_records(backoffice.app)[0].status is CardStatus.ACTIVE


# -- the hook the case workflow calls after a ledger change -------------------------------------------


def _amend(app: Any, resident_id: int, **changes: Any) -> bool:
    """Amend a record as the case workflow will, then call the hook; returns what the hook returned."""
    from backoffice.extensions import db
    from backoffice.models import Resident

    with app.app_context():
        resident = db.session.get(Resident, resident_id)
        before = records.snapshot(resident)
        records.amend_record(db.session, resident, reason=IdoReason.MOVE_WITHIN, changed_on=clock_module.today_jst(),
                             notified_on=clock_module.today_jst(), by="clerk1", **changes)
        revoked = cards.revoke_for_changed_basic_items(db.session, resident=resident, before=before,
                                                       after=records.snapshot(resident), by="clerk1")
        db.session.commit()
    return revoked


def test_an_address_change_revokes_the_signature_certificate_as_affiliation_changed(bo_app):
    resident = add_resident(bo_app, birth_date=born(33))
    card, data = issue(bo_app, resident)
    other = load_machiaza(bo_app.config["MUNICIPALITY_CODE"])[1]
    assert _amend(bo_app, resident.id, machiaza_code=other.code, banchi="2番地") is True
    # Sent to J-LIS with the change (tests/bridge/test_card_revocation.py delivers it over the bridge).
    assert str(sign_application(bo_app, data).serial) == card.sign_cert_serial
    assert deliver_card_revocations(bo_app) == [card.sign_cert_serial]
    with pytest.raises(SignedApplicationError) as refused:
        sign_application(bo_app, data)
    assert refused.value.code is RefusalCode.CERT_REVOKED
    assert refused.value.revocation_reason in (None, "affiliationChanged")
    # The authentication certificate names nobody, so the card still signs in.
    assert str(sign_in(bo_app, data).serial) == card.auth_cert_serial
    assert card_records(bo_app)[0].status is CardStatus.ACTIVE
    [row] = audit_rows(bo_app, "card.revoke")
    assert row.detail_dict()["reason"] == "affiliationChanged" and row.detail_dict()["changed_items"] == ["address"]


def test_a_change_of_items_other_than_the_four_leaves_the_signature_certificate_alone(bo_app):
    resident = add_resident(bo_app, birth_date=born(33))
    card, data = issue(bo_app, resident)
    assert _amend(bo_app, resident.id, name_kana="ハナマキ　ジロウ", nhi_since=dt.date(2020, 4, 1)) is False
    assert deliver_card_revocations(bo_app) == []
    assert str(sign_application(bo_app, data).serial) == card.sign_cert_serial
    assert audit_rows(bo_app, "card.revoke") == []


def test_the_hook_compares_snapshots_and_model_values_alike():
    before = {"name": "花巻　太郎", "birth_date": "1980-04-01", "sex": "1", "machiaza_code": "0320510001",
              "banchi": "1番地", "katagaki": None}
    from backoffice.models import Sex

    same = {**before, "birth_date": dt.date(1980, 4, 1), "sex": Sex.MALE, "katagaki": ""}
    assert cards.changed_basic_items(before, same) == []
    assert cards.changed_basic_items(before, {**before, "katagaki": "101号室", "name": "花巻　次郎"}) == [
        "name", "address"]


def test_the_card_file_is_json_bytes_of_the_documented_format(bo_app):
    _card, data = issue(bo_app, add_resident(bo_app, birth_date=born(20)))
    document = json.loads(data.decode("utf-8"))
    assert (document["format"], document["v"]) == ("jpki-sim-card", 1)
    assert document["auth"]["kdf"]["iter"] == FAST


def test_a_card_file_path_that_exists_is_refused_before_anything_is_issued(bo_app, tmp_path: Path):
    resident = add_resident(bo_app, birth_date=born(30))
    out = tmp_path / "card.json"
    out.write_text("someone else's card")
    result = run(bo_app, "cards", "issue", resident.juminhyo_code, "--pin", PIN, "--password", PASSWORD,
                 "--out", str(out))
    assert result.exit_code == 2 and "Error: out: " in result.stderr
    assert out.read_text() == "someone else's card" and card_records(bo_app) == []


def test_a_card_for_the_code_of_a_person_who_returned_goes_to_the_current_record_not_the_joshu(bo_app):
    joshu = add_resident(bo_app, birth_date=born(40), status=RecordStatus.REMOVED, removed_on=dt.date(2019, 3, 31),
                         removal_reason=IdoReason.MOVE_OUT, banchi="1番地")
    current = add_resident(bo_app, birth_date=born(40), juminhyo_code=joshu.juminhyo_code, banchi="9番地",
                           became_resident_reason=IdoReason.MOVE_IN)
    card, _data = issue(bo_app, joshu)  # the code both records carry
    assert card.resident_id == current.id != joshu.id
    assert [c.resident_id for c in card_records(bo_app)] == [current.id]


def test_a_card_number_is_never_a_valid_my_number(bo_app, monkeypatch):
    """One random 12-digit number in ten passes the My Number check digit; such a card number is skipped."""
    from backoffice.extensions import db
    from core.checkdigits import is_valid_my_number, make_my_number

    looks_like_my_number = make_my_number("12345678901")
    plain = "12345678901" + str((int(looks_like_my_number[-1]) + 1) % 10)
    assert is_valid_my_number(looks_like_my_number) and not is_valid_my_number(plain)
    draws = iter([int(looks_like_my_number), int(plain)])
    monkeypatch.setattr(cards.secrets, "randbelow", lambda _bound: next(draws))
    with bo_app.app_context():
        assert cards._new_card_number(db.session) == plain


def test_the_card_page_says_whether_a_card_kept_after_a_move_was_presented_and_who_keeps_it(backoffice):
    from backoffice.extensions import db
    from backoffice.models import CardRecord

    resident = add_resident(backoffice.app, birth_date=born(40), name="花巻　花子")
    card, _data = issue(backoffice.app, resident)
    client = backoffice.client_for("clerk1", "clerk")
    with backoffice.app.app_context():
        row = db.session.get(CardRecord, card.id)
        row.transferred_from, row.continuation_due = "032069", dt.date(2027, 3, 1)
        db.session.commit()
    soup = BeautifulSoup(client.get(f"/cards/{card.id}").text, "html.parser")
    due = soup.select_one(".card-continuation").text
    assert "2027" in due or "令和9年" in due
    assert soup.select_one("form.suspend-form") is not None
    with backoffice.app.app_context():
        row = db.session.get(CardRecord, card.id)
        row.renewal_required_on, row.transferred_to = dt.date(2027, 3, 2), "032069"
        db.session.commit()
    soup = BeautifulSoup(client.get(f"/cards/{card.id}").text, "html.parser")
    assert "90" in soup.select_one(".card-continuation").text
    assert "032069" in soup.select_one(".card-moved").text
    assert soup.select_one("form.suspend-form") is None  # the card is kept elsewhere now

