"""Certificates (F4, F7, R2, R14): eligibility, issue on approval, the PDF's text, masking, mailing, revocation."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import subprocess
import uuid

import pytest
import segno
from PIL import Image
from sqlalchemy import func, select

from backoffice.models import AuditLog, Case, CaseStatus, CertificateStatus, IssuedCertificate, RecordStatus, Staff
from core import clock
from core.envelope import Opened
from core.i18n import wareki
from tests.backoffice.case_fixtures import receipt_number, sign_part
from tests.factories import make_household, make_resident, my_number

PASSWORD = "ABC123"
HEAD_NUMBER = my_number(900001)
WIFE_NUMBER = my_number(900002)


@pytest.fixture
def city(bo_app, backoffice, tmp_path):
    """A household of two in Hanamaki (the householder holds a card), a clerk, an approver, a number-use clerk."""
    from backoffice.extensions import db
    from backoffice.services import cards

    with bo_app.test_request_context("/"):
        household = make_household(db.session, householder_name="宮沢　賢")
        head = make_resident(db.session, bo_app.config, household=household, name="宮沢　賢",
                             name_kana="ミヤザワ　ケン", birth_date=dt.date(1990, 8, 27),
                             honseki="岩手県花巻市豊沢町4番地", hittosha="宮沢　政次郎", my_number=HEAD_NUMBER)
        wife = make_resident(db.session, bo_app.config, household=household, name="宮沢　トシ",
                             name_kana="ミヤザワ　トシ", birth_date=dt.date(1992, 11, 27), relationship_to_head="妻",
                             is_householder=False, banchi=head.banchi, my_number=WIFE_NUMBER)
        _record, card_file = cards.issue_card(db.session, resident_code=head.juminhyo_code, pin="1234",
                                              password=PASSWORD, issued_by="clerk1", iterations=1000)
        db.session.commit()
        people = {"head": head.id, "wife": wife.id, "head_code": head.juminhyo_code, "address": head.banchi}
    card = tmp_path / "card.json"
    card.write_bytes(card_file)
    staff = {name: backoffice.add_staff(name, *roles) for name, roles in
             (("clerk_a", ("clerk",)), ("approver_b", ("approver",)), ("numbers_c", ("clerk", "number_use")))}
    return {"card": card, "staff": staff, **people}


def _request(**changes):
    data = {"type": "certificate", "municipalityCode": "032051", "kind": "juminhyo", "persons": "household",
            "items": {"householder": True, "honseki": False, "juminhyoCode": False, "myNumber": False},
            "copies": 1, "purpose": "就職先への提出", "delivery": "post"}
    data.update(changes)
    return data


def _deliver(bo_app, card, application):
    from backoffice.extensions import db
    from backoffice.services.intake import receive_application

    jws, _ = sign_part(card, bo_app.config, "certificate", application)
    opened = Opened(message_id=str(uuid.uuid4()), message_type="application.submitted", sender="portal",
                    recipient="muni:032051", created_at=clock.utcnow(),
                    payload={"receiptNumber": receipt_number(), "kind": "certificate", "moveId": None,
                             "submittedAt": clock.utcnow().isoformat(), "signedApplication": jws})
    with bo_app.test_request_context("/"):
        case = receive_application(db.session, opened)
        db.session.commit()
        return case.id


def _staff(login_id):
    from backoffice.extensions import db

    return db.session.execute(select(Staff).where(Staff.login_id == login_id)).scalar_one()


def _confirm_and_approve(bo_app, backoffice, case_id):
    """Clerk A confirms, approver B approves with a fresh code; returns the issued certificate's id (or raises)."""
    from backoffice.extensions import db
    from backoffice.services import cases

    with bo_app.test_request_context("/"):
        cases.confirm(db.session, case_id, by=_staff("clerk_a"))
        db.session.commit()
    code = backoffice.totp("approver_b")
    with bo_app.test_request_context("/"):
        try:
            cases.approve(db.session, case_id, by=_staff("approver_b"), totp_code=code)
        except Exception:
            db.session.rollback()
            raise
        db.session.commit()
        return db.session.execute(select(IssuedCertificate.id).where(IssuedCertificate.case_id == case_id)).scalar_one()


def _pdf(bo_app, cert_id, login_id, purpose="print"):
    from backoffice.extensions import db
    from backoffice.services import certificates

    with bo_app.test_request_context("/"):
        cert = db.session.get(IssuedCertificate, cert_id)
        try:
            return certificates.render(db.session, cert, by=_staff(login_id), purpose=purpose)
        finally:
            db.session.commit()


