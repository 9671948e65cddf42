"""Moves between two cities (F5, F8, F9, F12, R4, R10): 転出届 approval, 転出証明書情報, 転入, 転入通知, 転出確定.

Two back offices of this code on two real PostgreSQL databases (Hanamaki 032051, Kitakami 032069);
the messages between them are the sealed outbox rows, opened with the recipient's keys exactly as
the bridge's delivery does. The processes and queues are proved in tests/e2e/test_two_cities.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyotp
import pytest
from cryptography import x509
from sqlalchemy import func, select

from backoffice.models import (
    Case,
    CaseStatus,
    IdoReason,
    MoveoutCertificate,
    Outbox,
    ProvisionRecord,
    RecordStatus,
    Resident,
    ResidentHistory,
    Staff,
)
from bridge.peers import departments, prefecture, standin
from core import clock as clock_module
from core.envelope import KeyRegistry, Opened, import_public_key, open_envelope
from core.i18n import wareki
from tests.backoffice.case_fixtures import receipt_number, sign_part
from tests.conftest import SECRETS, _clean, create_pg_database, drop_pg_database, migrate
from tests.factories import make_household, make_resident, my_number
from tests.pki_fixtures import deliver_card_revocations

HANAMAKI, KITAKAMI = "032051", "032069"
PASSWORD = "ABC123"
HEAD_NUMBER, WIFE_NUMBER = my_number(515151), my_number(525252)
PARTIES = ("portal", f"muni:{HANAMAKI}", f"muni:{KITAKAMI}", prefecture.PARTY, *departments.PARTIES, standin.PARTY,
           "peer:jlis")


@pytest.fixture(scope="module")
def move_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keys of the portal, both cities and every peer, each registered with the others."""
    directory = tmp_path_factory.mktemp("move-keys")
    for party in PARTIES:
        registry = KeyRegistry.from_config({"BRIDGE_KEY_DIRECTORY": str(directory)}, party=party)
        import_public_key(directory, party, registry.public_pem())
    return directory


@pytest.fixture(scope="module")
def kitakami_db_url() -> Iterator[str]:
    """A second back-office database, for Kitakami, built by the migrations."""
    from backoffice import create_app

    url = create_pg_database("kitakami_test")
    migrate(create_app, {"APP_ENV": "test", "BACKOFFICE_DATABASE_URL": url, "MUNICIPALITY_CODE": KITAKAMI, **SECRETS})
    yield url
    drop_pg_database(url)


def _city(code: str, url: str, jlis_config: dict[str, str], keys: Path, tmp_path: Path, session_dir: Path) -> Any:
    from backoffice import create_app
    from backoffice.models import Base

    app = create_app({**jlis_config, **SECRETS, "MUNICIPALITY_CODE": code, "BACKOFFICE_DATABASE_URL": url,
                      "BRIDGE_KEY_DIRECTORY": str(keys), "CARD_FILE_ITERATIONS": 1000,
                      "AUDIT_CHECKPOINT_PATH": str(tmp_path / f"checkpoints-{code}.jsonl"),
                      "AUDIT_CHECKPOINT_KEY_PATH": str(session_dir / "checkpoint-key.pem")})
    _clean(app.extensions["engine"], Base.metadata)
    return app


@pytest.fixture
def hanamaki(backoffice_db_url, jlis_config, move_keys, tmp_path, session_dir) -> Iterator[Any]:
    """The Hanamaki back office (the origin) on a clean database."""
    app = _city(HANAMAKI, backoffice_db_url, jlis_config, move_keys, tmp_path, session_dir)
    yield app
    app.extensions["engine"].dispose()


@pytest.fixture
def kitakami(kitakami_db_url, jlis_config, move_keys, tmp_path, session_dir) -> Iterator[Any]:
    """The Kitakami back office (the destination) on a clean database of its own."""
    app = _city(KITAKAMI, kitakami_db_url, jlis_config, move_keys, tmp_path, session_dir)
    yield app
    app.extensions["engine"].dispose()


_SIGNED_MOVES: dict[tuple[str, str, str], str] = {}


def _signed_move(card: Path, config: Any, application: dict[str, Any], move_id: str) -> str:
    """The one JWS a resident signs for a move to another city: its 転出届 and its 転入予約, as the portal sends
    them (signed once per card, move and application, then sent to both cities)."""
    from bridge.peers.jlis.cardclient import build_signed_application

    key = (str(card), move_id, json.dumps(application, sort_keys=True, ensure_ascii=False))
    if key not in _SIGNED_MOVES:
        claims = {"moveId": move_id, "parts": [
            {"kind": "move_out", "municipalityCode": application["fromMunicipalityCode"]},
            {"kind": "move_in_reservation", "municipalityCode": application["destination"]["municipalityCode"]}]}
        _SIGNED_MOVES[key] = build_signed_application(card, PASSWORD, aud=config["SITE_ORIGIN"], nonce="n" * 44,
                                                      application=application, claims=claims)
    return _SIGNED_MOVES[key]


class City:
    """One back office in a test: staff, cases through intake, the workflow, and its sent messages."""

    def __init__(self, app: Any, clock: Any, keys: Path) -> None:
        self.app, self.clock, self.keys = app, clock, keys
        self.secrets: dict[str, str] = {}
        self.ids: dict[str, int] = {}
        from backoffice.extensions import db
        from backoffice.services import staff as staff_service

        with app.app_context():
            for login, roles in (("clerk_a", ["clerk"]), ("approver_b", ["approver"])):
                staff, secret = staff_service.add_staff(db.session, login_id=login, name=f"職員 {login}",
                                                        password="correct horse battery", roles=roles)
                db.session.commit()
                self.secrets[login], self.ids[login] = secret, staff.id

    @property
    def party(self) -> str:
        return str(self.app.config["BRIDGE_PARTY"])

    def staff(self, session: Any, login: str) -> Staff:
        return session.get(Staff, self.ids[login])

    def deliver(self, card: Path, kind: str, application: dict[str, Any], *, move_id: str | None) -> int:
        """A signed application arriving from the portal; returns the case id."""
        from backoffice.extensions import db
        from backoffice.services.intake import receive_application

        here = self.party.split(":", 1)[1]
        if move_id is not None and kind in ("move_out", "move_in_reservation"):
            jws = _signed_move(card, self.app.config, application, move_id)
        else:
            jws, _ = sign_part(card, self.app.config, kind, application, move_id=move_id, here=here)
        opened = Opened(message_id=str(uuid.uuid4()), message_type="application.submitted", sender="portal",
                        recipient=self.party, created_at=clock_module.utcnow(),
                        payload={"receiptNumber": receipt_number(), "kind": kind, "moveId": move_id,
                                 "submittedAt": clock_module.utcnow().isoformat(), "signedApplication": jws})
        with self.app.test_request_context("/"):
            case = receive_application(db.session, opened)
            db.session.commit()
            return int(case.id)

    def confirm_and_approve(self, case_id: int) -> None:
        """Clerk A confirms, approver B approves with a fresh one-time code (each committed)."""
        from backoffice.extensions import db
        from backoffice.services import cases

        with self.app.test_request_context("/"):
            cases.confirm(db.session, case_id, by=self.staff(db.session, "clerk_a"))
            db.session.commit()
        self.clock.advance(seconds=30)
        with self.app.test_request_context("/"):
            code = pyotp.TOTP(self.secrets["approver_b"]).at(self.clock.now)
            cases.approve(db.session, case_id, by=self.staff(db.session, "approver_b"), totp_code=code)
            db.session.commit()

    def sent(self, message_type: str) -> list[Opened]:
        """Every message of ``message_type`` in the outbox, opened with its recipient's keys."""
        from backoffice.extensions import db

        with self.app.app_context():
            rows = db.session.execute(select(Outbox).where(Outbox.message_type == message_type)
                                      .order_by(Outbox.created_at, Outbox.id)).scalars().all()
            opened = []
            for row in rows:
                keys = KeyRegistry.from_config({"BRIDGE_KEY_DIRECTORY": str(self.keys)}, party=row.recipient)
                opened.append(open_envelope(row.envelope, me=row.recipient, keys=keys, accepted_types={message_type},
                                            max_age=dt.timedelta(days=1), now=clock_module.utcnow()))
            # The test clock stands still, so order by what the message is about.
            return sorted(opened, key=lambda m: (m.recipient, str(m.payload["items"].get("name"))))

    def receive(self, message: Opened) -> Any:
        """Apply a message from another back office with this city's registered handler."""
        from backoffice.extensions import db
        from bridge.handlers import registration_for

        with self.app.app_context():
            result = registration_for(message.message_type).handler(db.session, message)
            db.session.commit()
            return result

    def provisions(self) -> list[tuple[str, str, list[str]]]:
        from backoffice.extensions import db

        with self.app.app_context():
            rows = db.session.execute(select(ProvisionRecord).order_by(ProvisionRecord.id)).scalars().all()
            return [(r.recipient_id, r.message_type, json.loads(r.items_sent)) for r in rows]


