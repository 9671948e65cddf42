"""Peers and provisions (F8, F9, F10, F12, R4, R12, R13): the recipients file, ``provision.send``, and the peers.

Everything real: the back office on PostgreSQL, a private redis-server, sealed envelopes, the
relay, the peers' own worker and list commands as processes, and the back office's ``flask worker``
applying the peers' acks.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from bridge.outbox import ACKNOWLEDGED
from bridge.peers import departments, prefecture, standin
from bridge.peers.jlis import receiver as jlis
from bridge.peers.jlis.cardclient import sign_application
from bridge.peers.jlis.service import open_simulator, publish
from bridge.peers.jlis.testkit import sample_holder
from bridge.peers.receiver import PeerStore, run_cli
from bridge.queues import QueueNames, get_queue
from bridge.relay import DELIVER
from core.envelope import KeyRegistry, Opened, import_public_key, open_envelope, seal
from core.jpki import ConsumedNonce, RefusalCode, SignedApplicationError, TrustConfig, verify_signed_application
from tests.bridge.conftest import BO_PARTY, ROOT, Bridged
from tests.factories import juminhyo_code, make_resident, my_number

NAME = "宮沢　賢治"
KANA = "ミヤザワ　ケンジ"
ADDRESS = "岩手県花巻市桜町一丁目１番地　ほしめぐりハイツ２０１"  # full-width digits and spaces, passed on as they are
MY_NUMBER = my_number(4242)
CODE = juminhyo_code(4242)
PERSON = {"juminhyo_code": CODE, "my_number": MY_NUMBER, "name": NAME, "name_kana": KANA, "birth_date": "1980-04-01",
          "sex": "1", "address": ADDRESS, "household_number": "H000004242", "householder_name": NAME,
          "relationship": "世帯主", "honseki": "岩手県花巻市桜町一丁目１番地", "hittosha": NAME}
MOVE = {"change_reason": "転出", "change_date": "2026-12-01", "move_date": "2026-12-01",
        "previous_address": ADDRESS, "new_address": "岩手県北上市芳町１番１号"}
PERSONAL_VALUES = (NAME, KANA, MY_NUMBER, CODE, "桜町")
ACK_QUEUE = QueueNames.ack(BO_PARTY)
PEER_PARTIES = (prefecture.PARTY, jlis.PARTY, *departments.PARTIES, standin.PARTY)
PEER_MODULES = {"prefecture": "bridge.peers.prefecture", "departments": "bridge.peers.departments",
                "standin": "bridge.peers.standin", "jlis": "bridge.peers.jlis.receiver"}
PEER_SPECS = {"prefecture": prefecture.PREFECTURE, "departments": departments.DEPARTMENTS_PEER,
              "standin": standin.STANDIN, "jlis": jlis.JLIS}


@pytest.fixture(scope="module")
def peer_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A key directory of this module: the back office and every peer, each registered with the others."""
    directory = tmp_path_factory.mktemp("peer-keys")
    for party in (BO_PARTY, *PEER_PARTIES):
        registry = KeyRegistry.from_config({"BRIDGE_KEY_DIRECTORY": str(directory)}, party=party)
        import_public_key(directory, party, registry.public_pem())
    return directory


@pytest.fixture
def bridge_settings(peer_keys: Path) -> dict[str, str]:
    """The bridged apps and workers use this module's key directory (overrides the bridge conftest's fixture)."""
    return {"BRIDGE_KEY_DIRECTORY": str(peer_keys)}