def pdf_text(pdf: bytes, tmp_path) -> str:
    """The PDF's text as pdftotext reads it, with every kind of space removed (names print with a full-width one)."""
    path = tmp_path / f"{uuid.uuid4().hex}.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout
    return re.sub(r"\s+", "", text)


def _status_messages(bo_app):
    from backoffice.extensions import db
    from backoffice.models import Outbox

    with bo_app.app_context():
        return db.session.execute(select(func.count()).select_from(Outbox)
                                  .where(Outbox.message_type == "application.status")).scalar_one()


def _actions(bo_app):
    from backoffice.extensions import db

    with bo_app.app_context():
        return [(a, o) for a, o in db.session.execute(select(AuditLog.action, AuditLog.outcome)
                                                      .order_by(AuditLog.seq)).all()]


def test_an_approved_household_copy_prints_the_names_the_address_and_only_the_requested_items(bo_app, backoffice,
                                                                                              city, tmp_path):
    cert_id = _confirm_and_approve(bo_app, backoffice, _deliver(bo_app, city["card"], _request()))
    text = pdf_text(_pdf(bo_app, cert_id, "clerk_a"), tmp_path)
    assert "住民票の写し" in text
    assert "宮沢賢" in text and "宮沢トシ" in text and "ミヤザワケン" in text
    assert f"花城町{city['address']}" in text or city["address"] in text
    assert "岩手県花巻市" in text  # the address with its prefecture and city, as a certificate states it
    assert "世帯主" in text and "妻" in text  # asked for
    for not_asked in ("本籍", "豊沢町", "住民票コード", city["head_code"], "個人番号", HEAD_NUMBER, WIFE_NUMBER):
        assert not_asked not in text
    with bo_app.app_context():
        from backoffice.extensions import db

        cert = db.session.get(IssuedCertificate, cert_id)
        assert cert.issue_number in text and cert.status is CertificateStatus.VALID
    assert wareki(clock.today_jst()) in text
    assert "花巻市長花巻一郎" in text
    code = re.search(r"照合番号([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})", text)
    assert code is not None
    from core.certcode import code_hash

    assert cert.code_hash == code_hash(code.group(1))
    actions = _actions(bo_app)
    assert ("certificate.issue", "success") in actions and ("certificate.print", "success") in actions


def test_the_font_is_embedded_and_the_pdf_carries_a_qr_code(bo_app, backoffice, city, tmp_path):
    cert_id = _confirm_and_approve(bo_app, backoffice, _deliver(bo_app, city["card"], _request()))
    path = tmp_path / "c.pdf"
    path.write_bytes(_pdf(bo_app, cert_id, "clerk_a", purpose="download"))
    fonts = subprocess.run(["pdffonts", str(path)], check=True, capture_output=True, text=True).stdout
    assert "NotoSerifJP" in fonts and re.search(r"NotoSerifJP\S*\s+CID.*\byes\s+yes\b", fonts)
    # The one image is the QR code of the verify page, with the code printed beside it in the fragment.
    subprocess.run(["pdfimages", "-png", str(path), str(tmp_path / "img")], check=True)
    extracted = sorted(tmp_path.glob("img-*.png"))
    assert len(extracted) == 1
    code = re.search(r"照合番号([0-9A-Z-]{19})", pdf_text(path.read_bytes(), tmp_path)).group(1)
    expected = io.BytesIO()
    segno.make(f"http://127.0.0.1:5000/certificates/verify#{code.replace('-', '')}", error="m").save(
        expected, kind="png", scale=6, border=2)
    expected.seek(0)
    with Image.open(extracted[0]) as printed, Image.open(expected) as made:
        assert printed.convert("L").tobytes() == made.convert("L").tobytes()
    assert ("certificate.download", "success") in _actions(bo_app)


