"""The counter (R9, R10): the resident's card checked on the counter terminal, then the 転居 completed.

The cards are real simulated My Number Cards issued by this back office's J-LIS; the tokens are
what the card host signs; Redis holds the one-time challenges; PostgreSQL the ledger.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import uuid

import pytest
from sqlalchemy import func, select

from backoffice.models import (
    AuditLog,
    CardRecord,
    Case,
    CaseStatus,
    CounterVisit,
    IdoReason,
    Outbox,
    ProvisionRecord,
    Resident,
    ResidentHistory,
    Staff,
    VisitResult,
)
from backoffice.services.cases import CaseError
from backoffice.services.records import RecordError
from bridge.peers.jlis.cardclient import build_auth_token
from core import clock
from core.addressmaster import load_machiaza
from core.envelope import Opened
from tests.backoffice.case_fixtures import receipt_number, sign_part
from tests.factories import make_household, make_resident
from tests.pki_fixtures import deliver_card_revocations

PIN, PASSWORD = "1234", "ABC123"
TEST_REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def make_counter_keys(directory):
    """Bridge keys of this back office, the portal, the prefecture server and J-LIS, each registered with the others."""
    from bridge.peers import prefecture
    from bridge.peers.jlis import receiver as jlis
    from core.envelope import KeyRegistry, import_public_key

    for party in ("muni:032051", "portal", prefecture.PARTY, jlis.PARTY):
        registry = KeyRegistry.from_config({"BRIDGE_KEY_DIRECTORY": str(directory)}, party=party)
        import_public_key(directory, party, registry.public_pem())
    return directory


def prepare_counter_app(app, keys_directory):
    """Redis for the counter's challenges under a key prefix of its own; the prefecture's bridge key."""
    app.config.update(REDIS_URL=TEST_REDIS, REDIS_KEY_PREFIX=f"test-{secrets.token_hex(6)}",
                      CARD_FILE_ITERATIONS=1000, BRIDGE_KEY_DIRECTORY=str(keys_directory))
    return app


def drop_counter_keys(app):
    """Remove this test's Redis keys."""
    from core.redisconn import get_redis

    client = get_redis(app)
    for name in client.scan_iter(match=app.config["REDIS_KEY_PREFIX"] + ":*"):
        client.delete(name)


def make_counter_city(app, directory):
    """A household of two with a card each, a neighbour with a card, a clerk and two counter terminals."""
    from backoffice.extensions import db
    from backoffice.services import cards, staff, terminals

    with app.test_request_context("/"):
        household = make_household(db.session, householder_name="宮沢　賢")
        head = make_resident(db.session, app.config, household=household, name="宮沢　賢",
                             name_kana="ミヤザワ　ケン", birth_date=dt.date(1990, 8, 27))
        wife = make_resident(db.session, app.config, household=household, name="宮沢　トシ",
                             name_kana="ミヤザワ　トシ", birth_date=dt.date(1992, 11, 27), relationship_to_head="妻",
                             is_householder=False, banchi=head.banchi)
        neighbour = make_resident(db.session, app.config, name="高橋　ミツ", name_kana="タカハシ　ミツ",
                                  birth_date=dt.date(1985, 1, 2))
        files = {}
        for label, person in (("head", head), ("wife", wife), ("neighbour", neighbour)):
            _record, data = cards.issue_card(db.session, resident_code=person.juminhyo_code, pin=PIN,
                                             password=PASSWORD, issued_by="clerk0", iterations=1000)
            files[label] = directory / f"{label}.json"
            files[label].write_bytes(data)
        clerk, _secret = staff.add_staff(db.session, login_id="clerk1", name="窓口　一郎", password="x" * 20,
                                         roles=["clerk"])
        terminal, _code = terminals.add_terminal(db.session, name="counter-1")
        other_terminal, _code = terminals.add_terminal(db.session, name="counter-2")
        db.session.commit()
        return {"cards": files, "head": head.id, "wife": wife.id, "neighbour": neighbour.id, "clerk": clerk.id,
                "terminal": terminal.id, "other_terminal": other_terminal.id, "old_banchi": head.banchi,
                "old_machiaza": head.machiaza_code}


@pytest.fixture(scope="module")
def counter_keys(tmp_path_factory):
    """Bridge keys for this module's apps."""
    return make_counter_keys(tmp_path_factory.mktemp("counter-keys"))


@pytest.fixture
def counter_app(bo_app, clock, counter_keys):
    """The back office with Redis for the counter's challenges (its own key prefix, removed afterwards)."""
    yield prepare_counter_app(bo_app, counter_keys)
    drop_counter_keys(bo_app)


@pytest.fixture
def city(counter_app, tmp_path):
    """Residents with cards, a clerk and counter terminals."""
    return make_counter_city(counter_app, tmp_path)


def new_address(app):
    """A 町字 of this city other than the one the factory uses, and a 番地."""
    machiaza = load_machiaza(app.config["MUNICIPALITY_CODE"])[1]
    return {"kind": "in_city", "machiazaCode": machiaza.code, "banchi": "7番地3", "katagaki": "桜荘101"}


def in_city_application(app, movers, **changes):
    """A 転居予約 as the portal builds it; the move happened today."""
    today = clock.today_jst()
    data = {"type": "move", "fromMunicipalityCode": app.config["MUNICIPALITY_CODE"], "moveDate": today.isoformat(),
            "destination": new_address(app),
            "movers": [{"name": n, "kana": k, "birthDate": b, "relationship": r, "keepsCard": True}
                       for n, k, b, r in movers],
            "newHouseholder": movers[0][0], "contactPhone": "0198-24-2111", "visitDate": today.isoformat()}
    data.update(changes)
    return data


