"""The public verification page (F7): a certificate's code shows valid, then revoked; never whose it is."""

from __future__ import annotations

import re
import uuid

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select

from backoffice.models import Outbox
from bridge.handlers import PermanentFailure
from bridge.jobs.deliver import check_payload
from core import certcode, clock
from core.envelope import Opened
from core.i18n import wareki
from tests.backoffice.test_certificates import (  # noqa: F401  (city is a fixture)
    _confirm_and_approve,
    _deliver,
    _pdf,
    _request,
    _staff,
    city,
    pdf_text,
)
from tests.conftest import csrf_from


def _carry_to_portal(bo_app, portal_app, *, types=("certificate.issued", "certificate.revoked")):
    """Deliver the back office's sealed certificate messages to the portal, as the relay and a worker would."""
    from backoffice.extensions import db as bo_db
    from bridge.jobs.deliver import deliver

    with bo_app.app_context():
        rows = [(r.id, r.envelope) for r in bo_db.session.execute(
            select(Outbox).where(Outbox.message_type.in_(types)).order_by(Outbox.created_at)).scalars()]
    for message_id, envelope in rows:
        with portal_app.test_request_context("/"):
            deliver(message_id, envelope)
    return len(rows)


def _check(client, code):
    token = csrf_from(client, "/certificates/verify")
    return client.post("/certificates/verify", data={"csrf_token": token, "code": code})


@pytest.fixture
def issued(bo_app, backoffice, city, tmp_path):  # noqa: F811
    """An issued household certificate: its id and the code printed on it."""
    cert_id = _confirm_and_approve(bo_app, backoffice, _deliver(bo_app, city["card"], _request()))
    text = pdf_text(_pdf(bo_app, cert_id, "clerk_a"), tmp_path)
    code = re.search(r"照合番号([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})", text).group(1)
    return {"id": cert_id, "code": code, "text": text}


def test_the_printed_code_verifies_as_valid_then_as_revoked_and_the_page_shows_nobody(bo_app, portal_app, issued):
    from backoffice.extensions import db as bo_db
    from backoffice.models import IssuedCertificate
    from backoffice.services import certificates

    assert _carry_to_portal(bo_app, portal_app) == 1
    client = portal_app.test_client()
    page = _check(client, issued["code"].lower())  # typed in lower case: still the same code
    assert page.status_code == 200
    html = BeautifulSoup(page.text, "html.parser")
    assert html.select_one(".verdict-valid") is not None
    assert html.select_one(".issued-on").text == wareki(clock.today_jst())
    main = html.select_one("main").text
    with bo_app.app_context():
        number = bo_db.session.get(IssuedCertificate, issued["id"]).issue_number
    for personal in ("宮沢", "ミヤザワ", "花城町", number, issued["code"]):
        assert personal not in main

    with bo_app.test_request_context("/"):
        certificates.revoke(bo_db.session, bo_db.session.get(IssuedCertificate, issued["id"]), by=_staff("clerk_a"),
                            reason="記載誤りのため再発行")
        bo_db.session.commit()
    assert _carry_to_portal(bo_app, portal_app, types=("certificate.revoked",)) == 1
    html = BeautifulSoup(_check(client, issued["code"]).text, "html.parser")
    assert html.select_one(".verdict-valid") is None and html.select_one(".verdict-revoked") is not None
    assert html.select_one(".revoked-on").text == wareki(clock.today_jst())
    assert "記載誤り" not in html.text  # the reason stays in the back office

    from portal.extensions import db
    from portal.models import AuditLog, CertificateVerification

    with portal_app.app_context():
        outcomes = db.session.execute(select(AuditLog.outcome).where(AuditLog.action == "certificate.verify")).all()
        assert [o for (o,) in outcomes] == ["success", "success"]
        stored = db.session.execute(select(CertificateVerification)).scalar_one()
        # What the portal holds: a hash, the municipality and dates. Not the code, not a person.
        assert stored.code_hash == certcode.code_hash(issued["code"]) and stored.municipality_code == "032051"