def test_the_my_number_is_printed_only_when_asked_and_only_number_use_staff_can_print_it(bo_app, backoffice, city,
                                                                                          tmp_path):
    from backoffice.services.certificates import CertificateError

    items = {"householder": False, "honseki": True, "juminhyoCode": True, "myNumber": True}
    cert_id = _confirm_and_approve(bo_app, backoffice, _deliver(bo_app, city["card"],
                                                                _request(persons="self", items=items)))
    with pytest.raises(CertificateError) as refused:
        _pdf(bo_app, cert_id, "clerk_a")
    assert refused.value.field == "certificate"
    assert ("certificate.print", "denied") in _actions(bo_app)
    text = pdf_text(_pdf(bo_app, cert_id, "numbers_c"), tmp_path)
    assert HEAD_NUMBER in text and city["head_code"] in text and "豊沢町" in text
    assert "宮沢トシ" not in text and WIFE_NUMBER not in text  # the applicant alone was asked for
    # The stored content is sealed: neither the number nor the name is in the row.
    from backoffice.extensions import db

    with bo_app.app_context():
        row = db.session.get(IssuedCertificate, cert_id)
        assert HEAD_NUMBER.encode() not in row.content_encrypted and "宮沢".encode() not in row.content_encrypted
        assert json.loads(row.items) == ["honseki", "juminhyoCode", "myNumber"]


def test_a_clerk_never_sees_a_my_number_on_the_certificate_preview(bo_app, backoffice, city):
    items = {"householder": False, "honseki": False, "juminhyoCode": False, "myNumber": True}
    case_id = _deliver(bo_app, city["card"], _request(items=items))
    for login_id in ("clerk_a", "numbers_c"):
        client = backoffice.enrolled_client(f"t-{login_id}")
        assert backoffice.sign_in(client, login_id).status_code == 302
        page = client.get(f"/certificates/cases/{case_id}")
        assert page.status_code == 200
        assert "宮沢　賢" in page.text and "個人番号" in page.text and "************" in page.text
        assert HEAD_NUMBER not in page.text and WIFE_NUMBER not in page.text
    assert ("certificate.preview", "success") in _actions(bo_app)


def test_a_my_number_on_a_certificate_of_record_items_is_refused_at_approval_and_nothing_is_issued(bo_app, backoffice,
                                                                                                 city):
    from backoffice.extensions import db
    from backoffice.services.cases import CaseError

    items = {"householder": False, "honseki": False, "juminhyoCode": False, "myNumber": True}
    case_id = _deliver(bo_app, city["card"], _request(kind="kisai_jiko", items=items))
    with pytest.raises(CaseError) as refused:
        _confirm_and_approve(bo_app, backoffice, case_id)
    with bo_app.app_context():  # the refusal reads in Japanese unless a page asks for English
        assert refused.value.field == "items.myNumber" and "個人番号" in refused.value.message
        assert db.session.get(Case, case_id).status is CaseStatus.CONFIRMED
        assert db.session.execute(select(func.count()).select_from(IssuedCertificate)).scalar_one() == 0


def test_a_requester_who_is_no_longer_a_resident_is_refused_and_nothing_is_issued(bo_app, backoffice, city):
    from backoffice.extensions import db
    from backoffice.models import Resident
    from backoffice.services.cases import CaseError

    case_id = _deliver(bo_app, city["card"], _request())
    with bo_app.app_context():
        head = db.session.get(Resident, city["head"])
        head.status, head.removed_on = RecordStatus.REMOVED, clock.today_jst()
        db.session.commit()
    with pytest.raises(CaseError) as refused:
        _confirm_and_approve(bo_app, backoffice, case_id)
    assert refused.value.field == "applicant"
    with bo_app.app_context():
        assert db.session.execute(select(func.count()).select_from(IssuedCertificate)).scalar_one() == 0


def test_the_mailing_completes_the_case_and_a_bad_date_is_refused_naming_the_field(bo_app, backoffice, city):
    from backoffice.extensions import db
    from backoffice.services import certificates

    case_id = _deliver(bo_app, city["card"], _request())
    cert_id = _confirm_and_approve(bo_app, backoffice, case_id)
    client = backoffice.enrolled_client("t-mail")
    assert backoffice.sign_in(client, "clerk_a").status_code == 302
    assert "mail-form" in client.get(f"/certificates/cases/{case_id}").text
    from tests.conftest import csrf_from

    token = csrf_from(client, f"/certificates/cases/{case_id}")
    tomorrow = (clock.today_jst() + dt.timedelta(days=1)).isoformat()
    page = client.post(f"/certificates/{cert_id}/mail", data={"csrf_token": token, "mailed_on": tomorrow},
                       follow_redirects=True)
    assert "mailed_on" in page.text and "発送日" in page.text
    with bo_app.app_context():
        assert db.session.get(Case, case_id).status is CaseStatus.APPROVED
    statuses_before = _status_messages(bo_app)
    page = client.post(f"/certificates/{cert_id}/mail", follow_redirects=True,
                       data={"csrf_token": token, "mailed_on": clock.today_jst().isoformat(),
                             "tracking_number": "1234-5678-9012"})
    assert page.status_code == 200
    with bo_app.app_context():
        assert db.session.get(Case, case_id).status is CaseStatus.COMPLETED
        cert = db.session.get(IssuedCertificate, cert_id)
        assert cert.mailed_on == clock.today_jst() and cert.tracking_number == "1234-5678-9012"
    assert _status_messages(bo_app) == statuses_before + 1  # "completed" goes to the resident's My applications
    with bo_app.test_request_context("/"), pytest.raises(certificates.CertificateError):
        certificates.record_mailing(db.session, db.session.get(IssuedCertificate, cert_id), by=_staff("clerk_a"),
                                    mailed_on=clock.today_jst().isoformat())
    assert ("certificate.mail", "success") in _actions(bo_app)


