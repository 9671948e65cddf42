"""Online applications (F3, F4, R8): the moving journey, certificate requests, My applications, the API."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import func, select

from bridge.peers.jlis.cardclient import build_auth_token, sign_challenge
from core import clock
from portal.models import Application, ApplicationKind, ApplicationStatus, AuditLog, PortalAccount
from portal.services import applications as apps
from tests.portal_fixtures import PASSWORD, PIN

ORIGIN = "http://127.0.0.1:5000"


def _csrf(client, path="/mypage/") -> str:
    page = client.get(path, follow_redirects=True)
    return BeautifulSoup(page.text, "html.parser").select_one("input[name=csrf_token]")["value"]


class Resident:
    """A signed-in, linked resident with a card, driving the portal like a browser without JavaScript."""

    def __init__(self, app, cards, *, link=True, **holder):
        self.app = app
        self.card = cards.issue(**holder)
        self.client = app.test_client()
        csrf = _csrf(self.client, "/auth/sign-in")
        nonce = self.client.post("/auth/challenge", headers={"X-CSRFToken": csrf}).json["nonce"]
        token = build_auth_token(self.card, PIN, origin=ORIGIN, nonce=nonce)
        login = self.client.post("/auth/login", json={"authToken": token}, headers={"X-CSRFToken": csrf})
        assert login.status_code == 200
        if link:
            self.sign("/auth/link/challenge", "/auth/link")

    def post(self, path, data):
        """Post a form page with its CSRF token."""
        token = _csrf(self.client, path)
        return self.client.post(path, data={"csrf_token": token, **data})

    def sign(self, challenge_path, submit_path, *, tamper=None):
        """What card.js does: fetch the challenge, sign its application with the card, post the JWS."""
        csrf = _csrf(self.client)
        challenge = self.client.post(challenge_path, headers={"X-CSRFToken": csrf}).json
        application = challenge["application"] if tamper is None else tamper(challenge["application"])
        jws = sign_challenge(self.card, PASSWORD, challenge, application)
        return self.client.post(submit_path, json={"signedApplication": jws}, headers={"X-CSRFToken": csrf})


@pytest.fixture
def resident(portal_app, cards):
    """宮沢 賢, of 花巻市 (032051), signed in and linked."""
    return Resident(portal_app, cards)


def _dates(move_in_days=7):
    today = clock.today_jst()
    move = today + dt.timedelta(days=move_in_days)
    return move, apps.next_business_day(max(move, today) - dt.timedelta(days=1))


def _move_to_kitakami(r, move_date=None, visit_date=None, people=None):
    move, visit = _dates()
    move, visit = move_date or move, visit_date or visit
    assert r.post("/apply/move/where", {"kind": "elsewhere"}).status_code == 302
    assert r.post("/apply/move/address", {"postal_code": "024-0061", "prefecture": "岩手県", "municipality": "北上市",
                                          "address": "大通り一丁目3番1号", "katagaki": ""}).status_code == 302
    assert r.post("/apply/move/dates", {"move_date": move.isoformat(),
                                        "visit_date": visit.isoformat()}).status_code == 302
    rows = people or {"movers-0-name": "宮沢　賢", "movers-0-kana": "みやざわ　けん",
                      "movers-0-birth_date": "1990-08-27", "movers-0-relationship": "本人", "movers-0-keeps_card": "y",
                      "movers-1-name": "宮沢　トシ", "movers-1-kana": "ミヤザワ　トシ",
                      "movers-1-birth_date": "1992-11-27", "movers-1-relationship": "妻", "movers-1-keeps_card": "y"}
    assert r.post("/apply/move/people", rows).status_code == 302
    assert r.post("/apply/move/householder", {"new_householder": "宮沢　賢"}).status_code == 302
    assert r.post("/apply/move/contact", {"contact_phone": "0198-24-2111"}).status_code == 302


def _count(app, model=Application):
    from portal.extensions import db

    with app.app_context():
        return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def test_a_move_to_kitakami_sends_a_move_out_and_a_move_in_reservation_with_one_signature(resident, portal_app):
    _move_to_kitakami(resident)
    check = BeautifulSoup(resident.client.get("/apply/move/check").text, "html.parser")
    assert check.select_one(".error-summary") is None
    assert len(check.select("#parts li")) == 2 and "北上市" in check.select_one("#answers").text
    assert "ミヤザワ　ケン" in check.select_one("#answers").text  # hiragana typed, katakana kept
    response = resident.sign("/apply/move/sign/challenge", "/apply/move/submit")
    assert response.status_code == 200, response.json
    done = BeautifulSoup(resident.client.get(response.json["redirect"]).text, "html.parser")
    receipts = [e.text for e in done.select(".receipt-number")]
    assert len(receipts) == 2 and all(len(r) == 18 for r in receipts)
    from portal.extensions import db

    with portal_app.app_context():
        rows = db.session.execute(select(Application).order_by(Application.id)).scalars().all()
        assert [(a.kind, a.municipality_code, a.status) for a in rows] == [
            (ApplicationKind.MOVE_OUT, "032051", ApplicationStatus.SUBMITTED),
            (ApplicationKind.MOVE_IN_RESERVATION, "032069", ApplicationStatus.SUBMITTED)]
        assert rows[0].move_id == rows[1].move_id is not None
    # The answers are gone after sending: a new move starts empty.
    assert resident.client.get("/apply/move/where").status_code == 200
    listing = BeautifulSoup(resident.client.get("/mypage/applications").text, "html.parser")
    assert len(listing.select("tr.application")) == 2


def move_within_the_city(resident):
    """Answer every page of a 転居予約 for the resident alone, up to the signature."""
    from core.addressmaster import load_machiaza

    move, visit = _dates()
    resident.post("/apply/move/where", {"kind": "in_city"})
    town = load_machiaza("032051")[3]
    assert resident.post("/apply/move/address", {"machiaza_code": town.code, "banchi": "2番地1"}).status_code == 302
    resident.post("/apply/move/dates", {"move_date": move.isoformat(), "visit_date": visit.isoformat()})
    resident.post("/apply/move/people", {"movers-0-name": "宮沢　賢", "movers-0-kana": "ミヤザワ　ケン",
                                         "movers-0-birth_date": "1990-08-27", "movers-0-relationship": "本人"})
    resident.post("/apply/move/householder", {"new_householder": "宮沢　賢"})
    resident.post("/apply/move/contact", {"contact_phone": "0198241111"})


def test_a_move_within_the_city_sends_one_in_city_reservation(resident, portal_app):
    move_within_the_city(resident)
    assert resident.sign("/apply/move/sign/challenge", "/apply/move/submit").status_code == 200
    from portal.extensions import db

    with portal_app.app_context():
        assert [a.kind for a in db.session.execute(select(Application)).scalars()] == [
            ApplicationKind.IN_CITY_RESERVATION]


def test_a_move_date_eleven_days_ago_is_refused_for_the_online_move_out_with_the_reason(resident, portal_app):
    today = clock.today_jst()
    _move_to_kitakami(resident, move_date=today - dt.timedelta(days=11), visit_date=apps.next_business_day(today))
    check = BeautifulSoup(resident.client.get("/apply/move/check").text, "html.parser")
    error = check.select_one(".error-summary a[data-field=moveDate]")
    assert (error is not None and "10日後" in error.text) or "10 days after" in error.text
    assert error["href"].endswith("/apply/move/dates")
    response = resident.sign("/apply/move/sign/challenge", "/apply/move/submit")
    assert response.status_code == 400 and "moveDate" in response.json["fields"]
    assert _count(portal_app) == 0


@pytest.mark.parametrize(("page", "data", "field"), [
    ("/apply/move/dates", {"move_date": "", "visit_date": "2030-01-01"}, "move_date"),
    ("/apply/move/dates", {"move_date": "2030-02-30", "visit_date": "2030-01-01"}, "move_date"),
    ("/apply/move/contact", {"contact_phone": "abc"}, "contact_phone"),
    ("/apply/move/where", {"kind": "abroad"}, "kind"),
    ("/apply/move/people", {"movers-0-name": "宮沢　賢", "movers-0-kana": "Miyazawa",
                            "movers-0-birth_date": "1990-08-27", "movers-0-relationship": "本人"}, "movers-0-kana"),
    ("/apply/move/people", {"movers-0-name": "宮沢　賢", "movers-0-kana": "ミヤザワ", "movers-0-birth_date": "",
                            "movers-0-relationship": "本人"}, "movers-0-birth_date"),
    # What the ledger could never hold: a birth date before 1900 or in the future, a pictograph in a name.
    ("/apply/move/people", {"movers-0-name": "宮沢　賢", "movers-0-kana": "ミヤザワ",
                            "movers-0-birth_date": "1990-08-27", "movers-0-relationship": "本人",
                            "movers-1-name": "宮沢　トシ", "movers-1-kana": "ミヤザワ",
                            "movers-1-birth_date": "1800-01-01", "movers-1-relationship": "妻"}, "movers-1-birth_date"),
    ("/apply/move/people", {"movers-0-name": "宮沢　賢", "movers-0-kana": "ミヤザワ",
                            "movers-0-birth_date": (clock.today_jst() + dt.timedelta(days=1)).isoformat(),
                            "movers-0-relationship": "本人"}, "movers-0-birth_date"),
    ("/apply/move/people", {"movers-0-name": "宮沢　賢😀", "movers-0-kana": "ミヤザワ",
                            "movers-0-birth_date": "1990-08-27", "movers-0-relationship": "本人"}, "movers-0-name"),
    ("/apply/move/address", {"postal_code": "024-0061", "prefecture": "岩手県", "municipality": "北上市",
                             "address": "大通り1-3-1", "katagaki": "🏠101"}, "katagaki"),
])
def test_a_bad_answer_names_the_field_and_stores_nothing(resident, portal_app, page, data, field):
    resident.post("/apply/move/where", {"kind": "elsewhere"})
    response = resident.post(page, data)
    assert response.status_code == 200
    summary = BeautifulSoup(response.text, "html.parser").select_one(".error-summary")
    assert summary is not None and summary.select_one(f"a[href='#{field}']") is not None
    assert _count(portal_app) == 0


def test_a_too_long_name_of_a_mover_is_refused_in_the_pages_language(resident):
    resident.post("/apply/move/where", {"kind": "elsewhere"})
    response = resident.post("/apply/move/people", {
        "movers-0-name": "宮" * 101, "movers-0-kana": "ミヤザワ", "movers-0-birth_date": "1990-08-27",
        "movers-0-relationship": "本人"})
    link = BeautifulSoup(response.text, "html.parser").select_one(".error-summary a[href='#movers-0-name']")
    assert link is not None and "100 文字" in link.text and "longer than" not in response.text


def _account(**changes):
    values = {"name": "宮沢　賢", "address": "岩手県花巻市桜町一丁目1番地", "birth_date": dt.date(1990, 8, 27),
              "sex": "1", "linked_at": clock.utcnow()}
    values.update(changes)
    return PortalAccount(**values)


def _move(**changes):
    today = clock.today_jst()
    move = today + dt.timedelta(days=5)
    data = {"type": "move", "fromMunicipalityCode": "032051", "moveDate": move.isoformat(),
            "destination": {"kind": "elsewhere", "municipalityCode": "032069", "postalCode": "0240061",
                            "prefecture": "岩手県", "municipality": "北上市", "address": "大通り1-3-1"},
            "movers": [{"name": "宮沢　賢", "kana": "ミヤザワ　ケン", "birthDate": "1990-08-27", "relationship": "本人",
                        "keepsCard": True}],
            "newHouseholder": "宮沢　賢", "contactPhone": "0198-24-2111",
            "visitDate": apps.next_business_day(move - dt.timedelta(days=1)).isoformat()}
    data.update(changes)
    return data


def _fields(errors):
    return {e.field for e in errors}


@pytest.mark.parametrize(("changes", "field"), [
    ({"visitDate": "2000-01-01"}, "visitDate"),  # before the move
    ({"destination": {"kind": "elsewhere", "postalCode": "0000000", "prefecture": "海外", "municipality": "ソウル",
                      "address": "x"}}, "destination.prefecture"),  # domestic only
    ({"movers": [{"name": "宮沢　賢", "kana": "ミヤザワ　ケン", "birthDate": "1990-08-27", "relationship": "本人",
                  "keepsCard": True}] * 2}, "movers.1.name"),  # movers unique
    ({"newHouseholder": "誰か"}, "newHouseholder"),  # householder among movers or existing
    ({"fromMunicipalityCode": "032069"}, "fromMunicipalityCode"),  # the current address is the card's
    ({"destination": {"kind": "elsewhere", "municipalityCode": "032051", "postalCode": "0250000",
                      "prefecture": "岩手県", "municipality": "花巻市", "address": "x"}}, "destination.kind"),
    ({"contactPhone": "12345"}, "contactPhone"),
])
def test_each_move_rule_is_enforced_in_the_service(portal_app, changes, field):
    with portal_app.test_request_context("/"):
        assert field in _fields(apps.check_move(_move(**changes), account=_account(), today=clock.today_jst()))


_CO_MOVER = {"name": "宮沢　トシ", "kana": "ミヤザワ　トシ", "birthDate": "1992-11-27", "relationship": "妻",
             "keepsCard": True}


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"movers": [_move()["movers"][0], {**_CO_MOVER, "birthDate": "1800-01-01"}]}, "movers.1.birthDate", "1900"),
    ({"movers": [_move()["movers"][0], {**_CO_MOVER, "birthDate": "1899-12-31"}]}, "movers.1.birthDate", "1900"),
    ({"movers": [{**_CO_MOVER, "name": "宮沢　トシ😀"}], "newHouseholder": "existing"}, "movers.0.name", "U+1F600"),
    ({"movers": [{**_CO_MOVER, "relationship": "妻\u200b"}]}, "movers.0.relationship", "U+200B"),
    ({"destination": {**_move()["destination"], "address": "大通り1-3-1\ue000"}}, "destination.address", "U+E000"),
])
def test_what_the_ledger_could_never_hold_is_refused_naming_the_field(portal_app, changes, field, words):
    with portal_app.test_request_context("/"):
        errors = [e for e in apps.check_move(_move(**changes), account=_account(), today=clock.today_jst())
                  if e.field == field]
        assert errors and words in str(errors[0].message)


def test_names_of_the_registers_own_characters_are_accepted(portal_app):
    movers = [{**_CO_MOVER, "name": "髙橋　𠮷子"}, {**_CO_MOVER, "name": "ﾐﾔｻﾞﾜ　Ｋｅｎ", "birthDate": "1900-01-01"}]
    with portal_app.test_request_context("/"):
        assert apps.check_move(_move(movers=movers, newHouseholder="existing"), account=_account(),
                               today=clock.today_jst()) == []


def test_a_parent_may_file_for_a_child_moving_alone(portal_app):
    """第26条: the signer need not move; the back office checks the household on the ledger."""
    child = {"name": "宮沢　清六", "kana": "ミヤザワ　セイロク", "birthDate": "2007-04-01", "relationship": "子",
             "keepsCard": True}
    with portal_app.test_request_context("/"):
        assert apps.check_move(_move(movers=[child], newHouseholder="宮沢　清六"), account=_account(),
                               today=clock.today_jst()) == []


def test_the_visit_must_be_within_fourteen_days_and_a_business_day_ahead(portal_app):
    today = clock.today_jst()
    with portal_app.test_request_context("/"):
        late = _move(moveDate=today.isoformat(), visitDate=(today + dt.timedelta(days=15)).isoformat())
        assert "visitDate" in _fields(apps.check_move(late, account=_account(), today=today))
        same_day = _move(moveDate=(today - dt.timedelta(days=2)).isoformat(), visitDate=today.isoformat())
        assert "visitDate" in _fields(apps.check_move(same_day, account=_account(), today=today))
        assert apps.check_move(_move(), account=_account(), today=today) == []


def test_a_signer_under_fifteen_is_refused(portal_app):
    today = clock.today_jst()
    young = _account(birth_date=today.replace(year=today.year - 14))
    with portal_app.test_request_context("/"):
        assert "movers" in _fields(apps.check_move(_move(), account=young, today=today))


def test_business_days_skip_weekends_holidays_and_the_new_year():
    assert apps.next_business_day(dt.date(2026, 12, 25)) == dt.date(2026, 12, 28)  # Fri → Mon
    assert apps.next_business_day(dt.date(2026, 12, 28)) == dt.date(2027, 1, 4)  # closed 12/29-1/3, then a weekend
    assert apps.next_business_day(dt.date(2026, 11, 20)) == dt.date(2026, 11, 24)  # Fri → Mon 11/23 is a holiday


def test_what_was_signed_must_be_what_was_checked(resident, portal_app):
    _move_to_kitakami(resident)

    def tamper(application):
        return {**application, "contactPhone": "0120-000-000"}

    response = resident.sign("/apply/move/sign/challenge", "/apply/move/submit", tamper=tamper)
    assert response.status_code == 400 and response.json["fields"] == ["signature"]
    assert _count(portal_app) == 0


def test_a_post_without_the_csrf_token_is_refused(resident):
    response = resident.client.post("/apply/move/where", data={"kind": "elsewhere"})
    assert response.status_code == 400


def test_forged_extra_fields_are_ignored(resident, portal_app):
    _move_to_kitakami(resident)
    resident.post("/apply/move/contact", {"contact_phone": "0198-24-2111", "status": "approved", "resident": "1"})
    assert resident.sign("/apply/move/sign/challenge", "/apply/move/submit").status_code == 200
    from portal.extensions import db

    with portal_app.app_context():
        assert {a.status for a in db.session.execute(select(Application)).scalars()} == {ApplicationStatus.SUBMITTED}


def test_a_certificate_request_shows_the_fee_and_is_sent_by_post(resident, portal_app):
    response = resident.post("/apply/certificate", {"kind": "juminhyo", "persons": "household", "householder": "y",
                                                    "copies": "2", "purpose": "勤務先への提出"})
    assert response.status_code == 302
    check = BeautifulSoup(resident.client.get("/apply/certificate/check").text, "html.parser")
    assert check.select_one("#fee").text.strip() in ("600円", "600 yen")
    assert resident.sign("/apply/certificate/sign/challenge", "/apply/certificate/submit").status_code == 200
    from portal.extensions import db

    with portal_app.app_context():
        assert db.session.execute(select(Application.kind)).scalar_one() is ApplicationKind.CERTIFICATE


def test_a_foreign_resident_may_ask_for_the_article_30_45_items_and_signs_for_them(resident, portal_app):
    response = resident.post("/apply/certificate", {"kind": "juminhyo", "persons": "self", "foreign_resident": "y",
                                                    "copies": "1", "purpose": "在留手続"})
    assert response.status_code == 302
    check = resident.client.get("/apply/certificate/check").text
    assert "在留カード" in check
    assert resident.sign("/apply/certificate/sign/challenge", "/apply/certificate/submit").status_code == 200
    from portal.extensions import db

    with portal_app.app_context():
        jws = db.session.execute(select(Application.signed_jws)).scalar_one()
    payload = json.loads(base64.urlsafe_b64decode(jws.split(".")[1] + "=="))
    signed = payload.get("application", payload)
    assert signed["items"]["foreignResident"] is True and signed["items"]["myNumber"] is False


def test_a_fee_per_municipality_is_the_one_shown_charged_and_signed_for(resident, portal_app):
    """A mapping of codes to fees is valid configuration: the form and its check page show this city's fee."""
    portal_app.config["CERTIFICATE_FEE_YEN"] = {"032051": 350, "032069": 200}
    form = BeautifulSoup(resident.client.get("/apply/certificate").text, "html.parser")
    assert "350" in form.select_one("main").text
    response = resident.post("/apply/certificate", {"kind": "kisai_jiko", "persons": "self", "copies": "2",
                                                    "purpose": "勤務先への提出"})
    assert response.status_code == 302
    check = BeautifulSoup(resident.client.get("/apply/certificate/check").text, "html.parser")
    assert check.select_one("#fee").text.strip() in ("700円", "700 yen")
    assert resident.sign("/apply/certificate/sign/challenge", "/apply/certificate/submit").status_code == 200
    from portal.extensions import db

    with portal_app.app_context():
        assert json.loads(db.session.execute(select(Application.summary)).scalar_one())["fee"] == 700