def _serial(card: Path, slot: str = "sign") -> int:
    der = base64.b64decode(json.loads(card.read_text())[slot]["cert"])
    return x509.load_der_x509_certificate(der).serial_number


def _move(movers: list[tuple[str, str]], **changes: Any) -> dict[str, Any]:
    today = clock_module.today_jst()
    data = {"type": "move", "fromMunicipalityCode": HANAMAKI,
            "moveDate": (today + dt.timedelta(days=5)).isoformat(),
            "destination": {"kind": "elsewhere", "municipalityCode": KITAKAMI, "postalCode": "0240061",
                            "prefecture": "岩手県", "municipality": "北上市", "address": "大通り1-3-1"},
            "movers": [{"name": n, "kana": "ミヤザワ", "birthDate": b, "relationship": r, "keepsCard": True}
                       for n, b, r in [(*m, "本人" if i == 0 else "妻") for i, m in enumerate(movers)]],
            "newHouseholder": movers[0][0], "contactPhone": "0198-24-2111",
            "visitDate": (today + dt.timedelta(days=6)).isoformat()}
    data.update(changes)
    return data


MOVERS = [("宮沢　賢", "1990-08-27"), ("宮沢　トシ", "1992-11-27")]


@pytest.fixture
def family(hanamaki, tmp_path) -> dict[str, Any]:
    """A household of two in Hanamaki; the householder holds a card issued at the Hanamaki counter."""
    from backoffice.extensions import db
    from backoffice.services import cards

    with hanamaki.test_request_context("/"):
        household = make_household(db.session, householder_name="宮沢　賢")
        head = make_resident(db.session, hanamaki.config, household=household, name="宮沢　賢",
                             name_kana="ミヤザワ　ケン", birth_date=dt.date(1990, 8, 27), my_number=HEAD_NUMBER,
                             pension_since=dt.date(2010, 8, 27))
        wife = make_resident(db.session, hanamaki.config, household=household, name="宮沢　トシ",
                             name_kana="ミヤザワ　トシ", birth_date=dt.date(1992, 11, 27), relationship_to_head="妻",
                             is_householder=False, banchi=head.banchi, my_number=WIFE_NUMBER,
                             nhi_since=dt.date(2020, 4, 1))
        _record, card_file = cards.issue_card(db.session, resident_code=head.juminhyo_code, pin="1234",
                                              password=PASSWORD, issued_by="clerk1", iterations=1000)
        db.session.commit()
        ids = {"head": head.id, "wife": wife.id, "head_code": head.juminhyo_code}
    card = tmp_path / "card.json"
    card.write_bytes(card_file)
    return {"card": card, **ids}


def _resident(app: Any, resident_id: int) -> Resident:
    from backoffice.extensions import db

    with app.app_context():
        resident = db.session.get(Resident, resident_id)
        db.session.expunge(resident)
        return resident


def _case(app: Any, case_id: int) -> Case:
    from backoffice.extensions import db

    with app.app_context():
        case = db.session.get(Case, case_id)
        db.session.expunge(case)
        return case


def _complete(app: Any, city: City, case_id: int) -> list[int]:
    from backoffice.extensions import db
    from backoffice.services import completion

    with app.test_request_context("/"):
        case = db.session.get(Case, case_id)
        # The day the resident states at the counter: today (the planned date may still be ahead).
        created = completion.complete_move_in(db.session, case, by=city.staff(db.session, "clerk_a"),
                                              moved_on=clock_module.today_jst())
        db.session.commit()
        return [r.id for r in created]


# -- the origin ------------------------------------------------------------------------------------------


def test_approving_a_move_out_records_the_planned_move_and_sends_what_the_law_names_to_whom_it_names(
        hanamaki, family, clock, move_keys):
    city = City(hanamaki, clock, move_keys)
    move_id = str(uuid.uuid4())
    case_id = city.deliver(family["card"], "move_out", _move(MOVERS), move_id=move_id)
    city.confirm_and_approve(case_id)

    head, wife = _resident(hanamaki, family["head"]), _resident(hanamaki, family["wife"])
    planned = clock_module.today_jst() + dt.timedelta(days=5)
    for person in (head, wife):
        # 消除 as of the planned date: a 除票 with 事由 転出 and the 転出予定地, awaiting the 転出確定.
        assert person.status is RecordStatus.REMOVED and person.removal_reason is IdoReason.MOVE_OUT
        assert person.removed_on == planned and person.confirmed_moveout_address is None
        assert person.planned_moveout_on == planned and person.planned_moveout_address == "岩手県北上市大通り1-3-1"
    from backoffice.extensions import db

    with hanamaki.app_context():
        history = db.session.execute(select(ResidentHistory).where(ResidentHistory.resident_id == head.id)
                                     .order_by(ResidentHistory.id)).scalars().all()
        assert history[-1].reason is IdoReason.MOVE_OUT and json.loads(history[-1].before)["planned_moveout_on"] is None

    certificates = city.sent("moveout.certificate")
    assert [m.recipient for m in certificates] == [f"muni:{KITAKAMI}"] * 2
    first = next(m.payload["items"] for m in certificates if m.payload["items"]["name"] == "宮沢　賢")
    assert first["my_number"] == HEAD_NUMBER and first["move_id"] == move_id and first["name"] == "宮沢　賢"
    assert first["card_serial"] == str(_serial(family["card"])) and first["address"].startswith("岩手県花巻市")
    updates = city.sent("identity.update")
    assert [(m.recipient, m.payload["items"]["change_reason"]) for m in updates] == [(prefecture.PARTY, "転出")] * 2
    sent = city.provisions()
    notices = sorted((r, sorted(items)) for r, t, items in sent if t == "dept.notice.move_out")
    # Tax and pension (20 to 59) for both, NHI for the wife who is insured; no school, LTC or child allowance.
    assert [r for r, _ in notices] == ["dept:nhi", "dept:pension", "dept:pension", "dept:tax", "dept:tax"]
    pension = dict(notices)["dept:pension"]
    assert "my_number" not in pension and "household_number" not in pension  # withheld: not listed for pension
    assert {t for _, t, _ in sent} == {"moveout.certificate", "identity.update", "dept.notice.move_out"}