HEAD = ("宮沢　賢", "ミヤザワ　ケン", "1990-08-27", "本人")
WIFE = ("宮沢　トシ", "ミヤザワ　トシ", "1992-11-27", "妻")


def approved_case(app, card, application, *, kind="in_city_reservation"):
    """The application arrives through intake, then is approved (as the workflow would)."""
    from backoffice.extensions import db
    from backoffice.services.intake import receive_application

    jws, move_id = sign_part(card, app.config, kind, application, here=app.config["MUNICIPALITY_CODE"])
    opened = Opened(message_id=str(uuid.uuid4()), message_type="application.submitted", sender="portal",
                    recipient=f"muni:{app.config['MUNICIPALITY_CODE']}", created_at=clock.utcnow(),
                    payload={"receiptNumber": receipt_number(), "kind": kind, "moveId": move_id,
                             "submittedAt": clock.utcnow().isoformat(), "signedApplication": jws})
    with app.test_request_context("/"):
        case = receive_application(db.session, opened)
        assert case.status is CaseStatus.RECEIVED, case.findings
        case.status = CaseStatus.APPROVED
        db.session.commit()
        return case.id


def check_card(app, city, case_id, card, *, pin=PIN, terminal=None, nonce=None, token=None):
    """What the counter page does: a challenge from this back office, the card signs it, the service verifies."""
    from backoffice.extensions import db
    from backoffice.services import counter

    with app.test_request_context("/"):
        if nonce is None:
            nonce = counter.nonces().issue().nonce
        if token is None:
            token = build_auth_token(card, pin, origin=counter.trust().origin, nonce=nonce)
        case = db.session.get(Case, case_id)
        try:
            visit = counter.check_visit(db.session, case, token=token, nonce=nonce, staff_id=city["clerk"],
                                        terminal_id=terminal or city["terminal"])
        except counter.VisitRefused as exc:
            db.session.commit()
            return exc
        db.session.commit()
        return visit.id


def complete(app, case_id, visit_id, *, terminal=None, remaining_householder=None, relationships=None):
    """Complete the 転居 with the visit (None: no card check); returns the error or None."""
    from backoffice.extensions import db
    from backoffice.services import counter

    with app.test_request_context("/"):
        case = db.session.get(Case, case_id)
        visit = db.session.get(CounterVisit, visit_id) if visit_id else None
        clerk = db.session.execute(select(Staff).where(Staff.login_id == "clerk1")).scalar_one()
        try:
            counter.complete_in_city_move(db.session, case, by=clerk, visit=visit,
                                          remaining_householder=remaining_householder, relationships=relationships)
        except (counter.CounterError, CaseError, RecordError) as exc:
            db.session.rollback()
            return exc
        db.session.commit()
        return None


def ledger_state(app):
    """Everything a 転居 could touch, to prove a refusal changed nothing."""
    from backoffice.extensions import db

    with app.app_context():
        residents = [tuple(r) for r in db.session.execute(select(
            Resident.id, Resident.name, Resident.machiaza_code, Resident.banchi, Resident.katagaki,
            Resident.household_id, Resident.updated_at).order_by(Resident.id)).all()]
        counts = [db.session.execute(select(func.count()).select_from(m)).scalar_one()
                  for m in (ResidentHistory, ProvisionRecord, Outbox)]
        statuses = db.session.execute(select(Case.status)).scalars().all()
        cards = db.session.execute(select(CardRecord.status, CardRecord.updated_at).order_by(CardRecord.id)).all()
        return residents, counts, statuses, [tuple(c) for c in cards]


def sign_serial_revoked(app, resident_id):
    from backoffice.extensions import db
    from backoffice.services import cards

    with app.test_request_context("/"):
        card = db.session.execute(select(CardRecord).where(CardRecord.resident_id == resident_id)).scalar_one()
        return cards.card_authority().status(int(card.sign_cert_serial))


# -- the card check (R9) -------------------------------------------------------------------------------


def test_the_applicants_card_checked_at_the_counter_is_stored_as_a_verified_visit_and_logged(counter_app, city):
    case_id = approved_case(counter_app, city["cards"]["head"], in_city_application(counter_app, [HEAD, WIFE]))
    visit_id = check_card(counter_app, city, case_id, city["cards"]["head"])
    from backoffice.extensions import db

    with counter_app.app_context():
        visit = db.session.get(CounterVisit, visit_id)
        card = db.session.execute(select(CardRecord).where(CardRecord.resident_id == city["head"])).scalar_one()
        assert (visit.result, visit.case_id, visit.resident_id, visit.staff_id, visit.terminal_id) == (
            VisitResult.VERIFIED, case_id, city["head"], city["clerk"], city["terminal"])
        assert visit.cert_serial == card.auth_cert_serial and visit.checked_at == clock.utcnow()
        [row] = db.session.execute(select(AuditLog).where(AuditLog.action == "counter.visit")).scalars()
        assert row.outcome == "success" and json.loads(row.detail)["certificate_serial"] == card.auth_cert_serial


def test_a_mover_who_is_not_the_applicant_may_show_their_own_card(counter_app, city):
    case_id = approved_case(counter_app, city["cards"]["head"], in_city_application(counter_app, [HEAD, WIFE]))
    assert isinstance(check_card(counter_app, city, case_id, city["cards"]["wife"]), int)