@pytest.mark.parametrize(("data", "field"), [
    ({"kind": "juminhyo", "persons": "self", "copies": "11", "purpose": "x"}, "copies"),
    ({"kind": "juminhyo", "persons": "self", "copies": "1", "purpose": ""}, "purpose"),
    ({"kind": "passport", "persons": "self", "copies": "1", "purpose": "x"}, "kind"),
])
def test_a_bad_certificate_request_names_the_field(resident, portal_app, data, field):
    response = resident.post("/apply/certificate", data)
    summary = BeautifulSoup(response.text, "html.parser").select_one(".error-summary")
    assert summary is not None and summary.select_one(f"a[href='#{field}']") is not None
    assert _count(portal_app) == 0


def test_a_resident_can_never_see_or_change_another_residents_application(portal_app, cards):
    a = Resident(portal_app, cards)
    b = Resident(portal_app, cards, name="石川　一", birth_date=dt.date(1986, 2, 20))
    b.post("/apply/certificate", {"kind": "juminhyo", "persons": "self", "copies": "1", "purpose": "x"})
    b.sign("/apply/certificate/sign/challenge", "/apply/certificate/submit")
    from portal.extensions import db

    with portal_app.app_context():
        receipt = db.session.execute(select(Application.receipt_number)).scalar_one()
    csrf = _csrf(a.client)
    for method, path in (("get", f"/mypage/applications/{receipt}"),
                         ("get", f"/mypage/applications/{receipt}/withdraw"),
                         ("post", f"/mypage/applications/{receipt}/withdraw/challenge"),
                         ("post", f"/mypage/applications/{receipt}/withdraw"), ("get", f"/apply/done/{receipt}")):
        response = getattr(a.client, method)(path, headers={"X-CSRFToken": csrf}, json={})
        assert response.status_code == 404, path
    with portal_app.app_context():
        denied = db.session.execute(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "application.access", AuditLog.outcome == "denied")).scalar_one()
    assert denied == 5