def test_a_move_out_to_a_city_that_runs_no_back_office_of_this_code_goes_to_the_stand_in(
        hanamaki, family, clock, move_keys):
    city = City(hanamaki, clock, move_keys)
    destination = {"kind": "elsewhere", "municipalityCode": "032018", "postalCode": "0200023", "prefecture": "岩手県",
                   "municipality": "盛岡市", "address": "内丸12-2"}
    case_id = city.deliver(family["card"], "move_out", _move(MOVERS[:1], destination=destination), move_id=None)
    city.confirm_and_approve(case_id)
    [certificate] = city.sent("moveout.certificate")
    assert certificate.recipient == standin.PARTY
    assert "move_id" not in certificate.payload["items"] and "card_serial" not in certificate.payload["items"]


def test_a_move_out_naming_someone_not_in_the_ledger_cannot_be_approved_and_nothing_changes(
        hanamaki, family, clock, move_keys):
    from backoffice.extensions import db
    from backoffice.services import cases

    city = City(hanamaki, clock, move_keys)
    case_id = city.deliver(family["card"], "move_out", _move([MOVERS[0], ("誰か　知らない", "2001-01-01")]),
                           move_id=None)
    with hanamaki.test_request_context("/"):
        cases.confirm(db.session, case_id, by=city.staff(db.session, "clerk_a"))
        db.session.commit()
    clock.advance(seconds=30)
    with hanamaki.test_request_context("/"):
        with pytest.raises(cases.CaseError) as refused:
            cases.approve(db.session, case_id, by=city.staff(db.session, "approver_b"),
                          totp_code=pyotp.TOTP(city.secrets["approver_b"]).at(clock.now))
        db.session.rollback()
    assert refused.value.field == "movers" and "2" in refused.value.message
    assert _case(hanamaki, case_id).status is CaseStatus.CONFIRMED
    assert _resident(hanamaki, family["head"]).planned_moveout_on is None
    assert city.sent("moveout.certificate") == []


# -- both cities -----------------------------------------------------------------------------------------


def _reservation(kitakami_city: City, family: dict[str, Any], move_id: str | None, movers=MOVERS) -> int:
    return kitakami_city.deliver(family["card"], "move_in_reservation", _move(movers), move_id=move_id)


def test_the_whole_move_from_hanamaki_to_kitakami(hanamaki, kitakami, family, clock, move_keys, jlis_config):
    origin, destination = City(hanamaki, clock, move_keys), City(kitakami, clock, move_keys)
    move_id = str(uuid.uuid4())
    out_case = origin.deliver(family["card"], "move_out", _move(MOVERS), move_id=move_id)
    in_case = _reservation(destination, family, move_id)
    assert _case(kitakami, in_case).status is CaseStatus.RECEIVED
    origin.confirm_and_approve(out_case)

    for message in origin.sent("moveout.certificate"):
        destination.receive(message)
    case = _case(kitakami, in_case)
    assert {f["code"] for f in json.loads(case.findings)} == {"moveout_certificate_matched"}
    from backoffice.extensions import db

    with kitakami.app_context():
        stored = db.session.execute(select(MoveoutCertificate)).scalars().all()
        assert [c.case_id for c in stored] == [in_case, in_case]
        assert HEAD_NUMBER.encode() not in stored[0].items_encrypted  # kept encrypted

    destination.confirm_and_approve(in_case)
    assert _case(kitakami, in_case).status is CaseStatus.APPROVED  # waits for the counter
    created = _complete(kitakami, destination, in_case)
    head, wife = (_resident(kitakami, i) for i in created)
    assert head.status is RecordStatus.CURRENT and head.became_resident_reason is IdoReason.MOVE_IN
    assert head.became_resident_on == clock_module.today_jst()  # the day stated at the counter, not the planned one
    assert head.previous_address.startswith("岩手県花巻市") and head.machiaza_code == "0320690045"
    assert head.banchi == "3-1" and head.is_householder and head.relationship_to_head == "世帯主"
    assert wife.household_id == head.household_id and wife.relationship_to_head == "妻" and not wife.is_householder
    assert head.juminhyo_code == family["head_code"]
    assert _case(kitakami, in_case).status is CaseStatus.COMPLETED
    # J-LIS: the head's signature certificate is revoked (address changed); the card's authentication stays.
    from bridge.peers.jlis.service import open_simulator

    simulator = open_simulator(jlis_config)
    assert simulator.certificate_record(_serial(family["card"])).revocation_reason is None  # sent, not yet applied
    assert deliver_card_revocations(kitakami) == [str(_serial(family["card"]))]
    assert simulator.certificate_record(_serial(family["card"])).revocation_reason.value == "affiliationChanged"
    assert simulator.certificate_record(_serial(family["card"], "auth")).revocation_reason is None
    assert [m.payload["items"]["change_reason"] for m in destination.sent("identity.update")] == ["転入", "転入"]
    # The wife arrives with her 国民健康保険 item (転出証明書情報): Kitakami's NHI department is told too.
    assert sorted(r for r, t, _ in destination.provisions() if t == "dept.notice.move_in") == [
        "dept:nhi", "dept:pension", "dept:pension", "dept:tax", "dept:tax"]

    notices = destination.sent("movein.notice")
    assert [m.recipient for m in notices] == [f"muni:{HANAMAKI}"] * 2
    for message in notices:
        origin.receive(message)
        origin.receive(message)  # delivered twice: no second removal
    for resident_id in (family["head"], family["wife"]):
        removed = _resident(hanamaki, resident_id)
        assert removed.status is RecordStatus.REMOVED and removed.removal_reason is IdoReason.MOVE_OUT
        assert removed.removed_on == clock_module.today_jst() + dt.timedelta(days=5)
        assert removed.confirmed_moveout_address.startswith("岩手県北上市大通り一丁目3-1")
    assert _case(hanamaki, out_case).status is CaseStatus.COMPLETED
    assert [m.payload["items"]["change_reason"] for m in origin.sent("identity.update")] == ["転出"] * 4
    with hanamaki.app_context():
        from backoffice.models import CaseEvent

        steps = db.session.execute(select(CaseEvent.action).where(CaseEvent.case_id == out_case)
                                   .order_by(CaseEvent.id)).scalars().all()
        assert steps == ["received", "confirm", "approve", "movein_notice", "complete"]  # one notice per person


def test_a_reservation_approved_before_the_certificate_waits_flagged_and_is_matched_when_it_arrives(
        hanamaki, kitakami, family, clock, move_keys):
    from backoffice.extensions import db
    from backoffice.services import cases

    origin, destination = City(hanamaki, clock, move_keys), City(kitakami, clock, move_keys)
    move_id = str(uuid.uuid4())
    out_case = origin.deliver(family["card"], "move_out", _move(MOVERS), move_id=move_id)
    in_case = _reservation(destination, family, move_id)
    destination.confirm_and_approve(in_case)
    case = _case(kitakami, in_case)
    assert case.status is CaseStatus.APPROVED
    assert {f["code"] for f in json.loads(case.findings)} == {"awaiting_moveout_certificate"}
    with pytest.raises(cases.CaseError) as refused:
        _complete(kitakami, destination, in_case)
    assert refused.value.field == "moveout_certificate" and "宮沢　賢" in refused.value.message
    with kitakami.app_context():
        assert db.session.execute(select(func.count()).select_from(Resident)).scalar_one() == 0

    origin.confirm_and_approve(out_case)
    first, second = origin.sent("moveout.certificate")
    destination.receive(first)
    assert {f["code"] for f in json.loads(_case(kitakami, in_case).findings)} == {"awaiting_moveout_certificate"}
    destination.receive(second)
    assert {f["code"] for f in json.loads(_case(kitakami, in_case).findings)} == {"moveout_certificate_matched"}
    assert len(_complete(kitakami, destination, in_case)) == 2