def test_the_same_issue_delivered_twice_is_stored_once(bo_app, portal_app, issued):
    from portal.extensions import db
    from portal.models import CertificateVerification

    _carry_to_portal(bo_app, portal_app)
    _carry_to_portal(bo_app, portal_app)
    with portal_app.app_context():
        assert len(db.session.execute(select(CertificateVerification)).scalars().all()) == 1


def test_an_unknown_code_says_so_and_a_malformed_one_names_the_field(portal_app):
    client = portal_app.test_client()
    # Found from the home page, without signing in.
    link = BeautifulSoup(client.get("/").text, "html.parser").select_one("#certificate-check a")
    assert link["href"] == "/certificates/verify" and "照合番号" in link.text
    assert client.get(link["href"]).status_code == 200
    page = _check(client, certcode.new_code())
    assert page.status_code == 200 and BeautifulSoup(page.text, "html.parser").select_one(".verdict-unknown")
    page = _check(client, "12345")
    summary = BeautifulSoup(page.text, "html.parser").select_one(".error-summary a")
    assert page.status_code == 400 and summary["href"] == "#code"


def test_checks_from_one_connection_are_rate_limited(portal_app):
    portal_app.config["CERTIFICATE_VERIFY_LIMIT"] = 3
    client = portal_app.test_client()
    answers = [_check(client, certcode.new_code()).status_code for _ in range(5)]
    assert answers == [200, 200, 200, 429, 429]
    assert "Retry-After" in _check(client, certcode.new_code()).headers


def _message(message_type, sender, **payload):
    return Opened(message_id=str(uuid.uuid4()), message_type=message_type, sender=sender, recipient="portal",
                  created_at=clock.utcnow(), payload=payload)


def test_only_the_issuing_municipality_can_revoke_and_a_bad_message_is_refused(portal_app):
    from portal.extensions import db
    from portal.services import verification

    digest = certcode.code_hash(certcode.new_code())
    with portal_app.test_request_context("/"):
        verification.receive_issued(db.session, _message("certificate.issued", "muni:032051", codeHash=digest,
                                                         issuedOn="2026-04-01", status="valid"))
        db.session.commit()
        with pytest.raises(PermanentFailure):
            verification.receive_revoked(db.session, _message("certificate.revoked", "muni:032069", codeHash=digest,
                                                              revokedOn="2026-04-02"))
        # A bad message is refused by its schema on arrival, before the handler runs (bridge.messages).
        with pytest.raises(PermanentFailure) as refused:
            check_payload(_message("certificate.issued", "muni:032051", codeHash="宮沢　賢", issuedOn="2026-04-01",
                                   status="valid"))
        assert (refused.value.reason, refused.value.detail) == ("schema_invalid", "$.codeHash: pattern")
        # A revocation that overtakes its issue is retried (not lost, not applied to nothing).
        with pytest.raises(verification.NotYetIssued):
            verification.receive_revoked(db.session, _message("certificate.revoked", "muni:032051",
                                                              codeHash="0" * 64, revokedOn="2026-04-02"))


class _LinkedResident:
    """The back office's card holder signed in and linked on the portal (as tests.portal.test_applications does)."""

    def __init__(self, app, card):
        from tests.portal.test_applications import Resident

        self.app, self.card, self.client = app, card, app.test_client()
        from bridge.peers.jlis.cardclient import build_auth_token
        from tests.portal.test_applications import ORIGIN, _csrf
        from tests.portal_fixtures import PIN

        csrf = _csrf(self.client, "/auth/sign-in")
        nonce = self.client.post("/auth/challenge", headers={"X-CSRFToken": csrf}).json["nonce"]
        login = self.client.post("/auth/login", json={"authToken": build_auth_token(card, PIN, origin=ORIGIN,
                                                                                    nonce=nonce)},
                                 headers={"X-CSRFToken": csrf})
        assert login.status_code == 200
        Resident.sign(self, "/auth/link/challenge", "/auth/link")