def test_a_resident_withdraws_with_a_signature_until_the_city_starts_checking(resident, portal_app):
    resident.post("/apply/certificate", {"kind": "juminhyo", "persons": "self", "copies": "1", "purpose": "x"})
    resident.sign("/apply/certificate/sign/challenge", "/apply/certificate/submit")
    from portal.extensions import db

    with portal_app.app_context():
        receipt = db.session.execute(select(Application.receipt_number)).scalar_one()
    response = resident.sign(f"/mypage/applications/{receipt}/withdraw/challenge",
                             f"/mypage/applications/{receipt}/withdraw")
    assert response.status_code == 200
    page = BeautifulSoup(resident.client.get(f"/mypage/applications/{receipt}").text, "html.parser")
    assert "status-withdrawn" in str(page.select_one("#status"))
    assert len(page.select("#history li")) == 2


def test_an_application_in_review_cannot_be_withdrawn(resident, portal_app):
    resident.post("/apply/certificate", {"kind": "juminhyo", "persons": "self", "copies": "1", "purpose": "x"})
    resident.sign("/apply/certificate/sign/challenge", "/apply/certificate/submit")
    from portal.extensions import db

    with portal_app.test_request_context("/"):
        application = db.session.execute(select(Application)).scalar_one()
        apps.set_status(db.session, application, ApplicationStatus.IN_REVIEW, actor="muni:032051")
        db.session.commit()
        receipt = application.receipt_number
    response = resident.sign(f"/mypage/applications/{receipt}/withdraw/challenge",
                             f"/mypage/applications/{receipt}/withdraw")
    assert response.status_code == 400
    with portal_app.app_context():
        assert db.session.execute(select(Application.status)).scalar_one() is ApplicationStatus.IN_REVIEW