def _another_card(hanamaki: Any, tmp_path: Path, *, revoked: bool = False) -> Path:
    """The card file of another resident of Hanamaki (its signature certificate revoked if asked)."""
    from backoffice.extensions import db
    from backoffice.services import cards

    with hanamaki.test_request_context("/"):
        other = make_resident(db.session, hanamaki.config, household=make_household(
            db.session, householder_name="佐藤　一郎"), name="佐藤　一郎", birth_date=dt.date(1980, 1, 1))
        record, card_file = cards.issue_card(db.session, resident_code=other.juminhyo_code, pin="1234",
                                             password=PASSWORD, issued_by="clerk1", iterations=1000)
        if revoked:
            cards.revoke_certificate(db.session, serial=record.sign_cert_serial, reason="keyCompromise", by="clerk1")
        db.session.commit()
    path = tmp_path / "another-card.json"
    path.write_bytes(card_file)
    return path


def test_a_reservation_someone_else_signed_with_the_movers_move_id_never_gets_their_certificates(
        hanamaki, kitakami, family, clock, move_keys, tmp_path):
    # The attack: a compromised portal saw the family's move id and has an accomplice sign a 転入予約 to
    # Kitakami naming them, with that move id and an address of his choosing, which it delivers first. Were
    # the 転出証明書情報 matched to it, the accomplice's own card would complete their 転入 at the counter.
    from backoffice.extensions import db

    origin, destination = City(hanamaki, clock, move_keys), City(kitakami, clock, move_keys)
    accomplice_card = _another_card(hanamaki, tmp_path)
    move_id = str(uuid.uuid4())
    elsewhere = {"kind": "elsewhere", "municipalityCode": KITAKAMI, "postalCode": "0240061", "prefecture": "岩手県",
                 "municipality": "北上市", "address": "大通り2-9-9"}
    forged = destination.deliver(accomplice_card, "move_in_reservation", _move(MOVERS, destination=elsewhere),
                                 move_id=move_id)
    out_case = origin.deliver(family["card"], "move_out", _move(MOVERS), move_id=move_id)
    genuine = _reservation(destination, family, move_id)
    origin.confirm_and_approve(out_case)

    for message in origin.sent("moveout.certificate"):
        destination.receive(message)

    with kitakami.app_context():
        assert [c.case_id for c in db.session.execute(select(MoveoutCertificate)).scalars()] == [genuine, genuine]
    assert "moveout_certificate_matched" not in _case(kitakami, forged).findings
    assert "moveout_certificate_matched" in _case(kitakami, genuine).findings


def test_a_reservation_whose_signature_was_refused_never_takes_a_certificate_even_when_sensitive(
        hanamaki, kitakami, family, clock, move_keys, tmp_path):
    # A 転入予約 made sensitive goes to a clerk even when its signature was refused; it must not take the
    # movers' 転出証明書情報 (matched on their names) from the reservation they signed.
    origin, destination = City(hanamaki, clock, move_keys), City(kitakami, clock, move_keys)
    kitakami.config["SENSITIVE_CASE_KINDS"] = ("move_in_reservation",)
    revoked = _another_card(hanamaki, tmp_path, revoked=True)
    refused = destination.deliver(revoked, "move_in_reservation", _move(MOVERS[:1]), move_id=None)
    assert "signature_refused" in _case(kitakami, refused).findings
    out_case = origin.deliver(family["card"], "move_out", _move(MOVERS[:1]), move_id=None)
    genuine = _reservation(destination, family, None, movers=MOVERS[:1])
    origin.confirm_and_approve(out_case)

    [certificate] = origin.sent("moveout.certificate")
    destination.receive(certificate)

    assert "moveout_certificate_matched" in _case(kitakami, genuine).findings
    assert "moveout_certificate_matched" not in _case(kitakami, refused).findings


def test_a_certificate_without_a_move_id_is_matched_on_the_name_and_birth_date(
        hanamaki, kitakami, family, clock, move_keys):
    origin, destination = City(hanamaki, clock, move_keys), City(kitakami, clock, move_keys)
    out_case = origin.deliver(family["card"], "move_out", _move(MOVERS[:1]), move_id=None)
    other = _reservation(destination, family, None, movers=[("北上　花子", "1985-01-01")])
    in_case = _reservation(destination, family, None, movers=MOVERS[:1])
    origin.confirm_and_approve(out_case)
    [certificate] = origin.sent("moveout.certificate")
    destination.receive(certificate)
    assert "moveout_certificate_matched" in _case(kitakami, in_case).findings
    assert "moveout_certificate" not in _case(kitakami, other).findings


def test_a_move_in_for_someone_already_resident_is_refused_and_nothing_changes(
        hanamaki, kitakami, family, clock, move_keys):
    from backoffice.extensions import db
    from backoffice.services import cases

    origin, destination = City(hanamaki, clock, move_keys), City(kitakami, clock, move_keys)
    move_id = str(uuid.uuid4())
    out_case = origin.deliver(family["card"], "move_out", _move(MOVERS), move_id=move_id)
    in_case = _reservation(destination, family, move_id)
    origin.confirm_and_approve(out_case)
    for message in origin.sent("moveout.certificate"):
        destination.receive(message)
    destination.confirm_and_approve(in_case)
    # Meanwhile the wife was recorded in Kitakami by another route (R10: a 転入 for a current resident is an error).
    with kitakami.app_context():
        make_resident(db.session, kitakami.config, name="宮沢　トシ", name_kana="ミヤザワ　トシ",
                      birth_date=dt.date(1992, 11, 27))
        db.session.commit()
        before = db.session.execute(select(func.count()).select_from(Resident)).scalar_one()
    with pytest.raises(cases.CaseError) as refused:
        _complete(kitakami, destination, in_case)
    assert refused.value.field == "movers" and "宮沢　トシ" in refused.value.message
    assert "already a resident" in refused.value.message
    with kitakami.app_context():
        assert db.session.execute(select(func.count()).select_from(Resident)).scalar_one() == before
    assert _case(kitakami, in_case).status is CaseStatus.APPROVED
    assert destination.sent("movein.notice") == []


def test_only_an_approved_move_in_reservation_can_be_completed(hanamaki, kitakami, family, clock, move_keys):
    from backoffice.services import cases

    destination = City(kitakami, clock, move_keys)
    in_case = _reservation(destination, family, None)
    with pytest.raises(cases.CaseError) as refused:
        _complete(kitakami, destination, in_case)
    assert refused.value.code == "not_approved"


def test_a_movein_notice_for_an_unknown_person_is_dead_lettered_not_applied(hanamaki, family, clock, move_keys):
    from bridge.handlers import PermanentFailure

    origin = City(hanamaki, clock, move_keys)
    message = Opened(message_id=str(uuid.uuid4()), message_type="movein.notice", sender=f"muni:{KITAKAMI}",
                     recipient=origin.party, created_at=clock_module.utcnow(),
                     payload={"items": {"juminhyo_code": "12345678903", "name": "誰か", "birth_date": "1990-01-01",
                                        "move_date": "2026-12-01", "new_address": "岩手県北上市大通り一丁目1"}})
    with pytest.raises(PermanentFailure):
        origin.receive(message)
    assert _resident(hanamaki, family["head"]).status is RecordStatus.CURRENT