def test_the_card_of_someone_outside_the_case_is_refused_and_the_refusal_is_kept(counter_app, city):
    case_id = approved_case(counter_app, city["cards"]["head"], in_city_application(counter_app, [HEAD]))
    refused = check_card(counter_app, city, case_id, city["cards"]["neighbour"])
    assert refused.code == "not_applicant" and "neither the applicant nor a mover" in refused.message
    refused = check_card(counter_app, city, case_id, city["cards"]["neighbour"])
    assert refused.code == "not_applicant"
    from backoffice.extensions import db

    with counter_app.app_context():
        visits = db.session.execute(select(CounterVisit.result, CounterVisit.reason)).all()
        assert visits == [(VisitResult.REFUSED, "not_applicant")] * 2
        outcomes = db.session.execute(select(AuditLog.outcome).where(AuditLog.action == "counter.visit")).scalars()
        assert list(outcomes) == ["denied", "denied"]
    # Neither refused check lets the clerk complete the case.
    assert complete(counter_app, case_id, None).field == "visit"


def _child(app, city, age):
    """A child of the household, ``age`` years old today, with a card of their own (an authentication certificate)."""
    from backoffice.extensions import db
    from backoffice.services import cards

    today = clock.today_jst()
    with app.test_request_context("/"):
        head = db.session.get(Resident, city["head"])
        born = today.replace(year=today.year - age) - dt.timedelta(days=1)
        child = make_resident(db.session, app.config, household=head.household, name="宮沢　清六",
                              name_kana="ミヤザワ　セイロク", birth_date=born, relationship_to_head="子",
                              is_householder=False, banchi=head.banchi, machiaza_code=head.machiaza_code)
        _record, data = cards.issue_card(db.session, resident_code=child.juminhyo_code, pin=PIN, password=PASSWORD,
                                         issued_by="clerk0", iterations=1000)
        db.session.commit()
    path = city["cards"]["head"].with_name("child.json")
    path.write_bytes(data)
    return ("宮沢　清六", "ミヤザワ　セイロク", born.isoformat(), "子"), path


def test_a_member_who_does_not_move_completes_the_move_only_with_each_movers_card(counter_app, city):
    case_id = approved_case(counter_app, city["cards"]["head"], in_city_application(counter_app, [HEAD]))
    visit = check_card(counter_app, city, case_id, city["cards"]["wife"])  # the wife stays: a 世帯員
    assert isinstance(visit, int)
    refused = complete(counter_app, case_id, visit)
    assert refused.field == "visit" and "check each mover's card" in refused.message
    assert isinstance(check_card(counter_app, city, case_id, city["cards"]["head"]), int)
    assert complete(counter_app, case_id, visit) is None


def test_a_card_of_a_mover_under_fifteen_proves_no_presence_but_a_parent_brings_it(counter_app, city):
    child, card = _child(counter_app, city, 10)
    case_id = approved_case(counter_app, city["cards"]["head"], in_city_application(counter_app, [child]))
    refused = check_card(counter_app, city, case_id, card)
    assert refused.code == "under_fifteen" and "under 15" in refused.message
    assert complete(counter_app, case_id, None).field == "visit"
    # The parent who filed checks their own card, having brought the child's: the move completes.
    parent = check_card(counter_app, city, case_id, city["cards"]["head"])
    assert complete(counter_app, case_id, parent) is None


def test_a_challenge_works_once_and_a_token_for_another_origin_or_a_wrong_pin_fails(counter_app, city):
    from bridge.peers.jlis.virtualcard import WrongPin

    case_id = approved_case(counter_app, city["cards"]["head"], in_city_application(counter_app, [HEAD]))
    card = city["cards"]["head"]
    with counter_app.test_request_context("/"):
        from backoffice.services import counter

        nonce = counter.nonces().issue().nonce
        token = build_auth_token(card, PIN, origin=counter.trust().origin, nonce=nonce)
        other_nonce = counter.nonces().issue().nonce
        foreign = build_auth_token(card, PIN, origin="https://phishing.example", nonce=other_nonce)
    assert isinstance(check_card(counter_app, city, case_id, card, nonce=nonce, token=token), int)
    replay = check_card(counter_app, city, case_id, card, nonce=nonce, token=token)
    assert replay.code == "NONCE_NOT_FOUND"
    assert check_card(counter_app, city, case_id, card, nonce=other_nonce, token=foreign).code == "SIGNATURE_INVALID"
    with pytest.raises(WrongPin):
        check_card(counter_app, city, case_id, card, pin="9999")


def test_a_card_signature_made_for_a_portal_sign_in_is_not_proof_of_a_visit_to_the_counter(counter_app, city):
    """A page on the portal's origin (or a compromised portal) passes the counter's challenge to the card as a sign-in.

    The card then signs SHA-256(portal origin) with the counter's nonce; the counter must refuse it,
    because the resident never stood at the counter.
    """
    case_id = approved_case(counter_app, city["cards"]["head"], in_city_application(counter_app, [HEAD]))
    card = city["cards"]["head"]
    with counter_app.test_request_context("/"):
        from backoffice.services import counter

        nonce = counter.nonces().issue().nonce
    portal_sign_in = build_auth_token(card, PIN, origin=counter_app.config["SITE_ORIGIN"], nonce=nonce)
    refused = check_card(counter_app, city, case_id, card, nonce=nonce, token=portal_sign_in)
    assert not isinstance(refused, int), "a portal sign-in was accepted as the resident's visit to the counter"
    assert refused.code == "SIGNATURE_INVALID"
    assert counter_app.config["COUNTER_ORIGIN"] != counter_app.config["SITE_ORIGIN"]