def test_an_approved_move_can_still_be_cancelled_with_a_signature_but_an_approved_certificate_cannot(
        resident, portal_app):
    """転出取消 / 予約取消 before the 転入: the signed withdrawal goes to the municipality, which decides."""
    from portal.extensions import db
    from portal.models import Outbox

    _move_to_kitakami(resident)
    assert resident.sign("/apply/move/sign/challenge", "/apply/move/submit").status_code == 200
    resident.post("/apply/certificate", {"kind": "juminhyo", "persons": "self", "copies": "1", "purpose": "x"})
    resident.sign("/apply/certificate/sign/challenge", "/apply/certificate/submit")
    with portal_app.test_request_context("/"):
        rows = db.session.execute(select(Application).order_by(Application.id)).scalars().all()
        for application in rows:
            apps.set_status(db.session, application, ApplicationStatus.APPROVED, actor="muni:032051")
        db.session.commit()
        move_out, certificate = rows[0].receipt_number, rows[2].receipt_number
    page = BeautifulSoup(resident.client.get(f"/mypage/applications/{move_out}/withdraw").text, "html.parser")
    assert page.select_one("#cancel-move") is not None
    response = resident.sign(f"/mypage/applications/{move_out}/withdraw/challenge",
                             f"/mypage/applications/{move_out}/withdraw")
    assert response.status_code == 200, response.json
    response = resident.sign(f"/mypage/applications/{certificate}/withdraw/challenge",
                             f"/mypage/applications/{certificate}/withdraw")
    assert response.status_code == 400
    with portal_app.app_context():
        statuses = dict(db.session.execute(select(Application.receipt_number, Application.status)).all())
        assert (statuses[move_out], statuses[certificate]) == (ApplicationStatus.WITHDRAWN, ApplicationStatus.APPROVED)
        sent = db.session.execute(select(func.count()).select_from(Outbox).where(
            Outbox.message_type == "application.withdrawn")).scalar_one()
        assert sent == 1