def test_parse_address_takes_the_chome_in_kanji_or_figures():
    from backoffice.services.moves import parse_address

    for text in ("大通り一丁目3-1", "大通り1丁目3-1", "大通り1-3-1", "大通り１－３－１"):
        machiaza, banchi = parse_address(KITAKAMI, text)
        assert (machiaza.name, banchi) == ("大通り一丁目", "3-1"), text
    assert parse_address(KITAKAMI, "存在しない町1-1") is None
    assert parse_address(KITAKAMI, "大通り一丁目") is None  # no 番地


def test_a_recipient_that_is_any_municipality_needs_the_municipality_named(hanamaki):
    from backoffice.extensions import db
    from backoffice.services import provision

    with hanamaki.app_context():
        with pytest.raises(provision.ProvisionRefused) as missing:
            provision.send(db.session, recipient_id="municipality", message_type="movein.notice",
                           data={"name": "x"}, reason="test", resident_id=None)
        assert missing.value.field == "party"
        with pytest.raises(provision.ProvisionRefused) as itself:
            provision.send(db.session, recipient_id="municipality", party=f"muni:{HANAMAKI}",
                           message_type="movein.notice", data={"name": "x"}, reason="test", resident_id=None)
        assert itself.value.field == "party"
        with pytest.raises(provision.ProvisionRefused) as other:
            provision.send(db.session, recipient_id="prefecture", party=f"muni:{KITAKAMI}",
                           message_type="identity.update", data={"name": "x"}, reason="test", resident_id=None)
        assert other.value.field == "party"


def _ready_move_in(hanamaki, kitakami, family, clock, move_keys, movers, **changes) -> tuple[City, int]:
    """Both cities approve; the 転出証明書情報 has reached Kitakami: the 転入予約 waits for the counter."""
    origin, destination = City(hanamaki, clock, move_keys), City(kitakami, clock, move_keys)
    move_id = str(uuid.uuid4())
    out_case = origin.deliver(family["card"], "move_out", _move(movers, **changes), move_id=move_id)
    in_case = destination.deliver(family["card"], "move_in_reservation", _move(movers, **changes), move_id=move_id)
    origin.confirm_and_approve(out_case)
    for message in origin.sent("moveout.certificate"):
        destination.receive(message)
    destination.confirm_and_approve(in_case)
    return destination, in_case


def test_a_mover_joining_the_household_already_at_the_new_address_becomes_its_member(
        hanamaki, kitakami, family, clock, move_keys):
    from backoffice.extensions import db

    with kitakami.app_context():
        host = make_resident(db.session, kitakami.config, name="北上　一郎", name_kana="キタカミ　イチロウ",
                             machiaza_code="0320690045", banchi="3-1")
        db.session.commit()
        host_id, household_id = host.id, host.household_id
    destination, in_case = _ready_move_in(hanamaki, kitakami, family, clock, move_keys, MOVERS[1:],
                                          newHouseholder="existing")
    [wife] = (_resident(kitakami, i) for i in _complete(kitakami, destination, in_case))
    assert wife.household_id == household_id and not wife.is_householder
    assert _resident(kitakami, host_id).is_householder


def test_a_person_who_lived_here_before_gets_a_new_current_record_and_the_joshu_stays(
        hanamaki, kitakami, family, clock, move_keys):
    from backoffice.extensions import db

    with kitakami.app_context():
        # Lived in Kitakami before: the 除票 keeps the same 住民票コード and My Number (both are for life).
        joshu = make_resident(db.session, kitakami.config, name="宮沢　賢", name_kana="ミヤザワ　ケン",
                              birth_date=dt.date(1990, 8, 27), juminhyo_code=family["head_code"],
                              my_number=HEAD_NUMBER, status=RecordStatus.REMOVED, removal_reason=IdoReason.MOVE_OUT,
                              removed_on=dt.date(2015, 4, 1))
        db.session.commit()
        joshu_id = joshu.id
    destination, in_case = _ready_move_in(hanamaki, kitakami, family, clock, move_keys, MOVERS[:1])
    [new_id] = _complete(kitakami, destination, in_case)
    assert _case(kitakami, in_case).status is CaseStatus.COMPLETED
    with kitakami.app_context():
        rows = db.session.execute(select(Resident).where(Resident.juminhyo_code == family["head_code"])
                                  .order_by(Resident.id)).scalars().all()
        assert [(r.id, r.status) for r in rows] == [(joshu_id, RecordStatus.REMOVED), (new_id, RecordStatus.CURRENT)]
        assert rows[0].my_number_index == rows[1].my_number_index is not None
        assert rows[0].removed_on == dt.date(2015, 4, 1) and rows[1].became_resident_reason is IdoReason.MOVE_IN
    assert [m.payload["items"]["juminhyo_code"] for m in destination.sent("movein.notice")] == [family["head_code"]]


def test_a_move_in_whose_my_number_is_on_another_current_record_is_refused_naming_it(
        hanamaki, kitakami, family, clock, move_keys):
    from backoffice.extensions import db
    from backoffice.services import cases

    with kitakami.app_context():
        # A record keyed in with the wrong number: the same My Number on a current record of someone else.
        make_resident(db.session, kitakami.config, name="北上　誤記", name_kana="キタカミ　ゴキ", my_number=HEAD_NUMBER)
        db.session.commit()
    destination, in_case = _ready_move_in(hanamaki, kitakami, family, clock, move_keys, MOVERS[:1])
    with pytest.raises(cases.CaseError) as refused:
        _complete(kitakami, destination, in_case)
    assert refused.value.code == "number_in_use" and refused.value.field == "movers"
    with kitakami.test_request_context("/"):  # the message reads in the page's language (Japanese by default)
        assert "宮沢　賢" in refused.value.message and "個人番号" in refused.value.message
    assert _case(kitakami, in_case).status is CaseStatus.APPROVED
    with kitakami.app_context():
        assert db.session.execute(select(func.count()).select_from(Resident)).scalar_one() == 1


def test_a_movein_notice_confirms_the_planned_move_out_on_the_current_record_not_an_old_joshu(
        hanamaki, family, clock, move_keys):
    from backoffice.extensions import db

    with hanamaki.app_context():
        # The head lived in Hanamaki once before, moved away and came back: a 除票 with the same numbers.
        joshu = make_resident(db.session, hanamaki.config, name="宮沢　賢", name_kana="ミヤザワ　ケン",
                              birth_date=dt.date(1990, 8, 27), juminhyo_code=family["head_code"],
                              my_number=HEAD_NUMBER, status=RecordStatus.REMOVED, removal_reason=IdoReason.MOVE_OUT,
                              removed_on=dt.date(2012, 9, 30), confirmed_moveout_address="東京都千代田区")
        db.session.commit()
        joshu_id = joshu.id
    origin = City(hanamaki, clock, move_keys)
    out_case = origin.deliver(family["card"], "move_out", _move(MOVERS[:1]), move_id=None)
    origin.confirm_and_approve(out_case)
    items = {"juminhyo_code": family["head_code"], "name": "宮沢　賢", "birth_date": "1990-08-27",
             "move_date": clock_module.today_jst().isoformat(), "new_address": "岩手県北上市大通り一丁目3-1"}
    message = Opened(message_id=str(uuid.uuid4()), message_type="movein.notice", sender=f"muni:{KITAKAMI}",
                     recipient=origin.party, created_at=clock_module.utcnow(), payload={"items": items})
    confirmed = origin.receive(message)
    assert confirmed.id == family["head"]
    head, old = _resident(hanamaki, family["head"]), _resident(hanamaki, joshu_id)
    assert head.status is RecordStatus.REMOVED and head.confirmed_moveout_address == "岩手県北上市大通り一丁目3-1"
    assert old.removed_on == dt.date(2012, 9, 30) and old.confirmed_moveout_address == "東京都千代田区"
    assert _case(hanamaki, out_case).status is CaseStatus.COMPLETED
    assert origin.receive(message) is None  # delivered again: only 除票 are left, nothing changes