def _carry_to_back_office(portal_app, bo_app):
    from bridge.jobs.deliver import deliver
    from portal.extensions import db
    from portal.models import Outbox as PortalOutbox

    with portal_app.app_context():
        rows = [(r.id, r.envelope) for r in db.session.execute(
            select(PortalOutbox).where(PortalOutbox.message_type == "application.submitted")).scalars()]
    for message_id, envelope in rows:
        with bo_app.test_request_context("/"):
            deliver(message_id, envelope)
    return len(rows)


def test_a_request_sent_on_the_portal_ends_as_a_mailed_certificate_whose_code_verifies_there(
        bo_app, portal_app, backoffice, city, tmp_path):  # noqa: F811
    from backoffice.extensions import db as bo_db
    from backoffice.models import Case, IssuedCertificate
    from backoffice.services import certificates
    from portal.extensions import db
    from portal.models import Application, ApplicationStatus
    from tests.portal.test_applications import _api_submit, _bearer

    resident = _LinkedResident(portal_app, city["card"])
    client, headers = _bearer(portal_app, resident.card)
    sent = _api_submit(client, headers, resident.card, _request(persons="self"))
    assert sent.status_code == 202, sent.json
    receipt = sent.json["parts"][0]["receipt_number"]
    assert _carry_to_back_office(portal_app, bo_app) == 1
    with bo_app.app_context():
        case_id = bo_db.session.execute(select(Case.id).where(Case.receipt_number == receipt)).scalar_one()
    cert_id = _confirm_and_approve(bo_app, backoffice, case_id)
    text = pdf_text(_pdf(bo_app, cert_id, "clerk_a"), tmp_path)
    assert "宮沢賢" in text and "宮沢トシ" not in text
    code = re.search(r"照合番号([0-9A-Z-]{19})", text).group(1)
    with bo_app.test_request_context("/"):
        certificates.record_mailing(bo_db.session, bo_db.session.get(IssuedCertificate, cert_id),
                                    by=_staff("clerk_a"), mailed_on=clock.today_jst().isoformat())
        bo_db.session.commit()
    _carry_to_portal(bo_app, portal_app, types=("application.status", "certificate.issued"))
    with portal_app.app_context():
        application = db.session.execute(select(Application).where(Application.receipt_number == receipt)).scalar_one()
        assert application.status is ApplicationStatus.COMPLETED
    html = BeautifulSoup(_check(portal_app.test_client(), code).text, "html.parser")
    assert html.select_one(".verdict-valid") is not None


def _verify_rows(app) -> list[tuple[str, dict]]:
    from portal.extensions import db
    from portal.models import AuditLog

    with app.app_context():
        return [(row.outcome, row.detail_dict()) for row in db.session.execute(
            select(AuditLog).where(AuditLog.action == "certificate.verify").order_by(AuditLog.seq)).scalars()]


def test_a_flood_of_refused_checks_writes_one_log_row_per_address_and_minute_but_every_real_check_is_logged(
        portal_app):
    portal_app.config["CERTIFICATE_VERIFY_LIMIT"] = 3
    flood, neighbour = portal_app.test_client(), portal_app.test_client()
    answers = [_check(flood, certcode.new_code()).status_code for _ in range(40)]
    assert answers == [200] * 3 + [429] * 37
    token = csrf_from(neighbour, "/certificates/verify")
    for _ in range(5):  # another address over its limit: its own one row
        neighbour.post("/certificates/verify", data={"csrf_token": token, "code": certcode.new_code()},
                       environ_base={"REMOTE_ADDR": "192.0.2.44"})
    rows = _verify_rows(portal_app)
    assert [outcome for outcome, _ in rows] == ["failure"] * 3 + ["denied"] + ["failure"] * 3 + ["denied"]
    assert all(detail == {"reason": "rate_limited"} for outcome, detail in rows if outcome == "denied")