# -- the API -----------------------------------------------------------------------------------

def _bearer(app, card):
    client = app.test_client()
    nonce = client.post("/api/v1/auth/challenge").json["nonce"]
    token = build_auth_token(card, PIN, origin=ORIGIN, nonce=nonce)
    access = client.post("/api/v1/auth/token", json={"authToken": token, "nonce": nonce}).json["access_token"]
    return client, {"Authorization": f"Bearer {access}"}


def _api_submit(client, headers, card, application, key="signedApplication", **extra):
    challenge = client.post("/api/v1/applications/challenge", headers=headers, json={"application": application}).json
    jws = sign_challenge(card, PASSWORD, challenge, application)
    return client.post("/api/v1/applications", headers=headers, json={key: jws, "nonce": challenge["nonce"], **extra})


def test_an_app_submits_a_move_by_api_and_follows_it(resident, portal_app):
    client, headers = _bearer(portal_app, resident.card)
    response = _api_submit(client, headers, resident.card, _move(), status="approved", resident=99)
    assert response.status_code == 202, response.json
    body = response.json
    assert body["status"] == "submitted" and [p["kind"] for p in body["parts"]] == ["move_out", "move_in_reservation"]
    listed = client.get("/api/v1/applications", headers=headers).json["applications"]
    assert {a["receipt_number"] for a in listed} == {p["receipt_number"] for p in body["parts"]}
    detail = client.get(f"/api/v1/applications/{body['receipt_number']}", headers=headers).json
    assert detail["history"][0]["status"] == "submitted"