def test_a_revoked_card_is_refused_at_the_counter(counter_app, city):
    from backoffice.extensions import db
    from backoffice.services import cards

    case_id = approved_case(counter_app, city["cards"]["head"], in_city_application(counter_app, [HEAD]))
    with counter_app.test_request_context("/"):
        card = db.session.execute(select(CardRecord).where(CardRecord.resident_id == city["head"])).scalar_one()
        cards.revoke_certificate(db.session, serial=card.auth_cert_serial, reason="keyCompromise", by="admin")
        db.session.commit()
    refused = check_card(counter_app, city, case_id, city["cards"]["head"])
    assert (refused.code, refused.hint) == ("CERT_REVOKED", "certificate_revoked")
    assert complete(counter_app, case_id, None).field == "visit"


# -- completion needs the check (R9) ---------------------------------------------------------------------


def test_completion_without_a_recent_card_check_of_this_case_is_refused_and_nothing_changes(counter_app, city, clock):
    app = counter_app
    case_id = approved_case(app, city["cards"]["head"], in_city_application(app, [HEAD, WIFE]))
    other_case = approved_case(app, city["cards"]["wife"], in_city_application(app, [WIFE]))
    before = ledger_state(app)
    assert complete(app, case_id, None).field == "visit"
    # A check made for another case does not count.
    other_visit = check_card(app, city, other_case, city["cards"]["wife"])
    assert complete(app, case_id, other_visit).field == "visit"
    # A check older than the window does not count either.
    visit = check_card(app, city, case_id, city["cards"]["head"])
    clock.advance(minutes=31)
    error = complete(app, case_id, visit)
    assert error.field == "visit" and "too old" in error.message
    assert ledger_state(app)[0] == before[0] and ledger_state(app)[2] == before[2]
    from backoffice.extensions import db
    from backoffice.services import counter

    with app.test_request_context("/"):
        case = db.session.get(Case, case_id)
        assert counter.current_visit(db.session, case, terminal_id=city["terminal"]) is None
        clock.advance(minutes=-2)
        # Within the window, only on the terminal where the card was checked.
        assert counter.current_visit(db.session, case, terminal_id=city["terminal"]).id == visit
        assert counter.current_visit(db.session, case, terminal_id=city["other_terminal"]) is None


# -- 転居 (R10) ---------------------------------------------------------------------------------------------


def test_an_in_city_move_changes_the_address_only_and_records_history_prefecture_and_jlis(counter_app, city):
    from backoffice.extensions import db
    from backoffice.services import records

    app = counter_app
    case_id = approved_case(app, city["cards"]["head"], in_city_application(app, [HEAD, WIFE]))
    with app.app_context():
        before = {r.id: records.snapshot(r) for r in db.session.execute(select(Resident)).scalars()}
    visit = check_card(app, city, case_id, city["cards"]["head"])
    assert complete(app, case_id, visit) is None

    target = new_address(app)
    today = clock.today_jst().isoformat()
    with app.app_context():
        for resident_id in (city["head"], city["wife"]):
            resident = db.session.get(Resident, resident_id)
            after = records.snapshot(resident)
            changed = {k for k in after if after[k] != before[resident_id][k]}
            assert changed == {"machiaza_code", "banchi", "katagaki", "previous_address", "address_set_reason",
                               "address_set_on"} - ({"address_set_on"} if before[resident_id]["address_set_on"]
                                                    == today else set())
            assert (resident.machiaza_code, resident.banchi, resident.katagaki) == (
                target["machiazaCode"], target["banchi"], target["katagaki"])
            assert resident.address_set_reason is resident.last_reason is IdoReason.MOVE_WITHIN
            assert resident.previous_address.endswith(city["old_banchi"]) and "花巻市" in resident.previous_address
            assert resident.household_id == db.session.get(Resident, city["head"]).household_id
            [history] = db.session.execute(select(ResidentHistory).where(
                ResidentHistory.resident_id == resident_id)).scalars()
            assert history.reason is IdoReason.MOVE_WITHIN and json.loads(history.before) == before[resident_id]
        # Nobody else changed.
        assert records.snapshot(db.session.get(Resident, city["neighbour"])) == before[city["neighbour"]]
        # The prefecture gets the new 本人確認情報 of each mover, recorded with its legal basis.
        provisions = db.session.execute(select(ProvisionRecord).order_by(ProvisionRecord.id)).scalars().all()
        assert [(p.recipient_id, p.message_type, p.resident_id) for p in provisions] == [
            ("prefecture", "identity.update", city["head"]), ("prefecture", "identity.update", city["wife"]),
            ("jlis", "card.revocation", city["head"]), ("jlis", "card.revocation", city["wife"])]
        assert "住民基本台帳法第30条の6" in provisions[0].legal_basis
        assert json.loads(provisions[0].items_sent) == ["juminhyo_code", "name", "birth_date", "sex", "address",
                                                         "my_number", "change_reason", "change_date"]
        # The case is completed and the resident is told.
        case = db.session.get(Case, case_id)
        assert case.status is CaseStatus.COMPLETED
        statuses = db.session.execute(select(Outbox.message_type).where(Outbox.recipient == "portal")).scalars()
        assert list(statuses).count("application.status") == 2  # received at intake, completed now
    # J-LIS: the signature certificates carry the old address, so both are revoked (the revocations went
    # out with the change); the cards still sign in.
    assert sign_serial_revoked(app, city["head"]) is None
    assert len(deliver_card_revocations(app)) == 2
    assert sign_serial_revoked(app, city["head"]).value == "affiliationChanged"
    assert sign_serial_revoked(app, city["wife"]).value == "affiliationChanged"
    assert sign_serial_revoked(app, city["neighbour"]) is None
    # The same case cannot be completed twice.
    assert complete(app, case_id, visit).field == "case"