def test_a_movein_notice_from_a_city_the_person_is_not_moving_to_changes_nothing(
        hanamaki, family, clock, move_keys):
    from bridge.handlers import PermanentFailure

    origin = City(hanamaki, clock, move_keys)
    out_case = origin.deliver(family["card"], "move_out", _move(MOVERS[:1]), move_id=None)
    origin.confirm_and_approve(out_case)  # the 転出 goes to Kitakami
    items = {"juminhyo_code": family["head_code"], "name": "宮沢　賢", "birth_date": "1990-08-27",
             "move_date": clock_module.today_jst().isoformat(), "new_address": "岩手県盛岡市内丸12-2"}
    for sender in ("muni:032018", f"muni:{KITAKAMI}"):
        message = Opened(message_id=str(uuid.uuid4()), message_type="movein.notice", sender=sender,
                         recipient=origin.party, created_at=clock_module.utcnow(), payload={"items": items})
        if sender == "muni:032018":  # Morioka: not where the 転出届 said
            with pytest.raises(PermanentFailure) as refused:
                origin.receive(message)
            assert refused.value.reason == "unexpected_notice"
            assert _resident(hanamaki, family["head"]).confirmed_moveout_address is None
        else:
            origin.receive(message)
            assert _resident(hanamaki, family["head"]).confirmed_moveout_address == "岩手県盛岡市内丸12-2"


def _movein_notice(origin: City, family: dict[str, Any]) -> Opened:
    items = {"juminhyo_code": family["head_code"], "name": "宮沢　賢", "birth_date": "1990-08-27",
             "move_date": clock_module.today_jst().isoformat(), "new_address": "岩手県北上市大通り一丁目3-1"}
    return Opened(message_id=str(uuid.uuid4()), message_type="movein.notice", sender=f"muni:{KITAKAMI}",
                  recipient=origin.party, created_at=clock_module.utcnow(), payload={"items": items})


def test_a_householder_moving_out_alone_leaves_the_one_member_who_stays_householder(
        hanamaki, family, clock, move_keys):
    from backoffice.extensions import db
    from backoffice.models import ResidentHistory

    origin = City(hanamaki, clock, move_keys)
    out_case = origin.deliver(family["card"], "move_out", _move(MOVERS[:1]), move_id=None)
    origin.confirm_and_approve(out_case)  # the head's record is removed as of the planned date: the wife heads
    with hanamaki.app_context():
        wife = db.session.get(Resident, family["wife"])
        assert (wife.is_householder, wife.relationship_to_head) == (True, "世帯主")
        assert wife.household.householder_name == "宮沢　トシ"
        change = db.session.execute(select(ResidentHistory).where(ResidentHistory.resident_id == wife.id)
                                    .order_by(ResidentHistory.id)).scalars().all()[-1]
        assert (change.reason, change.notified_on) == (IdoReason.HOUSEHOLDER_CHANGE, None)  # no 届出 was needed
        current_heads = db.session.execute(select(func.count()).select_from(Resident).where(
            Resident.household_id == wife.household_id, Resident.is_householder.is_(True),
            Resident.status == RecordStatus.CURRENT)).scalar_one()
        assert current_heads == 1


def test_a_householder_moving_out_from_two_adults_is_confirmed_and_the_case_says_a_householder_is_needed(
        hanamaki, family, clock, move_keys):
    from backoffice.extensions import db
    from backoffice.models import AuditLog, CaseEvent

    with hanamaki.app_context():
        head = db.session.get(Resident, family["head"])
        son = make_resident(db.session, hanamaki.config, household=head.household, name="宮沢　清六",
                            name_kana="ミヤザワ　セイロク", birth_date=dt.date(2000, 4, 1), relationship_to_head="子",
                            is_householder=False, banchi=head.banchi)
        db.session.commit()
        son_id = son.id
    origin = City(hanamaki, clock, move_keys)
    out_case = origin.deliver(family["card"], "move_out", _move(MOVERS[:1]), move_id=None)
    origin.confirm_and_approve(out_case)
    origin.receive(_movein_notice(origin, family))  # the 転出 is confirmed all the same
    assert _resident(hanamaki, family["head"]).status is RecordStatus.REMOVED
    assert not _resident(hanamaki, family["wife"]).is_householder and not _resident(hanamaki, son_id).is_householder
    with hanamaki.app_context():
        steps = db.session.execute(select(CaseEvent.action).where(CaseEvent.case_id == out_case)
                                   .order_by(CaseEvent.id)).scalars().all()
        assert steps == ["received", "confirm", "approve", "householder_needed", "complete"]
        audited = db.session.execute(select(AuditLog.target_id).where(
            AuditLog.action == "household.householder_needed")).scalars().all()
        assert audited == [str(_resident(hanamaki, family["wife"]).household_id)]


def test_after_the_move_out_is_approved_a_certificate_shows_the_joshu_with_the_planned_move(
        hanamaki, family, clock, move_keys):
    """The record is removed as of the planned date: a certificate asked for afterwards is of the 除票."""
    from backoffice.extensions import db
    from backoffice.services import certificates

    origin = City(hanamaki, clock, move_keys)
    out_case = origin.deliver(family["card"], "move_out", _move(MOVERS), move_id=str(uuid.uuid4()))
    origin.confirm_and_approve(out_case)
    request = {"type": "certificate", "municipalityCode": HANAMAKI, "kind": "juminhyo", "persons": "household",
               "items": {"householder": True, "honseki": False, "juminhyoCode": False, "myNumber": False},
               "copies": 1, "purpose": "転出の確認", "delivery": "post"}
    case_id = origin.deliver(family["card"], "certificate", request, move_id=None)
    with hanamaki.test_request_context("/"):
        case = db.session.get(Case, case_id)
        assert case.applicant_resident_id == family["head"]
        eligibility, content = certificates.preview(db.session, case)
        shown = [r.id for r in eligibility.residents]
        db.session.rollback()
    assert eligibility.ok and shown == [family["head"], family["wife"]]
    planned = clock_module.today_jst() + dt.timedelta(days=5)
    for rows in content["persons"]:
        printed = dict(rows)
        assert printed["除票"].endswith("転出予定") and wareki(planned) in printed["除票"]
        assert printed["転出予定地"] == "岩手県北上市大通り1-3-1"