def test_the_api_refuses_a_bad_application_naming_the_field_and_stores_nothing(resident, portal_app):
    client, headers = _bearer(portal_app, resident.card)
    today = clock.today_jst()
    response = _api_submit(client, headers, resident.card, _move(moveDate=(today - dt.timedelta(days=11)).isoformat()))
    assert response.status_code == 422 and "moveDate" in [f["field"] for f in response.json["fields"]]
    assert _count(portal_app) == 0


def test_the_api_names_a_missing_and_an_unexpected_property_by_json_pointer_and_stores_nothing(resident, portal_app):
    client, headers = _bearer(portal_app, resident.card)
    application = _move(destination={**_move()["destination"], "floor": 3})
    del application["contactPhone"]
    response = _api_submit(client, headers, resident.card, application)
    assert response.status_code == 422, response.json
    fields = {f["pointer"]: f["message"] for f in response.json["fields"]}
    assert fields == {"/contactPhone": "この項目がありません。", "/destination/floor": "この項目は受け付けていません。"}
    assert _count(portal_app) == 0


def test_the_deprecated_snake_case_body_key_is_still_accepted_and_documented_as_deprecated(resident, portal_app):
    client, headers = _bearer(portal_app, resident.card)
    assert _api_submit(client, headers, resident.card, _move(), key="signed_application").status_code == 202
    schema = client.get("/api/v1/openapi.json").json["paths"]["/api/v1/applications"]["post"]["requestBody"]
    properties = schema["content"]["application/json"]["schema"]["properties"]
    assert properties["signed_application"]["deprecated"] is True
    assert "deprecated" not in properties["signedApplication"]