def test_an_in_city_move_that_would_change_the_name_is_refused_naming_it_and_nothing_changes(counter_app, city):
    from backoffice.extensions import db
    from backoffice.services import completion

    app = counter_app
    renamed = ("宮沢　賢", "ミヤザワ　ケン", "1990-08-27", "本人")
    case_id = approved_case(app, city["cards"]["head"], in_city_application(app, [renamed, WIFE]))
    # The ledger says otherwise by the time the resident comes: the application would change the name.
    with app.test_request_context("/"):
        from backoffice.services import records

        records.amend_record(db.session, db.session.get(Resident, city["head"]), reason=IdoReason.CORRECTION,
                             changed_on=clock.today_jst(), notified_on=None, by="clerk0", name="宮澤　賢")
        db.session.commit()
    visit = check_card(app, city, case_id, city["cards"]["head"])
    before = ledger_state(app)
    error = complete(app, case_id, visit)
    assert error.field == "movers[0].name" and "氏名" in error.message
    assert ledger_state(app) == before
    assert sign_serial_revoked(app, city["head"]) is None
    # The rule holds in the service whatever builds the update: a birth date or sex change is refused too.
    for item in ("birth_date", "sex", "name_kana", "my_number"):
        with pytest.raises(completion.CounterError) as refused:
            completion.check_in_city_update(1, {"banchi": "1番地", item: "x"})
        assert refused.value.field == f"movers[1].{item}"


def test_an_in_city_move_with_a_mover_who_is_no_longer_resident_is_refused_and_nothing_changes(counter_app, city):
    from backoffice.extensions import db
    from backoffice.services import records

    app = counter_app
    case_id = approved_case(app, city["cards"]["head"], in_city_application(app, [HEAD, WIFE]))
    with app.test_request_context("/"):
        records.remove_record(db.session, db.session.get(Resident, city["wife"]), reason=IdoReason.MOVE_OUT,
                              changed_on=clock.today_jst(), notified_on=None, by="clerk0")
        db.session.commit()
    visit = check_card(app, city, case_id, city["cards"]["head"])
    before = ledger_state(app)
    error = complete(app, case_id, visit)
    assert error.field == "movers[1]" and "not a current resident" in error.message
    assert ledger_state(app) == before


def test_a_part_of_the_household_moving_under_a_new_householder_gets_a_new_household(counter_app, city):
    from backoffice.extensions import db

    app = counter_app
    case_id = approved_case(app, city["cards"]["wife"], in_city_application(app, [WIFE]))
    visit = check_card(app, city, case_id, city["cards"]["wife"])
    assert complete(app, case_id, visit) is None
    with app.app_context():
        head, wife = db.session.get(Resident, city["head"]), db.session.get(Resident, city["wife"])
        assert wife.household_id != head.household_id and wife.is_householder
        assert wife.relationship_to_head == "世帯主" and wife.household.householder_name == "宮沢　トシ"
        assert (head.banchi, head.household.householder_name) == (city["old_banchi"], "宮沢　賢")
        # One form of 世帯番号 in the ledger, whichever procedure made the household (14 digits, as a 転入's).
        assert re.fullmatch(r"\d{14}", wife.household.household_number), wife.household.household_number


def test_a_move_date_still_ahead_is_refused(counter_app, city):
    app = counter_app
    ahead = (clock.today_jst() + dt.timedelta(days=3)).isoformat()
    case_id = approved_case(app, city["cards"]["head"], in_city_application(app, [HEAD, WIFE], moveDate=ahead,
                                                                               visitDate=ahead))
    visit = check_card(app, city, case_id, city["cards"]["head"])
    assert complete(app, case_id, visit).field == "moved_on"


# -- the pages on the counter terminal -------------------------------------------------------------------


def _completion(client, case_id, moved_on=None):
    """The completion form as the clerk sends it: the CSRF token and the day the resident states they moved."""
    from tests.conftest import csrf_from

    return {"csrf_token": csrf_from(client, f"/counter/{case_id}"),
            "moved_on": (moved_on or clock.today_jst()).isoformat()}


def _post_json(client, url, page_url, body=None):
    from tests.conftest import csrf_from

    token = csrf_from(client, page_url)
    return client.post(url, json=body or {}, headers={"X-CSRFToken": token})


def _card_check_by_page(app, client, case_id, card):
    from backoffice.services import counter

    page = f"/counter/{case_id}"
    challenge = _post_json(client, f"{page}/challenge", page)
    assert challenge.status_code == 200
    with app.test_request_context("/"):
        origin = counter.trust().origin
    token = build_auth_token(card, PIN, origin=origin, nonce=challenge.json["nonce"])
    return _post_json(client, f"{page}/card", page, {"authToken": token})