def test_the_move_in_takes_the_day_the_resident_states_and_refuses_one_still_ahead(
        hanamaki, kitakami, family, clock, move_keys):
    """住民となった年月日 is the day the resident started living here (住み始めた日), not the planned date signed."""
    from backoffice.extensions import db
    from backoffice.services import completion
    from backoffice.services.cases import CaseError

    today = clock_module.today_jst()
    planned = today - dt.timedelta(days=2)
    destination, in_case = _ready_move_in(hanamaki, kitakami, family, clock, move_keys, MOVERS[:1],
                                          moveDate=planned.isoformat())
    with kitakami.test_request_context("/"):
        case = db.session.get(Case, in_case)
        with pytest.raises(CaseError) as refused:
            completion.complete_move_in(db.session, case, by=destination.staff(db.session, "clerk_a"),
                                        moved_on=today + dt.timedelta(days=1))
        db.session.rollback()
    assert refused.value.field == "moved_on" and "after today" in refused.value.message
    with kitakami.app_context():
        assert db.session.execute(select(func.count()).select_from(Resident)).scalar_one() == 0
    actual = today - dt.timedelta(days=4)
    with kitakami.test_request_context("/"):
        case = db.session.get(Case, in_case)
        [created] = completion.complete_move_in(db.session, case, by=destination.staff(db.session, "clerk_a"),
                                                moved_on=actual)
        db.session.commit()
        assert (created.became_resident_on, created.address_set_on) == (actual, actual)


def test_a_move_in_notified_after_fourteen_days_is_recorded_and_listed_as_late(
        hanamaki, kitakami, family, clock, move_keys):
    """第22条: 14 days (a deadline on a closed day moves to the next open day); past it, 届出期間経過 (第52条)."""
    from backoffice.extensions import db
    from backoffice.services import completion, filing

    today = clock_module.today_jst()
    moved = today - dt.timedelta(days=20)
    assert filing.notification_deadline(moved) < today
    destination, in_case = _ready_move_in(hanamaki, kitakami, family, clock, move_keys, MOVERS[:1],
                                          moveDate=(today - dt.timedelta(days=5)).isoformat())
    from backoffice.services.cases import CaseError

    with kitakami.test_request_context("/"):
        case = db.session.get(Case, in_case)
        # 特例転入 limit: 14 days after the move passed, so the 転出証明書情報 no longer serves.
        with pytest.raises(CaseError) as refused:
            completion.complete_move_in(db.session, case, by=destination.staff(db.session, "clerk_a"), moved_on=moved)
        db.session.rollback()
        assert refused.value.field == "paper_certificate" and "特例転入の期限" in refused.value.message
    with kitakami.app_context():
        assert db.session.execute(select(func.count()).select_from(Resident)).scalar_one() == 0
    with kitakami.test_request_context("/"):
        case = db.session.get(Case, in_case)
        completion.complete_move_in(db.session, case, by=destination.staff(db.session, "clerk_a"), moved_on=moved,
                                    paper_certificate=("花巻-2026-0042", "岩手県花巻市"))
        db.session.commit()
    assert _case(kitakami, in_case).status is CaseStatus.COMPLETED
    with kitakami.app_context():
        assert [(c.id, days) for c, days in filing.late_notifications(db.session)] == [(in_case, 20)]
        from backoffice.models import CaseEvent

        paper = db.session.execute(select(CaseEvent.detail).where(
            CaseEvent.case_id == in_case, CaseEvent.action == "paper_moveout_certificate")).scalar_one()
        assert json.loads(paper) == {"number": "花巻-2026-0042", "issuer": "岩手県花巻市"}


def test_the_tokurei_limit_is_the_earlier_of_fourteen_days_after_the_move_and_thirty_after_the_planned_date():
    from backoffice.services import filing

    planned = dt.date(2026, 11, 1)
    assert filing.tokurei_limit(moved_on=dt.date(2026, 11, 3), planned_moveout_on=planned) == dt.date(2026, 11, 17)
    assert filing.tokurei_limit(moved_on=dt.date(2026, 11, 25), planned_moveout_on=planned) == dt.date(2026, 12, 1)


def test_the_notification_deadline_is_fourteen_days_moved_past_closed_days():
    from backoffice.services import filing

    assert filing.notification_deadline(dt.date(2026, 12, 1)) == dt.date(2026, 12, 15)  # a Tuesday
    assert filing.notification_deadline(dt.date(2026, 12, 15)) == dt.date(2027, 1, 4)  # 12/29: the closure


def test_a_foreign_resident_arrives_with_the_certificate_items_and_the_insurance_items_filled(
        hanamaki, kitakami, family, clock, move_keys):
    """施行令第24条: the 転出証明書情報 carries the 第30条の45 and the 国保・年金 items; the 転入 records them."""
    from backoffice.extensions import db
    from backoffice.services import records

    with hanamaki.app_context():
        wife = db.session.get(Resident, family["wife"])
        wife.nationality, wife.residence_status, wife.residence_expiry = "ベトナム", "技術・人文知識・国際業務", \
            dt.date(2028, 3, 31)
        wife.alphabet_name, wife.tsusho = "NGUYEN THI TOSHI", "宮沢　トシ"
        wife.pension_since = dt.date(2015, 4, 1)
        # 第30条の45: the category, the 在留カード number, the period, the day they became a foreign resident.
        wife.foreign_resident_category, wife.residence_period_years = "中長期在留者", 3
        wife.became_foreign_resident_on, wife.became_foreign_resident_reason = dt.date(2019, 4, 1), "国外転入"
        wife.became_foreign_resident_notified_on = dt.date(2019, 4, 3)
        wife.alphabet_name_kana, wife.kanji_name = "グエン　ティ　トシ", "阮　氏寿"
        records.set_residence_card_number(wife, "AB12345678CD")
        db.session.commit()
    destination, in_case = _ready_move_in(hanamaki, kitakami, family, clock, move_keys, MOVERS)
    outbox = City.sent(SimpleNamespace(app=hanamaki, keys=move_keys), "moveout.certificate")  # type: ignore[arg-type]
    sent = {m.payload["items"]["name"]: m.payload["items"] for m in outbox}
    assert sent["宮沢　トシ"]["residence_card_number"] == "AB12345678CD"
    assert sent["宮沢　トシ"]["foreign_resident_category"] == "中長期在留者"
    assert sent["宮沢　賢"]["foreign_resident_category"] is None
    created = _complete(kitakami, destination, in_case)
    arrived = next(r for r in (_resident(kitakami, i) for i in created) if r.name == "宮沢　トシ")
    assert (arrived.nationality, arrived.residence_status, arrived.alphabet_name, arrived.tsusho) == (
        "ベトナム", "技術・人文知識・国際業務", "NGUYEN THI TOSHI", "宮沢　トシ")
    assert (arrived.foreign_resident_category, arrived.residence_period_years, arrived.residence_expiry) == (
        "中長期在留者", 3, dt.date(2028, 3, 31))
    assert (arrived.became_foreign_resident_on, arrived.became_foreign_resident_reason,
            arrived.became_foreign_resident_notified_on) == (dt.date(2019, 4, 1), "国外転入", dt.date(2019, 4, 3))
    assert (arrived.alphabet_name_kana, arrived.kanji_name) == ("グエン　ティ　トシ", "阮　氏寿")
    assert b"AB12345678CD" not in arrived.residence_card_number_encrypted  # kept encrypted at the destination
    with kitakami.app_context():
        assert records.residence_card_number(arrived) == "AB12345678CD"
        history = db.session.execute(select(ResidentHistory.after).where(
            ResidentHistory.resident_id == arrived.id)).scalars().all()
        assert history and all("AB12345678CD" not in h for h in history)
    assert (arrived.nhi_since, arrived.pension_since) == (dt.date(2020, 4, 1), dt.date(2015, 4, 1))
    head = next(r for r in (_resident(kitakami, i) for i in created) if r.name == "宮沢　賢")
    assert head.nationality is None and head.pension_since == dt.date(2010, 8, 27)