def test_the_api_gives_404_for_another_residents_application(portal_app, cards):
    a = Resident(portal_app, cards)
    b = Resident(portal_app, cards, name="石川　一", birth_date=dt.date(1986, 2, 20))
    client_b, headers_b = _bearer(portal_app, b.card)
    cert = {"type": "certificate", "municipalityCode": "032051", "kind": "juminhyo", "persons": "self",
            "items": {"householder": False, "honseki": False, "juminhyoCode": False, "myNumber": False},
            "copies": 1, "purpose": "x", "delivery": "post"}
    receipt = _api_submit(client_b, headers_b, b.card, cert).json["receipt_number"]
    client_a, headers_a = _bearer(portal_app, a.card)
    assert client_a.get(f"/api/v1/applications/{receipt}", headers=headers_a).status_code == 404
    assert client_a.post(f"/api/v1/applications/{receipt}/withdraw", headers=headers_a,
                         json={"signed_application": "x.y.z"}).status_code == 404
    assert client_a.get("/api/v1/applications", headers=headers_a).json["applications"] == []


def test_the_stored_application_is_the_signed_jws_as_received(resident, portal_app):
    client, headers = _bearer(portal_app, resident.card)
    _api_submit(client, headers, resident.card, _move())
    from portal.extensions import db

    with portal_app.app_context():
        application = db.session.execute(select(Application).order_by(Application.id)).scalars().first()
        assert apps.signed_content(application)["contactPhone"] == "0198-24-2111"
        assert json.loads(application.summary)["to"] == "北上市"