class Peers:
    """Runs the peers' real commands against the test's Redis, with their SQLite files in the test's folder."""

    def __init__(self, bridged: Bridged, directory: Path) -> None:
        self.bridged = bridged
        self.directory = directory
        self.env = {**bridged.env, "PEERS_DIRECTORY": str(directory)}

    def run(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        """``python -m <the peer's module> ARGS`` as an operator would run it."""
        return subprocess.run([sys.executable, "-m", PEER_MODULES[name], *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=60)

    def work(self, name: str) -> str:
        """Run the peer's worker until its queues are empty; returns its log."""
        result = self.run(name, "worker", "--burst")
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout + result.stderr

    def store(self, name: str) -> PeerStore:
        """The peer's own SQLite file."""
        return PeerStore(self.directory / f"{name}.db")


@pytest.fixture
def peers(bridged: Bridged, tmp_path: Path) -> Peers:
    """The peers of this test, beside the bridged back office."""
    return Peers(bridged, tmp_path / "peers")


def provide(bridged: Bridged, **arguments: Any) -> Any:
    """``provision.send`` in the back office, committed; returns the provision record (detached)."""
    from backoffice.extensions import db
    from backoffice.services import provision

    arguments.setdefault("reason", "test: case 1 approved")
    arguments.setdefault("resident_id", None)
    with bridged.bo_app.app_context():
        record = provision.send(db.session, **arguments)
        db.session.commit()
        db.session.expunge(record)
    return record


def add_resident(bridged: Bridged) -> int:
    """A resident in the ledger, committed; returns its id."""
    from backoffice.extensions import db

    with bridged.bo_app.app_context():
        resident = make_resident(db.session, bridged.bo_app.config, name=NAME, my_number=MY_NUMBER,
                                 juminhyo_code=CODE)
        db.session.commit()
        return int(resident.id)


def open_as(peer_keys: Path, party: str, token: str, message_type: str) -> Opened:
    """Open an envelope with ``party``'s keys, exactly as that peer does."""
    keys = KeyRegistry.from_config({"BRIDGE_KEY_DIRECTORY": str(peer_keys)}, party=party)
    return open_envelope(token, me=party, keys=keys, accepted_types={message_type}, max_age=dt.timedelta(days=1),
                         now=dt.datetime.now(dt.UTC))


def enqueue(bridged: Bridged, queue: str, message_id: str, token: str, job_id: str | None = None) -> None:
    """Put a delivery job on ``queue`` directly, as a republish or an attacker with access to Redis would."""
    get_queue(queue, bridged.redis.client()).enqueue_call(DELIVER, args=(message_id, token),
                                                          job_id=job_id or message_id)


def ack_count(bridged: Bridged) -> int:
    """Acks waiting for the back office."""
    return int(get_queue(ACK_QUEUE, bridged.redis.client()).count)


# -- the data file ---------------------------------------------------------------------------------


def test_every_recipient_has_a_legal_basis_and_a_peer_that_takes_exactly_its_message_types():
    from backoffice.services.moves import register_handlers
    from backoffice.services.provision import ANY_MUNICIPALITY, load_recipients
    from backoffice.services.provision import MY_NUMBER as MY_NUMBER_ITEM
    from bridge.handlers import accepted_types

    register_handlers()  # as the back office's factory does
    recipients = load_recipients()
    served = {party: spec.accepted_types for spec in PEER_SPECS.values() for party in spec.parties}
    # Another back office running this code takes what the stand-in takes for the others.
    served[ANY_MUNICIPALITY] = accepted_types("backoffice")
    assert {r.party for r in recipients.by_id.values()} == set(served), "a peer nobody may send to, or vice versa"
    for recipient in recipients.by_id.values():
        assert recipient.legal_basis.ja and recipient.legal_basis.en and recipient.source
        assert set(recipient.message_types) <= served[recipient.party], recipient.id
        assert (MY_NUMBER_ITEM in recipient.items) == (recipient.my_number_basis is not None), recipient.id
    # The prefecture gets what the assessment lists for the 本人確認情報 (II 本人確認情報ファイル 5. 提供先1).
    assert set(recipients.by_id["prefecture"].items) == {
        "juminhyo_code", "name", "birth_date", "sex", "address", "my_number", "change_reason", "change_date"}
    assert "住民基本台帳法第30条の6" in recipients.by_id["prefecture"].legal_basis.ja
    # J-LIS gets the certificate and the reason, nothing about the person.
    assert recipients.by_id["jlis"].items == ("card_serial", "revocation_reason")


# Entries of data/recipients.json by position: 0 prefecture, 1 jlis, 2 dept:tax, 4 dept:pension.
@pytest.mark.parametrize(("change", "message"), [
    (lambda r: r[4]["items"].append("my_number"),
     "recipients[4] (id 'dept:pension'): field 'my_number_basis' must name the law that allows the My Number"),
    (lambda r: r[2]["items"].remove("my_number"),
     "recipients[2] (id 'dept:tax'): field 'my_number_basis' is given but 'items' does not list my_number"),
    (lambda r: r[0]["items"].append("blood_type"), "recipients[0] (id 'prefecture'): field 'items' has unknown"),
    (lambda r: r[0].update(kind="transfer"), "recipients[0] (id 'prefecture'): field 'kind'"),
    (lambda r: r[1].update(party="peer:dept:tax"), "recipients[1] (id 'jlis'): field 'kind'"),
    (lambda r: r[1].pop("legal_basis"), "recipients[1] (id 'jlis'): field 'legal_basis' is missing"),
    (lambda r: r[1]["legal_basis"].update(en=" "), "field 'legal_basis' must have a non-empty 'en' text"),
    (lambda r: r[1].update(message_types=[]), "recipients[1] (id 'jlis'): field 'message_types'"),
    (lambda r: r.append(dict(r[0])), "field 'id' 'prefecture' is used twice"),
    (lambda r: r[0].update(party="portal"), "field 'party' must be a peer or a municipality"),
])
def test_a_malformed_recipients_file_is_refused_naming_the_entry_and_the_field(tmp_path, change, message):
    from backoffice.services.provision import RECIPIENTS_PATH, RecipientsError, load_recipients

    document = json.loads(RECIPIENTS_PATH.read_text(encoding="utf-8"))
    change(document["recipients"])
    path = tmp_path / "recipients.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(RecipientsError) as refused:
        load_recipients(path)
    assert message in str(refused.value)


# -- send ------------------------------------------------------------------------------------------


def test_send_to_the_prefecture_strips_unlisted_items_and_records_the_provision_with_its_legal_basis(
        bridged, peers, peer_keys):
    resident_id = add_resident(bridged)
    data = {**PERSON, **MOVE, "memo": "窓口で確認済み"}
    record = provide(bridged, recipient_id="prefecture", message_type="identity.update", data=data,
                     reason="case 12 approved: 転出", resident_id=resident_id)

    sent = ["juminhyo_code", "name", "birth_date", "sex", "address", "my_number", "change_reason", "change_date"]
    assert json.loads(record.items_sent) == sent
    assert record.legal_basis == "住民基本台帳法第30条の6（市町村長から都道府県知事への本人確認情報の通知等）"
    assert (record.recipient_id, record.message_type, record.resident_id, record.created_by) == (
        "prefecture", "identity.update", resident_id, "system")
    withheld = sorted(set(data) - set(sent))
    assert json.loads(record.detail) == {"party": prefecture.PARTY, "queue": "outbound:prefecture",
                                         "kind": "provision", "withheld": withheld}
    # The message carries exactly the listed items, values untouched; only ciphertext is stored.
    [row] = bridged.rows(bridged.bo_app, "outbox")
    assert (row.id, row.recipient, row.queue, row.message_type) == (
        record.message_id, prefecture.PARTY, "outbound:prefecture", "identity.update")
    assert not any(value in row.envelope for value in PERSONAL_VALUES)
    opened = open_as(peer_keys, prefecture.PARTY, row.envelope, "identity.update")
    assert opened.payload == {"items": {name: data[name] for name in sent}}
    assert opened.sender == BO_PARTY
    # The operation log names the items and the basis, never a value.
    [audited] = bridged.audit_actions(bridged.bo_app, "provision.send")
    detail = json.loads(audited.detail)
    assert (detail["recipient"], detail["items_sent"], detail["withheld"]) == ("prefecture", sent, withheld)
    assert detail["legal_basis"] == record.legal_basis
    assert not any(value in audited.detail for value in PERSONAL_VALUES)

    # The prefecture receives it, stores it, and its ack marks the back office's outbox row acknowledged.
    assert bridged.relay(bridged.bo_app) == 1
    peers.work("prefecture")
    [got] = peers.store("prefecture").received()
    assert (got.message_id, got.message_type, got.sender, got.party) == (
        record.message_id, "identity.update", BO_PARTY, prefecture.PARTY)
    assert sorted(got.items) == sorted(sent) and got.payload == opened.payload  # the envelope's JSON sorts keys
    assert ack_count(bridged) == 1
    bridged.run_burst("backoffice", ACK_QUEUE, cli=True)
    [row] = bridged.rows(bridged.bo_app, "outbox")
    assert row.state == ACKNOWLEDGED and row.acknowledged_at is not None
    assert bridged.rows(bridged.bo_app, "dead") == []


@pytest.mark.parametrize(("changes", "field"), [
    ({"recipient_id": "dept:police"}, "recipient_id"),
    ({"recipient_id": "Prefecture"}, "recipient_id"),
    ({"message_type": "card.revocation"}, "message_type"),
    ({"recipient_id": "dept:school", "message_type": "identity.update"}, "message_type"),
    ({"data": {"household_number": "H000004242", "memo": "x"}}, "data"),
    ({"data": {**PERSON, **MOVE, "name": {"family": "宮沢"}}}, "data.name"),
    ({"data": {**PERSON, **MOVE, "birth_date": dt.date(1980, 4, 1)}}, "data.birth_date"),
    ({"reason": "  "}, "reason"),
    ({"resident_id": 10**9}, "resident_id"),
])
def test_a_provision_the_data_file_does_not_allow_is_refused_naming_the_field_and_writes_nothing(
        bo_app, bo_session, changes, field):
    from backoffice.models import AuditLog, Outbox, ProvisionRecord
    from backoffice.services.provision import ProvisionRefused, send

    arguments = {"recipient_id": "prefecture", "message_type": "identity.update", "data": {**PERSON, **MOVE},
                 "reason": "case 12 approved", "resident_id": None, **changes}
    with pytest.raises(ProvisionRefused) as refused:
        send(bo_session, **arguments)
    assert refused.value.field == field
    assert not any(value in str(refused.value) for value in PERSONAL_VALUES)
    bo_session.commit()  # whatever the call left in the session: nothing
    for model in (Outbox, ProvisionRecord):
        assert bo_session.scalar(select(func.count()).select_from(model)) == 0
    assert bo_session.scalar(select(func.count()).where(AuditLog.action == "provision.send")) == 0


def test_a_department_never_receives_the_my_number_unless_its_entry_lists_it(bridged, peers, peer_keys):
    from backoffice.services.provision import TRANSFER, load_recipients

    listed = [r for r in load_recipients().by_id.values() if r.kind == TRANSFER]
    assert {r.party for r in listed} == set(departments.PARTIES)
    # Pinned: the assessment lists the My Number for these transfers only (移転先6, 10, 17).
    assert {r.id for r in listed if "my_number" in r.items} == {"dept:tax", "dept:nhi", "dept:child_allowance"}
    records = {r.id: provide(bridged, recipient_id=r.id, message_type="dept.notice.move_out",
                             data={**PERSON, **MOVE}) for r in listed}
    outbox = {row.id: row for row in bridged.rows(bridged.bo_app, "outbox")}
    for recipient in listed:
        record = records[recipient.id]
        opened = open_as(peer_keys, recipient.party, outbox[record.message_id].envelope, "dept.notice.move_out")
        receives = "my_number" in recipient.items
        assert ("my_number" in opened.payload["items"]) is receives, recipient.id
        assert ("my_number" in json.loads(record.items_sent)) is receives
        assert ("my_number" in json.loads(record.detail)["withheld"]) is not receives
        assert set(opened.payload["items"]) == set(recipient.items) & ({**PERSON, **MOVE}.keys())

    assert bridged.relay(bridged.bo_app) == len(listed)
    peers.work("departments")
    by_party = {m.party: m for m in peers.store("departments").received()}
    assert set(by_party) == set(departments.PARTIES)  # one receiver, each department its own party and queue
    for recipient in listed:
        got = by_party[recipient.party]
        assert got.message_id == records[recipient.id].message_id
        assert ("my_number" in got.items) is ("my_number" in recipient.items)
        if "my_number" not in recipient.items:
            assert MY_NUMBER not in json.dumps(got.payload)


# -- the peers -------------------------------------------------------------------------------------


def test_a_peer_refuses_an_unknown_sender_an_envelope_for_another_party_and_a_tampered_one_and_stores_nothing(
        bridged, peers, peer_keys):
    office = KeyRegistry.from_config({"BRIDGE_KEY_DIRECTORY": str(peer_keys)}, party=BO_PARTY)
    # Kitakami's back office exists, but the prefecture has no key registered for it.
    stranger = KeyRegistry.generate("muni:032069").with_public(prefecture.PARTY, office.public(prefecture.PARTY))
    payload = {"items": {"juminhyo_code": CODE, "name": NAME, "change_reason": "転出", "change_date": "2026-12-01"}}

    def sealed(keys: KeyRegistry, recipient: str = prefecture.PARTY) -> tuple[str, str]:
        message = seal(payload, message_type="identity.update", sender=keys.party, recipient=recipient, keys=keys)
        return message.message_id, message.token

    tampered_id, token = sealed(office)
    head, key, iv, ciphertext, tag = token.split(".")
    bad = {
        "unknown_sender": sealed(stranger),
        "wrong_recipient": sealed(office, recipient=jlis.PARTY),  # sealed for J-LIS, put on the prefecture's queue
        "bad_ciphertext": (tampered_id, ".".join([head, key, iv, ciphertext[::-1], tag])),
    }
    for message_id, envelope in bad.values():
        enqueue(bridged, "outbound:prefecture", message_id, envelope)
    log = peers.work("prefecture")

    store = peers.store("prefecture")
    assert store.received() == []
    refusals = {r.reason: r for r in store.refusals()}
    assert set(refusals) == set(bad)
    assert {r.message_id for r in refusals.values()} == {message_id for message_id, _ in bad.values()}
    assert refusals["unknown_sender"].claimed_sender == "muni:032069"  # as claimed, for whoever investigates
    assert refusals["wrong_recipient"].party == prefecture.PARTY
    assert ack_count(bridged) == 0  # nothing refused is acknowledged
    assert not any(value in log for value in PERSONAL_VALUES)
    # The same refusal again (the sender republishing) adds no second row.
    enqueue(bridged, "outbound:prefecture", *bad["unknown_sender"], job_id=secrets.token_hex(8))
    peers.work("prefecture")
    assert len(store.refusals()) == len(bad)


def test_a_peer_refuses_a_payload_its_schema_does_not_define_naming_the_path_and_stores_nothing(
        bridged, peers, peer_keys):
    """A back office (buggy, or taken over) sending the prefecture an item the law does not give it is refused."""
    office = KeyRegistry.from_config({"BRIDGE_KEY_DIRECTORY": str(peer_keys)}, party=BO_PARTY)
    items = {"juminhyo_code": CODE, "name": NAME, "birth_date": "1980-04-01", "sex": "1", "address": ADDRESS,
             "my_number": MY_NUMBER, "change_reason": "転出", "change_date": "2026-12-01"}
    bad_code = CODE[:-1] + str((int(CODE[-1]) + 1) % 10)
    shapes = {
        "$.items.memo: additionalProperties": {"items": {**items, "memo": "窓口で確認済み"}},
        "$.items.juminhyo_code: format": {"items": {**items, "juminhyo_code": bad_code}},
        "$.items.change_date: required": {"items": {k: v for k, v in items.items() if k != "change_date"}},
    }
    sent = {}
    for path, payload in shapes.items():
        message = seal(payload, message_type="identity.update", sender=BO_PARTY, recipient=prefecture.PARTY,
                       keys=office)
        enqueue(bridged, "outbound:prefecture", message.message_id, message.token)
        sent[message.message_id] = path
    peers.work("prefecture")

    store = peers.store("prefecture")
    assert store.received() == []
    assert {r.message_id: (r.reason, r.detail) for r in store.refusals()} == {
        i: ("schema_invalid", path) for i, path in sent.items()}
    assert ack_count(bridged) == 0  # nothing refused is acknowledged
    assert not any(value in r.detail for r in store.refusals() for value in (*PERSONAL_VALUES, "窓口", bad_code))


def test_a_peer_stores_a_message_once_when_it_is_delivered_twice(bridged, peers):
    record = provide(bridged, recipient_id="municipality:standin", message_type="moveout.certificate",
                     data={**PERSON, **MOVE})
    assert bridged.relay(bridged.bo_app) == 1
    [row] = bridged.rows(bridged.bo_app, "outbox")
    # The same message again under another job id, as a republish after a lost ack puts it.
    enqueue(bridged, "outbound:muni-standin", row.id, row.envelope, job_id=secrets.token_hex(8))
    log = peers.work("standin")

    [got] = peers.store("standin").received()
    assert (got.message_id, got.message_type, got.party) == (record.message_id, "moveout.certificate", standin.PARTY)
    assert "duplicate suppressed" in log
    assert ack_count(bridged) == 2  # both deliveries are acknowledged
    bridged.run_burst("backoffice", ACK_QUEUE, cli=True)
    [row] = bridged.rows(bridged.bo_app, "outbox")
    assert row.state == ACKNOWLEDGED
    assert bridged.rows(bridged.bo_app, "dead") == []


def test_the_jlis_receiver_revokes_the_certificate_and_its_signature_is_then_refused_as_revoked(
        bridged, peers, jlis_config):
    simulator = open_simulator(jlis_config)
    card = simulator.issue_card(sample_holder(), card_expires_on=dt.date.today() + dt.timedelta(days=3650))
    assert card.sign is not None
    publish(jlis_config, simulator)
    trust = TrustConfig.from_files(origin=jlis_config["SITE_ORIGIN"], app_env="test",
                                   auth_anchors_pem=jlis_config["JPKI_AUTH_ANCHORS"],
                                   sign_anchors_pem=jlis_config["JPKI_SIGN_ANCHORS"],
                                   crl_directory=jlis_config["JPKI_CRL_DIRECTORY"])

    def verify() -> Any:
        nonce = base64.b64encode(secrets.token_bytes(32)).decode()
        jws = sign_application(card.sign.private_key, card.sign.certificate, aud=trust.origin, nonce=nonce,
                               application={"type": "tenshutsu"})
        now = dt.datetime.now(dt.UTC)
        consumed = ConsumedNonce(nonce, now - dt.timedelta(seconds=1), now + dt.timedelta(minutes=5))
        return verify_signed_application(jws, expected_nonce=consumed, expected_aud=trust.origin, trust=trust)

    assert verify().serial == card.sign.serial
    data = {"card_serial": str(card.sign.serial), "revocation_reason": "affiliationChanged"}
    record = provide(bridged, recipient_id="jlis", message_type="card.revocation", data={**data, "name": NAME},
                     reason="four basic items changed (転出)")
    assert json.loads(record.items_sent) == ["card_serial", "revocation_reason"]
    assert bridged.relay(bridged.bo_app) == 1
    peers.work("jlis")

    [got] = peers.store("jlis").received()
    assert got.payload == {"items": data}  # R13: exactly what the city sent, unedited
    with pytest.raises(SignedApplicationError) as refused:
        verify()
    assert (refused.value.code, refused.value.revocation_reason) == (RefusalCode.CERT_REVOKED, "affiliationChanged")
    assert simulator.certificate_record(card.sign.serial).revocation_reason == "affiliationChanged"
    bridged.run_burst("backoffice", ACK_QUEUE, cli=True)
    assert [r.state for r in bridged.rows(bridged.bo_app, "outbox")] == [ACKNOWLEDGED]


def test_a_revocation_of_a_certificate_jlis_never_issued_is_dead_lettered_not_stored(bridged, peers):
    provide(bridged, recipient_id="jlis", message_type="card.revocation",
            data={"card_serial": "1" * 40, "revocation_reason": "affiliationChanged"})
    assert bridged.relay(bridged.bo_app) == 1
    peers.work("jlis")

    store = peers.store("jlis")
    assert store.received() == []
    assert [r.reason for r in store.refusals()] == ["unknown_certificate"]
    assert ack_count(bridged) == 0  # unacknowledged: the back office keeps the row for an administrator


def test_each_peers_list_command_shows_the_item_names_and_no_personal_values_unless_asked(
        bridged, peers, monkeypatch, capsys):
    sends = {
        "prefecture": ("prefecture", "identity.update", prefecture.PARTY),
        "departments": ("dept:nhi", "dept.notice.move_in", "peer:dept:nhi"),
        "standin": ("municipality:standin", "movein.notice", standin.PARTY),
    }
    records = {name: provide(bridged, recipient_id=rid, message_type=mtype, data={**PERSON, **MOVE})
               for name, (rid, mtype, _party) in sends.items()}
    assert bridged.relay(bridged.bo_app) == len(sends)
    for name in sends:
        peers.work(name)

    for name, (_rid, message_type, party) in sends.items():
        result = peers.run(name, "list")
        assert result.returncode == 0, result.stderr
        [line] = result.stdout.splitlines()
        record = records[name]
        assert record.message_id in line and message_type in line and f"{BO_PARTY} -> {party}" in line
        assert line.endswith("items: " + ", ".join(sorted(json.loads(record.items_sent))))
        assert "JST" in line
        assert not any(value in result.stdout + result.stderr for value in PERSONAL_VALUES), name
        # With --show-values (in-process here), the values are printed for whoever may see them.
        monkeypatch.setenv("PEERS_DIRECTORY", str(peers.directory))
        assert run_cli(PEER_SPECS[name], ["list", "--show-values"]) == 0
        shown = capsys.readouterr().out
        assert NAME in shown and record.message_id in shown


# -- the provision record --------------------------------------------------------------------------


def test_a_provision_record_can_be_neither_changed_nor_deleted_on_postgresql(bo_app, bo_session):
    from backoffice.models import ProvisionRecord
    from core import clock

    bo_session.add(ProvisionRecord(recipient_id="prefecture", message_type="identity.update",
                                   message_id="00000000-0000-4000-8000-000000000000", resident_id=None,
                                   items_sent="[]", legal_basis="住民基本台帳法第30条の6", reason="test",
                                   detail="{}", created_at=clock.utcnow(), created_by="test"))
    bo_session.commit()
    for statement in ("UPDATE provision_record SET reason = 'changed'", "DELETE FROM provision_record"):
        with pytest.raises(DBAPIError, match="append-only"):
            bo_session.execute(text(statement))
        bo_session.rollback()
    assert bo_session.scalar(select(ProvisionRecord.reason)) == "test"


@pytest.fixture(autouse=True)
def _fresh_recipients() -> Iterator[None]:
    """Each test reads the data file as it is (load_recipients caches per path)."""
    from backoffice.services.provision import load_recipients

    load_recipients.cache_clear()
    yield
    load_recipients.cache_clear()