def _present_card(app: Any, city: City, case_id: int, card: Path) -> None:
    """The card signed in with its PIN at the destination's counter for this case (a verified visit)."""
    from backoffice.extensions import db
    from backoffice.models import CounterVisit, VisitResult
    from backoffice.services import terminals

    with app.app_context():
        terminal, _code = terminals.add_terminal(db.session, name=f"counter-{uuid.uuid4().hex[:8]}")
        db.session.add(CounterVisit(case_id=case_id, staff_id=city.ids["clerk_a"], terminal_id=terminal.id,
                                    checked_at=clock_module.utcnow(), result=VisitResult.VERIFIED,
                                    cert_serial=str(_serial(card, "auth"))))
        db.session.commit()


def _card_record(app: Any, card_number: str) -> Any:
    from backoffice.extensions import db
    from backoffice.models import CardRecord

    with app.app_context():
        card = db.session.execute(select(CardRecord).where(CardRecord.card_number == card_number)).scalar_one()
        db.session.expunge(card)
        return card


def test_a_card_kept_in_use_moves_to_the_destination_which_can_then_suspend_it(
        hanamaki, kitakami, family, clock, move_keys, jlis_config):
    """継続利用: the card presented with its PIN at the 転入 is continued; its record moves to Kitakami's ledger."""
    from backoffice.extensions import db
    from backoffice.models import CardRecord
    from backoffice.services import cards
    from bridge.peers.jlis.service import open_simulator

    with hanamaki.app_context():
        number = db.session.execute(select(CardRecord.card_number).where(
            CardRecord.resident_id == family["head"])).scalar_one()
    destination, in_case = _ready_move_in(hanamaki, kitakami, family, clock, move_keys, MOVERS)
    _present_card(kitakami, destination, in_case, family["card"])
    created = _complete(kitakami, destination, in_case)
    head = _resident(kitakami, created[0])
    card = _card_record(kitakami, number)
    assert card.resident_id == head.id and card.transferred_from == HANAMAKI
    assert card.continued_on == clock_module.today_jst() and card.renewal_required_on is None
    assert card.auth_cert_serial == str(_serial(family["card"], "auth"))
    simulator = open_simulator(jlis_config)
    assert deliver_card_revocations(kitakami) == [str(_serial(family["card"]))]
    assert simulator.certificate_record(_serial(family["card"], "auth")).revocation_reason is None  # stays valid
    assert simulator.certificate_record(_serial(family["card"])).revocation_reason.value == "affiliationChanged"
    # The wife signed to keep a card she does not have: nothing to take over.
    with kitakami.app_context():
        assert db.session.execute(select(func.count()).select_from(CardRecord)).scalar_one() == 1

    # The 転入通知 tells Hanamaki, which no longer suspends the card; Kitakami does.
    origin = City.__new__(City)
    origin.app, origin.keys = hanamaki, move_keys
    for message in destination.sent("movein.notice"):
        origin.receive(message)
    assert _card_record(hanamaki, number).transferred_to == KITAKAMI
    with hanamaki.test_request_context("/"):
        with pytest.raises(cards.CardError) as refused:
            cards.suspend_card(db.session, card_number=number, by="clerk1")
        assert refused.value.code == "card_moved"
        db.session.rollback()
    with kitakami.test_request_context("/"):
        cards.suspend_card(db.session, card_number=number, by="clerk_a")
        db.session.commit()
    assert simulator.certificate_record(_serial(family["card"], "auth")).revocation_reason.value == "certificateHold"


def test_a_card_kept_but_not_presented_within_ninety_days_is_marked_for_renewal(
        hanamaki, kitakami, family, clock, move_keys):
    from backoffice.extensions import db
    from backoffice.models import CardRecord
    from backoffice.services import cards

    with hanamaki.app_context():
        number = db.session.execute(select(CardRecord.card_number).where(
            CardRecord.resident_id == family["head"])).scalar_one()
    destination, in_case = _ready_move_in(hanamaki, kitakami, family, clock, move_keys, MOVERS)
    _complete(kitakami, destination, in_case)  # a household member completed it: the head's card not presented
    card = _card_record(kitakami, number)
    moved_on = clock_module.today_jst()
    assert card.continued_on is None and card.continuation_due == moved_on + dt.timedelta(days=90)
    auth = str(_serial(family["card"], "auth"))
    with kitakami.app_context():
        with pytest.raises(cards.CardError) as refused:
            cards.continue_card(db.session, card_number=number, presented_serial="1", by="clerk_a")
        assert refused.value.code == "not_this_card"
    clock.advance(days=90)
    with kitakami.app_context():
        assert cards.mark_lapsed_continuations(db.session, by="cli") == []  # the 90th day is still open
        db.session.commit()
    clock.advance(days=1)
    result = kitakami.test_cli_runner().invoke(args=["cards", "mark-renewals"])
    assert result.exit_code == 0 and number in result.output
    with kitakami.app_context():
        with pytest.raises(cards.CardError) as refused:
            cards.continue_card(db.session, card_number=number, presented_serial=auth, by="clerk_a")
        assert refused.value.code == "renewal_required"
    card = _card_record(kitakami, number)
    assert card.renewal_required_on == moved_on + dt.timedelta(days=91) and card.continued_on is None


def test_a_moveout_certificate_naming_a_card_of_this_city_cannot_take_it_from_its_holder(
        hanamaki, kitakami, family, clock, move_keys, tmp_path):
    """The attack: the origin names, as the mover's card, a card Kitakami keeps for one of its own residents."""
    from backoffice.extensions import db
    from backoffice.models import AuditLog, CardRecord
    from backoffice.services import cards

    with kitakami.test_request_context("/"):
        neighbour = make_resident(db.session, kitakami.config, name="高橋　ミツ", name_kana="タカハシ　ミツ")
        local, _file = cards.issue_card(db.session, resident_code=neighbour.juminhyo_code, pin="1234",
                                        password=PASSWORD, issued_by="clerk0", iterations=1000)
        db.session.commit()
        local_number, local_auth, neighbour_id = local.card_number, local.auth_cert_serial, neighbour.id
    with hanamaki.app_context():
        head_card = db.session.execute(select(CardRecord).where(CardRecord.resident_id == family["head"])).scalar_one()
        head_card.card_number = local_number  # what the 転出証明書情報 will claim as the head's card
        db.session.commit()
    destination, in_case = _ready_move_in(hanamaki, kitakami, family, clock, move_keys, MOVERS)
    _complete(kitakami, destination, in_case)
    kept = _card_record(kitakami, local_number)
    assert (kept.resident_id, kept.auth_cert_serial, kept.transferred_from) == (neighbour_id, local_auth, None)
    with kitakami.app_context():
        refused = db.session.execute(select(AuditLog.outcome).where(AuditLog.action == "card.take_over")).scalars()
        assert list(refused) == ["denied"]


def test_a_refusal_naming_a_mover_reads_in_the_pages_language_and_escapes_the_name_on_a_page(kitakami):
    from flask import render_template_string

    from backoffice.services import moves

    name = "<script>alert(1)</script>宮沢"  # a name from the signed application: whatever the portal sent
    refused = moves.refusal("movers", "already_resident", name=name)
    with kitakami.test_request_context("/?lang=ja"):
        page = render_template_string("<p>{{ message }}</p>", message=refused.message)
        assert "すでにこの市の住民です" in page and "already a resident" not in page
        assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;宮沢" in page
    with kitakami.test_request_context("/?lang=en"):
        page = render_template_string("<p>{{ message }}</p>", message=refused.message)
        assert "already a resident" in page and "すでにこの市の住民です" not in page
        assert "<script>" not in page