@pytest.mark.parametrize("change", [
    {"parts": [{"kind": "move_out", "municipalityCode": "032051"}]},  # the 転入予約 to Kitakami left out
    {"parts": [{"kind": "in_city_reservation", "municipalityCode": "032051"}]},
    {"moveId": None},
    {"iat": 1},  # signed long ago
])
def test_the_portal_refuses_a_signature_whose_parts_move_or_time_are_not_this_applications(resident, portal_app,
                                                                                           change):
    client, headers = _bearer(portal_app, resident.card)
    challenge = client.post("/api/v1/applications/challenge", headers=headers, json={"application": _move()}).json
    jws = sign_challenge(resident.card, PASSWORD, {**challenge, **change}, _move())
    response = client.post("/api/v1/applications", headers=headers,
                           json={"signed_application": jws, "nonce": challenge["nonce"]})
    assert response.status_code in (400, 422), response.json
    assert _count(portal_app) == 0


def test_each_part_carries_the_signed_move_id(resident, portal_app):
    from portal.extensions import db

    client, headers = _bearer(portal_app, resident.card)
    challenge = client.post("/api/v1/applications/challenge", headers=headers, json={"application": _move()}).json
    assert challenge["parts"] == [{"kind": "move_out", "municipalityCode": "032051"},
                                  {"kind": "move_in_reservation", "municipalityCode": "032069"}]
    jws = sign_challenge(resident.card, PASSWORD, challenge, _move())
    assert client.post("/api/v1/applications", headers=headers,
                       json={"signed_application": jws, "nonce": challenge["nonce"]}).status_code == 202
    with portal_app.app_context():
        assert set(db.session.execute(select(Application.move_id)).scalars()) == {challenge["moveId"]}


# -- hostile input: refused like any other bad input, never a server error -------------------------------------

LAST_DAY = dt.date(9999, 12, 31)  # the last date Python has: a date 14 days after it does not exist


def test_a_move_on_the_last_representable_day_is_refused_on_the_check_page_naming_the_move_date(resident, portal_app):
    _move_to_kitakami(resident, move_date=LAST_DAY, visit_date=LAST_DAY)
    page = resident.client.get("/apply/move/check")
    assert page.status_code == 200
    error = BeautifulSoup(page.text, "html.parser").select_one(".error-summary a[data-field=moveDate]")
    assert error is not None and ("10日後" in error.text or "10 days after" in error.text)
    response = resident.sign("/apply/move/sign/challenge", "/apply/move/submit")
    assert response.status_code == 400 and "moveDate" in response.json["fields"]
    assert _count(portal_app) == 0


def test_a_signed_move_on_the_last_representable_day_is_refused_by_the_api_naming_the_move_date(resident, portal_app):
    client, headers = _bearer(portal_app, resident.card)
    response = _api_submit(client, headers, resident.card, _move(moveDate=LAST_DAY.isoformat(),
                                                                 visitDate=LAST_DAY.isoformat()))
    assert response.status_code == 422 and response.is_json, response.text
    assert "moveDate" in [f["field"] for f in response.json["fields"]]
    assert _count(portal_app) == 0


@pytest.mark.parametrize("receipt", ["a%00b", "%00", "1" * 31, "a%0Ab", "%E5%AE%AE"])
def test_a_malformed_receipt_number_is_not_found_on_every_page_and_the_api(resident, portal_app, receipt):
    client, headers = _bearer(portal_app, resident.card)
    assert resident.client.get(f"/mypage/applications/{receipt}").status_code == 404
    assert resident.client.get(f"/apply/done/{receipt}").status_code == 404
    assert client.get(f"/api/v1/applications/{receipt}", headers=headers).status_code == 404