def test_the_clerk_checks_the_card_and_completes_the_move_on_the_counter_pages(counter_app, city, backoffice):
    from bs4 import BeautifulSoup


    app = counter_app
    case_id = approved_case(app, city["cards"]["head"], in_city_application(app, [HEAD, WIFE]))
    client = backoffice.client_for("clerk2", "clerk", terminal="counter-web")
    listing = client.get("/counter/")
    assert f'href="/counter/{case_id}"' in listing.text and "転居" in listing.text
    page = client.get(f"/counter/{case_id}")
    soup = BeautifulSoup(page.text, "html.parser")
    form = soup.select_one("#card-form")
    assert form["data-remember-card"] == "no" and form["data-challenge-url"] == f"/counter/{case_id}/challenge"
    assert "宮沢　トシ" in soup.select_one("#movers").text and "未確認" in soup.select_one("#visit").text
    town = load_machiaza(app.config["MUNICIPALITY_CODE"])[1].name
    assert soup.select_one("#new-address").text == town + "7番地3　桜荘101"

    # Without the card check the completion is refused, and the page says why in Japanese.
    refused = client.post(f"/counter/{case_id}/complete", data=_completion(client, case_id),
                          follow_redirects=True)
    assert "直近30分以内に住民の方のカードを確認していません" in refused.text and "完了しました" not in refused.text

    # A card of someone outside the case: refused with a message the clerk can act on.
    wrong = _card_check_by_page(app, client, case_id, city["cards"]["neighbour"])
    assert wrong.status_code == 403 and "申請者でも異動者でもありません" in wrong.json["message"]

    right = _card_check_by_page(app, client, case_id, city["cards"]["head"])
    assert right.status_code == 200 and right.json["redirect"] == f"/counter/{case_id}"
    checked = BeautifulSoup(client.get(f"/counter/{case_id}").text, "html.parser")
    assert "確認しました" in checked.select_one("#visit").text

    done = client.post(f"/counter/{case_id}/complete", data=_completion(client, case_id),
                       follow_redirects=True)
    assert "転居が完了しました" in done.text
    from backoffice.extensions import db

    with app.app_context():
        assert db.session.get(Case, case_id).status is CaseStatus.COMPLETED
        assert db.session.get(Resident, city["head"]).banchi == new_address(app)["banchi"]
        actions = db.session.execute(select(AuditLog.action, AuditLog.outcome).where(
            AuditLog.action.in_(("counter.view", "counter.visit", "counter.complete")))).all()
        assert ("counter.visit", "denied") in actions and ("counter.visit", "success") in actions
        assert ("counter.complete", "denied") in actions and ("counter.view", "success") in actions


def test_a_ledger_rule_refusing_the_completion_is_shown_to_the_clerk_and_nothing_changes(
        counter_app, city, backoffice, monkeypatch):
    """A record the ledger's own checks refuse (e.g. a bad check digit sent by the other city) is no server error."""
    from backoffice.services import counter as counter_service

    app = counter_app
    case_id = approved_case(app, city["cards"]["head"], in_city_application(app, [HEAD, WIFE]))
    client = backoffice.client_for("clerk2", "clerk", terminal="counter-web")
    assert _card_check_by_page(app, client, case_id, city["cards"]["head"]).status_code == 200

    def refuse(session, case, *, by, visit, **_choices):
        raise RecordError("my_number", "個人番号の検査数字が正しくありません。 / The My Number's check digit is wrong.")

    monkeypatch.setattr(counter_service, "complete_in_city_move", refuse)
    refused = client.post(f"/counter/{case_id}/complete", data=_completion(client, case_id),
                          follow_redirects=True)
    assert refused.status_code == 200 and "個人番号: 個人番号の検査数字が正しくありません" in refused.text
    from backoffice.extensions import db

    with app.app_context():
        assert db.session.get(Case, case_id).status is CaseStatus.APPROVED
        outcomes = db.session.execute(select(AuditLog.outcome).where(AuditLog.action == "counter.complete")).scalars()
        assert list(outcomes) == ["denied"]


def test_a_card_check_made_on_another_terminal_does_not_let_this_one_complete(counter_app, city, backoffice):
    app = counter_app
    case_id = approved_case(app, city["cards"]["head"], in_city_application(app, [HEAD]))
    first = backoffice.client_for("clerk2", "clerk", terminal="counter-a")
    assert _card_check_by_page(app, first, case_id, city["cards"]["head"]).status_code == 200
    second = backoffice.client_for("clerk3", "clerk", terminal="counter-b")

    second.post(f"/counter/{case_id}/complete", data=_completion(second, case_id))
    from backoffice.extensions import db

    with app.app_context():
        assert db.session.get(Case, case_id).status is CaseStatus.APPROVED


def test_a_challenge_from_one_case_page_does_not_check_a_card_for_another_case(counter_app, city, backoffice):
    from backoffice.services import counter

    app = counter_app
    first = approved_case(app, city["cards"]["head"], in_city_application(app, [HEAD]))
    second = approved_case(app, city["cards"]["wife"], in_city_application(app, [WIFE]))
    client = backoffice.client_for("clerk2", "clerk")
    challenge = _post_json(client, f"/counter/{first}/challenge", f"/counter/{first}")
    with app.test_request_context("/"):
        origin = counter.trust().origin
    token = build_auth_token(city["cards"]["wife"], PIN, origin=origin, nonce=challenge.json["nonce"])
    refused = _post_json(client, f"/counter/{second}/card", f"/counter/{second}", {"authToken": token})
    assert refused.status_code == 403