def test_the_verification_code_is_random_and_not_derived_from_the_person():
    from core.certcode import ALPHABET, code_hash, new_code, normalise

    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(re.fullmatch(r"[0-9A-Z]{4}(-[0-9A-Z]{4}){3}", c) for c in codes)
    assert all(ch in ALPHABET for c in codes for ch in c.replace("-", ""))
    code = next(iter(codes))
    assert code_hash(code.lower().replace("-", " ")) == code_hash(code)  # typed loosely, it still matches
    assert normalise("ｏｉｌ") == "011"  # full-width, and the letters a person mistakes for digits


def test_a_request_that_cannot_be_read_is_refused_naming_it_and_nothing_is_issued(bo_app, backoffice, city):
    from backoffice.extensions import db
    from backoffice.services.cases import CaseError

    case_id = _deliver(bo_app, city["card"], {"type": "certificate", "municipalityCode": "032051", "kind": "passport",
                                                 "copies": "3"})
    with pytest.raises(CaseError) as refused:
        _confirm_and_approve(bo_app, backoffice, case_id)
    assert refused.value.field == "request"
    with bo_app.app_context():
        assert db.session.execute(select(func.count()).select_from(IssuedCertificate)).scalar_one() == 0


def _make_wife_a_foreign_resident(bo_app, city):
    from backoffice.extensions import db
    from backoffice.models import Resident
    from backoffice.services import records

    with bo_app.test_request_context("/"):
        wife = db.session.get(Resident, city["wife"])
        wife.nationality, wife.residence_status, wife.tsusho = "ベトナム", "日本人の配偶者等", "宮沢　トシ"
        wife.alphabet_name, wife.foreign_resident_category = "NGUYEN THI TOSHI", "中長期在留者"
        wife.residence_period_years, wife.residence_expiry = 3, dt.date(2028, 3, 31)
        wife.became_foreign_resident_on, wife.became_foreign_resident_reason = dt.date(2020, 4, 1), "国外転入"
        records.set_residence_card_number(wife, "AB12345678CD")
        db.session.commit()


def test_a_foreign_residents_article_30_45_items_are_printed_only_when_asked(bo_app, backoffice, city, tmp_path):
    _make_wife_a_foreign_resident(bo_app, city)
    items = {"householder": False, "honseki": False, "juminhyoCode": False, "myNumber": False}
    asked = _confirm_and_approve(bo_app, backoffice, _deliver(bo_app, city["card"], _request(
        items={**items, "foreignResident": True})))
    text = pdf_text(_pdf(bo_app, asked, "clerk_a"), tmp_path)
    assert "国籍・地域ベトナム" in text and "通称宮沢トシ" in text
    assert f"外国人住民となった年月日{wareki(dt.date(2020, 4, 1))}国外転入" in text
    assert "第30条の45に規定する区分中長期在留者" in text
    assert "在留資格日本人の配偶者等" in text and "在留期間等3年" in text
    assert f"在留期間等の満了の日{wareki(dt.date(2028, 3, 31))}" in text
    assert "在留カード等の番号AB12345678CD" in text
    not_asked = _confirm_and_approve(bo_app, backoffice, _deliver(bo_app, city["card"], _request(items=items)))
    text = pdf_text(_pdf(bo_app, not_asked, "clerk_a"), tmp_path)
    assert "国籍・地域ベトナム" in text  # always on a foreign resident's record
    for item in ("第30条の45", "中長期在留者", "在留資格", "在留カード", "AB12345678CD"):
        assert item not in text