def test_only_clerks_on_a_registered_terminal_reach_the_counter(counter_app, city, backoffice):
    app = counter_app
    case_id = approved_case(app, city["cards"]["head"], in_city_application(app, [HEAD]))
    approver = backoffice.client_for("approver1", "approver")
    assert approver.get(f"/counter/{case_id}").status_code == 403
    assert app.test_client().get(f"/counter/{case_id}").status_code == 403  # no registered terminal


def test_two_clerks_completing_the_same_move_at_once_change_the_ledger_once(counter_app, city):
    import threading

    from backoffice.extensions import db

    app = counter_app
    case_id = approved_case(app, city["cards"]["head"], in_city_application(app, [HEAD, WIFE]))
    visit = check_card(app, city, case_id, city["cards"]["head"])
    outcomes = []
    threads = [threading.Thread(target=lambda: outcomes.append(complete(app, case_id, visit))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(outcomes) == 2 and outcomes.count(None) == 1
    [refused] = [o for o in outcomes if o is not None]
    assert refused.field == "case"
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(ResidentHistory)).scalar_one() == 2
        # Once each: the prefecture's identity.update and J-LIS's card.revocation of both movers.
        assert sorted(db.session.execute(select(ProvisionRecord.message_type)).scalars()) == [
            "card.revocation", "card.revocation", "identity.update", "identity.update"]
        completions = db.session.execute(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "case.complete")).scalar_one()
        assert completions == 1


def test_a_revoked_card_is_named_as_revoked_on_the_counter_page(counter_app, city, backoffice):
    from backoffice.extensions import db
    from backoffice.services import cards

    app = counter_app
    case_id = approved_case(app, city["cards"]["head"], in_city_application(app, [HEAD]))
    with app.test_request_context("/"):
        card = db.session.execute(select(CardRecord).where(CardRecord.resident_id == city["head"])).scalar_one()
        cards.revoke_certificate(db.session, serial=card.auth_cert_serial, reason="keyCompromise", by="admin")
        db.session.commit()
    client = backoffice.client_for("clerk2", "clerk")
    refused = _card_check_by_page(app, client, case_id, city["cards"]["head"])
    assert refused.status_code == 403 and "失効" in refused.json["message"]


def test_a_card_check_without_the_csrf_token_is_refused_before_anything_is_stored(counter_app, city, backoffice):
    from backoffice.extensions import db
    from backoffice.services import counter

    app = counter_app
    case_id = approved_case(app, city["cards"]["head"], in_city_application(app, [HEAD]))
    client = backoffice.client_for("clerk2", "clerk")
    page = f"/counter/{case_id}"
    nonce = _post_json(client, f"{page}/challenge", page).json["nonce"]
    with app.test_request_context("/"):
        token = build_auth_token(city["cards"]["head"], PIN, origin=counter.trust().origin, nonce=nonce)
    assert client.post(f"{page}/card", json={"authToken": token}).status_code == 400
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(CounterVisit)).scalar_one() == 0
    with app.test_request_context("/"):
        assert counter.nonces().take(nonce) is not None  # the forged post did not spend the challenge


# -- the householder moving away from members who stay (世帯主変更) ----------------------------------------


def years_before(day, years):
    """The same day ``years`` earlier (28 February for a 29th that year lacks)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def add_son(app, city, *, born=dt.date(2006, 4, 1)):
    """A third member of the household (18 or over by default), who stays when the householder moves."""
    from backoffice.extensions import db

    with app.app_context():
        head = db.session.get(Resident, city["head"])
        son = make_resident(db.session, app.config, household=head.household, name="宮沢　清六",
                            name_kana="ミヤザワ　セイロク", birth_date=born, relationship_to_head="子",
                            is_householder=False, machiaza_code=head.machiaza_code, banchi=head.banchi)
        db.session.commit()
        return son.id


def test_a_householder_moving_away_from_one_member_leaves_that_member_householder(counter_app, city):
    from backoffice.extensions import db

    app = counter_app
    case_id = approved_case(app, city["cards"]["head"], in_city_application(app, [HEAD]))
    assert complete(app, case_id, check_card(app, city, case_id, city["cards"]["head"])) is None
    with app.app_context():
        head, wife = db.session.get(Resident, city["head"]), db.session.get(Resident, city["wife"])
        assert head.household_id != wife.household_id and head.is_householder
        assert (wife.is_householder, wife.relationship_to_head) == (True, "世帯主")
        assert wife.household.householder_name == "宮沢　トシ"
        change = db.session.execute(select(ResidentHistory).where(
            ResidentHistory.resident_id == wife.id)).scalars().all()[-1]
        assert change.reason is IdoReason.HOUSEHOLDER_CHANGE and change.changed_on == clock.today_jst()
        # Each household has exactly one householder afterwards.
        for household_id in (head.household_id, wife.household_id):
            heads = db.session.execute(select(func.count()).select_from(Resident).where(
                Resident.household_id == household_id, Resident.is_householder.is_(True))).scalar_one()
            assert heads == 1


def test_a_householder_moving_away_from_two_adults_needs_their_choice_and_changes_nothing_without_it(
        counter_app, city):
    from backoffice.extensions import db

    app = counter_app
    son = add_son(app, city)
    case_id = approved_case(app, city["cards"]["head"], in_city_application(app, [HEAD]))
    visit = check_card(app, city, case_id, city["cards"]["head"])
    before = ledger_state(app)
    refused = complete(app, case_id, visit)
    assert isinstance(refused, RecordError) and refused.field == "remainingHouseholder"
    with app.app_context():  # the refusal reads in Japanese unless a page asks for English
        assert "世帯主変更届" in refused.message and "2人" in refused.message
    # Someone who does not stay in the household cannot be chosen either.
    wrong = complete(app, case_id, visit, remaining_householder=city["neighbour"])
    assert isinstance(wrong, RecordError) and wrong.field == "remainingHouseholder"
    # The 続柄 of each member who stays is stated to the new householder; an empty one is refused.
    empty = complete(app, case_id, visit, remaining_householder=son, relationships={city["wife"]: "　"})
    assert isinstance(empty, RecordError) and empty.field == "relationship"
    with app.app_context():
        assert "続柄" in empty.message
    assert ledger_state(app) == before

    assert complete(app, case_id, visit, remaining_householder=son, relationships={city["wife"]: "母"}) is None
    with app.app_context():
        wife, son_record = db.session.get(Resident, city["wife"]), db.session.get(Resident, son)
        assert (son_record.is_householder, son_record.relationship_to_head) == (True, "世帯主")
        assert not wife.is_householder and son_record.household.householder_name == "宮沢　清六"
        assert wife.relationship_to_head == "母"
        changed = db.session.execute(select(ResidentHistory).where(ResidentHistory.resident_id == wife.id)
                                     .order_by(ResidentHistory.id)).scalars().all()[-1]
        assert changed.reason is IdoReason.HOUSEHOLDER_CHANGE
        assert (json.loads(changed.before)["relationship_to_head"], json.loads(changed.after)["relationship_to_head"]) \
            == ("妻", "母")
        assert db.session.get(Case, case_id).status is CaseStatus.COMPLETED


def test_a_child_under_15_staying_does_not_count_as_a_possible_householder(counter_app, city):
    from backoffice.extensions import db

    app = counter_app
    add_son(app, city, born=years_before(clock.today_jst(), 10))
    case_id = approved_case(app, city["cards"]["head"], in_city_application(app, [HEAD]))
    assert complete(app, case_id, check_card(app, city, case_id, city["cards"]["head"])) is None
    with app.app_context():
        assert db.session.get(Resident, city["wife"]).is_householder


def test_the_counter_page_asks_for_the_remaining_householder_and_completes_with_the_choice(
        counter_app, city, backoffice):
    from bs4 import BeautifulSoup

    from backoffice.extensions import db

    app = counter_app
    son = add_son(app, city)
    case_id = approved_case(app, city["cards"]["head"], in_city_application(app, [HEAD]))
    client = backoffice.client_for("clerk2", "clerk", terminal="counter-web")
    assert _card_check_by_page(app, client, case_id, city["cards"]["head"]).status_code == 200
    page = BeautifulSoup(client.get(f"/counter/{case_id}").text, "html.parser")
    options = {o["value"]: o.text for o in page.select("#remaining_householder option") if o["value"]}
    assert set(options) == {str(city["wife"]), str(son)}
    assert "世帯主変更届" in page.select_one("#householder-succession").text
    stated = {i["name"]: i["value"] for i in page.select("#remaining-relationships input")}
    assert stated == {f"relationship_{city['wife']}": "妻", f"relationship_{son}": "子"}  # as recorded, to change

    refused = client.post(f"/counter/{case_id}/complete", data=_completion(client, case_id),
                          follow_redirects=True)
    assert "残る世帯の世帯主" in refused.text and "完了しました" not in refused.text
    done = client.post(f"/counter/{case_id}/complete", follow_redirects=True, data={
        **_completion(client, case_id), "remaining_householder": str(city["wife"]),
        **stated})  # what the browser sends: the 続柄 as shown
    assert "転居が完了しました" in done.text
    with app.app_context():
        assert db.session.get(Resident, city["wife"]).is_householder
        assert not db.session.get(Resident, son).is_householder


def test_who_can_head_the_household_is_judged_on_the_day_of_the_move_on_the_page_as_in_the_ledger(
        counter_app, city, backoffice):
    """A son who turned 15 after the move is not asked about: on the day of the move his mother was the only one."""
    from bs4 import BeautifulSoup

    from backoffice.extensions import db

    app = counter_app
    today = clock.today_jst()
    moved_on = today - dt.timedelta(days=3)
    son = add_son(app, city, born=years_before(today - dt.timedelta(days=1), 15))  # 15 since yesterday
    case_id = approved_case(app, city["cards"]["head"], in_city_application(app, [HEAD], moveDate=moved_on.isoformat()))
    client = backoffice.client_for("clerk2", "clerk", terminal="counter-web")
    assert _card_check_by_page(app, client, case_id, city["cards"]["head"]).status_code == 200
    page = BeautifulSoup(client.get(f"/counter/{case_id}").text, "html.parser")
    assert page.select_one("#remaining_householder") is None and "宮沢　トシ" in page.select_one(
        "#householder-succession").text
    done = client.post(f"/counter/{case_id}/complete", follow_redirects=True, data={
        **_completion(client, case_id, moved_on),
        **{i["name"]: i["value"] for i in page.select("#remaining-relationships input")}})
    assert "転居が完了しました" in done.text
    with app.app_context():
        assert db.session.get(Resident, city["wife"]).is_householder
        assert not db.session.get(Resident, son).is_householder
