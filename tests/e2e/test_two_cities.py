"""The national one-stop move between two back offices of this code (Hanamaki 032051 → Kitakami 032069).

Everything real: one portal served over HTTP, two back offices on their own PostgreSQL databases,
a private redis-server, and the three relays, the workers of both cities and the portal, and the
prefecture and department peers as processes. The resident uses the portal's JSON API with a
simulated card; clerks work through the workflow services; at the counter the card signs in on
the counter terminal and is verified as the portal verifies it before the clerk completes the 転入.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pyotp
import pytest
import requests
from cryptography import x509
from sqlalchemy import select
from werkzeug.serving import make_server

from backoffice.models import CardRecord, Case, CaseStatus, MoveoutCertificate, RecordStatus, Resident, Sex, Staff
from bridge.peers import departments, prefecture, standin
from bridge.peers.jlis.cardclient import build_auth_token, build_signed_application, sign_challenge
from bridge.peers.receiver import PeerStore
from core import clock
from core.envelope import KeyRegistry, import_public_key
from tests.bridge.conftest import RedisServer, kill_tree
from tests.conftest import SECRETS, _clean, create_pg_database, drop_pg_database, migrate, write_checkpoint_keys
from tests.e2e.conftest import for_leak_scan, leak_scan_instance
from tests.factories import make_household, make_resident
from tests.leakscan import Scanner, register_ledger, report
from tests.leakscan_plugin import keep_log
from tests.portal_fixtures import PASSWORD, PIN, _portal

ROOT = Path(__file__).resolve().parent.parent.parent
HANAMAKI, KITAKAMI = "032051", "032069"
PARTIES = ("portal", f"muni:{HANAMAKI}", f"muni:{KITAKAMI}", prefecture.PARTY, *departments.PARTIES, standin.PARTY,
           "peer:jlis")


class TwoCities:
    """The running system: the portal's origin, both back-office apps (in this process) and the processes."""

    def __init__(self, origin: str, portal: Any, cities: dict[str, Any], env: dict[str, str],
                 city_env: dict[str, dict[str, str]], tmp: Path) -> None:
        self.origin, self.portal, self.cities, self.env, self.city_env, self.tmp = origin, portal, cities, env, \
            city_env, tmp
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, label: str, *command: str, city: str | None = None) -> None:
        env = self.city_env[city] if city else self.env
        with open(self.tmp / "logs" / f"{label}.log", "wb") as log:
            self.processes.append(subprocess.Popen([sys.executable, *command], cwd=ROOT, env=env, stdout=log,
                                                   stderr=subprocess.STDOUT, start_new_session=True))

    def wait(self, predicate: Any, what: str, timeout: float = 90) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.3)
        logs = "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-25:])
                         for p in sorted((self.tmp / "logs").glob("*.log")))
        raise AssertionError(f"timed out waiting for {what}\n{logs}")

    def query(self, code: str, fn: Any) -> Any:
        """Run ``fn(session)`` in a fresh app context of the city; returns its (detached) result."""
        from backoffice.extensions import db

        with self.cities[code].test_request_context("/"):
            try:
                result = fn(db.session)
                db.session.flush()
                db.session.expunge_all()  # detached as loaded, so the values stay readable after the commit
                db.session.commit()
                return result
            except BaseException:
                db.session.rollback()
                raise

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                kill_tree(process)
                process.wait(10)


@pytest.fixture
def two_cities(portal_db_url: str, backoffice_db_url: str, jlis_config: dict[str, str], tmp_path: Path,
               session_dir: Path) -> Iterator[TwoCities]:
    """One portal, Hanamaki and Kitakami, Redis, relays, workers and peers, all on this machine."""
    from backoffice import create_app
    from backoffice.models import Base

    with ExitStack() as cleanup:
        kitakami_url = create_pg_database("kitakami_e2e")
        cleanup.callback(drop_pg_database, kitakami_url)
        migrate(create_app, {"APP_ENV": "test", "BACKOFFICE_DATABASE_URL": kitakami_url,
                             "MUNICIPALITY_CODE": KITAKAMI, **SECRETS})
        redis_server = RedisServer(tmp_path)
        cleanup.callback(redis_server.stop)
        redis_server.start()
        keys = tmp_path / "keys"
        for party in PARTIES:
            import_public_key(keys, party, KeyRegistry.from_config({"BRIDGE_KEY_DIRECTORY": str(keys)},
                                                                   party=party).public_pem())
        instance = tmp_path / "instance"
        instance.mkdir()
        write_checkpoint_keys(instance / "audit-checkpoint-ed25519.pem")
        (tmp_path / "logs").mkdir()
        server = make_server("127.0.0.1", 0, None, threaded=True)  # type: ignore[arg-type]
        origin = f"http://127.0.0.1:{server.server_port}"
        common = {"REDIS_URL": redis_server.url, "BRIDGE_KEY_DIRECTORY": str(keys), "SITE_ORIGIN": origin}
        portal = _portal(portal_db_url, jlis_config, tmp_path, session_dir, **common,
                         AUDIT_CHECKPOINT_PATH=str(instance / "audit-checkpoints-portal.jsonl"))
        cleanup.callback(portal.extensions["engine"].dispose)
        server.app = portal  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        cleanup.callback(server.shutdown)
        cities, city_env = {}, {}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "BRIDGE_"))}
        env.update({**SECRETS, **jlis_config, **common, "APP_ENV": "test", "PORTAL_DATABASE_URL": portal_db_url,
                    "INSTANCE_PATH": str(instance), "PEERS_DIRECTORY": str(tmp_path / "peers"),
                    "PYTHONUNBUFFERED": "1", "BRIDGE_RELAY_INTERVAL_SECONDS": "0.5"})
        cities_urls = {HANAMAKI: backoffice_db_url, KITAKAMI: kitakami_url}
        for code, url in cities_urls.items():
            app = create_app({**jlis_config, **SECRETS, **common, "MUNICIPALITY_CODE": code,
                              "BACKOFFICE_DATABASE_URL": url, "CARD_FILE_ITERATIONS": 1000,
                              "AUDIT_CHECKPOINT_PATH": str(instance / f"audit-checkpoints-{code}.jsonl"),
                              "AUDIT_CHECKPOINT_KEY_PATH": str(instance / "audit-checkpoint-ed25519.pem")})
            cleanup.callback(app.extensions["engine"].dispose)
            _clean(app.extensions["engine"], Base.metadata)
            cities[code] = app
            city_env[code] = {**env, "MUNICIPALITY_CODE": code, "BACKOFFICE_DATABASE_URL": url}
        system = TwoCities(origin, portal, cities, env, city_env, tmp_path)
        cleanup.callback(system.stop)
        flask = ("-m", "flask", "--app")
        system.start("relay-portal", *flask, "wsgi:portal_app", "relay")
        system.start("worker-status", *flask, "wsgi:portal_app", "worker", "--queue", "status")
        for code in (HANAMAKI, KITAKAMI):
            system.start(f"relay-{code}", *flask, "wsgi:backoffice_app", "relay", city=code)
            for queue in (f"intake:{code}", f"muni:{code}"):
                system.start(f"worker-{queue.replace(':', '-')}", *flask, "wsgi:backoffice_app", "worker", "--queue",
                             queue, city=code)
        system.start("peer-prefecture", "-m", "bridge.peers.prefecture", "worker")
        system.start("peer-departments", "-m", "bridge.peers.departments", "worker")
        system.start("peer-jlis", "-m", "bridge.peers.jlis.receiver", "worker")
        yield system
        system.stop()
        for log in sorted((tmp_path / "logs").glob("*.log")):
            keep_log(log, f"two-cities-{log.stem}")  # scanned with the run's logs at its end
        # Residents the move created at Kitakami (and anyone else in either ledger) are looked for too.
        for url in cities_urls.values():
            register_ledger(url)
        scanner = Scanner()
        client = redis_server.client()
        findings = scanner.redis(client, "redis")
        client.close()
        for where, url in (("portal", portal_db_url), *((f"backoffice-{c}", u) for c, u in cities_urls.items())):
            findings += scanner.database(url, where)
        assert not findings, report(findings)


def _crl_lists(directory: Path, serial: int) -> bool:
    """Whether a CRL published in ``directory`` lists ``serial`` as revoked."""
    for path in directory.glob("*.crl"):
        try:
            crl = x509.load_der_x509_crl(path.read_bytes())
        except (OSError, ValueError):
            continue  # being replaced right now
        if crl.get_revoked_certificate_by_serial_number(serial) is not None:
            return True
    return False


def _serial(card: Path, slot: str) -> int:
    return x509.load_der_x509_certificate(base64.b64decode(json.loads(card.read_text())[slot]["cert"])).serial_number


def _staff(system: TwoCities, code: str, login: str, *roles: str) -> tuple[int, str]:
    from backoffice.services import staff as staff_service

    def add(session: Any) -> tuple[int, str]:
        staff, secret = staff_service.add_staff(session, login_id=login, name=f"職員 {login}",
                                                password="correct horse battery", roles=list(roles))
        session.flush()
        return staff.id, secret
    return system.query(code, add)  # type: ignore[no-any-return]


def _step(system: TwoCities, code: str, fn: Any) -> Any:
    """One workflow step in one transaction; returns the CaseError if it was refused."""
    from backoffice.services.cases import CaseError

    try:
        system.query(code, fn)
    except CaseError as refused:
        return refused
    return None


def _fresh_code(secret: str, used: dict[str, set[int]]) -> str:
    """A TOTP code of a 30-second step this person has not used yet (a code is accepted once per person)."""
    while (step := int(time.time()) // 30) in used.setdefault(secret, set()):
        time.sleep(0.5)
    used[secret].add(step)
    return pyotp.TOTP(secret).now()


def _application(movers: list[dict[str, Any]]) -> dict[str, Any]:
    from portal.services.applications import next_business_day

    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=9))).date()
    move_date = today + dt.timedelta(days=3)
    return {"type": "move", "fromMunicipalityCode": HANAMAKI, "moveDate": move_date.isoformat(),
            "destination": {"kind": "elsewhere", "municipalityCode": KITAKAMI, "postalCode": "0240061",
                            "prefecture": "岩手県", "municipality": "北上市", "address": "大通り1-3-1"},
            "movers": movers, "newHouseholder": movers[0]["name"],
            "contactPhone": "0198-24-2111",
            "visitDate": next_business_day(max(move_date, next_business_day(today)) - dt.timedelta(days=1)).isoformat()}


def test_a_hanamaki_family_moves_to_kitakami_end_to_end(two_cities: TwoCities, jlis_config: dict[str, str]) -> None:
    from backoffice.services import cards, cases, records

    system = two_cities
    started = time.monotonic()
    hanamaki, kitakami = system.cities[HANAMAKI], system.cities[KITAKAMI]

    # -- a household of two in Hanamaki; the householder holds a card --------------------------------
    def family(session: Any) -> dict[str, Any]:
        household = make_household(session, householder_name="宮沢　賢")
        head = make_resident(session, hanamaki.config, household=household, name="宮沢　賢",
                             name_kana="ミヤザワ　ケン", birth_date=dt.date(1990, 8, 27))
        wife = make_resident(session, hanamaki.config, household=household, name="宮沢　トシ",
                             name_kana="ミヤザワ　トシ", birth_date=dt.date(1992, 11, 27),
                             relationship_to_head="妻", is_householder=False, banchi=head.banchi, sex=Sex.FEMALE,
                             # A foreign resident (第30条の45): her items travel in the 転出証明書情報.
                             nationality="ベトナム", residence_status="日本人の配偶者等",
                             alphabet_name="NGUYEN THI TOSHI", foreign_resident_category="中長期在留者",
                             residence_period_years=3,
                             residence_expiry=dt.date(2028, 3, 31), became_foreign_resident_on=dt.date(2019, 4, 1),
                             became_foreign_resident_reason="国外転入")
        records.set_residence_card_number(wife, "AB12345678CD")
        _record, card_file = cards.issue_card(session, resident_code=head.juminhyo_code, pin=PIN, password=PASSWORD,
                                              issued_by="clerk1", iterations=1000)
        return {"head": head.id, "wife": wife.id, "code": head.juminhyo_code, "card": card_file}
    people = system.query(HANAMAKI, family)
    card = system.tmp / "card.json"
    card.write_bytes(people["card"])

    # -- the resident signs in on the portal's API and sends 転出届 + 転入予約 with one signature --------
    api = system.origin + "/api/v1"
    nonce = requests.post(f"{api}/auth/challenge", timeout=10).json()["nonce"]
    token = build_auth_token(card, PIN, origin=system.origin, nonce=nonce)
    issued = requests.post(f"{api}/auth/token", json={"authToken": token, "nonce": nonce}, timeout=30)
    assert issued.status_code == 200, issued.text
    bearer = {"Authorization": "Bearer " + issued.json()["access_token"]}
    link = requests.post(f"{api}/identity/challenge", headers=bearer, timeout=10).json()
    jws = build_signed_application(card, PASSWORD, aud=link["aud"], nonce=link["nonce"],
                                   application=link["application"])
    assert requests.post(f"{api}/identity", headers=bearer, json={"signedApplication": jws, "nonce": link["nonce"]},
                         timeout=30).status_code == 200

    def send(application: dict[str, Any]) -> requests.Response:
        challenge = requests.post(f"{api}/applications/challenge", headers=bearer, timeout=10,
                                  json={"application": application}).json()
        signed = sign_challenge(card, PASSWORD, challenge, application)
        return requests.post(f"{api}/applications", headers=bearer, timeout=30,
                             json={"signed_application": signed, "nonce": challenge["nonce"]})

    movers = [{"name": "宮沢　賢", "kana": "ミヤザワ　ケン", "birthDate": "1990-08-27", "relationship": "本人",
               "keepsCard": True},
              {"name": "宮沢　トシ", "kana": "ミヤザワ　トシ", "birthDate": "1992-11-27", "relationship": "妻",
               "keepsCard": True}]
    application = _application(movers)
    sent = send(application)
    assert sent.status_code == 202, sent.text
    parts = {p["kind"]: p["receipt_number"] for p in sent.json()["parts"]}
    assert set(parts) == {"move_out", "move_in_reservation"}

    def case_of(code: str, receipt: str) -> Any:
        return system.query(code, lambda s: s.execute(select(Case).where(Case.receipt_number == receipt))
                            .scalar_one_or_none())
    out_case = system.wait(lambda: case_of(HANAMAKI, parts["move_out"]), "the 転出届 at Hanamaki")
    in_case = system.wait(lambda: case_of(KITAKAMI, parts["move_in_reservation"]), "the 転入予約 at Kitakami")
    assert out_case.status is CaseStatus.RECEIVED and in_case.status is CaseStatus.RECEIVED

    # -- Hanamaki: clerk A confirms; A cannot approve; B approves only with a fresh second factor ------
    a_id, a_secret = _staff(system, HANAMAKI, "clerk_a", "clerk", "approver")
    b_id, b_secret = _staff(system, HANAMAKI, "approver_b", "approver")
    used: dict[str, set[int]] = {}
    assert _step(system, HANAMAKI, lambda s: cases.confirm(s, out_case.id, by=s.get(Staff, a_id))) is None
    refused = _step(system, HANAMAKI, lambda s: cases.approve(s, out_case.id, by=s.get(Staff, a_id),
                                                              totp_code=_fresh_code(a_secret, used)))
    assert refused is not None and refused.code == "same_person"
    refused = _step(system, HANAMAKI, lambda s: cases.approve(s, out_case.id, by=s.get(Staff, b_id),
                                                              totp_code="000000"))
    assert refused is not None and refused.field == "totp_code"
    assert _step(system, HANAMAKI, lambda s: cases.approve(s, out_case.id, by=s.get(Staff, b_id),
                                                           totp_code=_fresh_code(b_secret, used))) is None
    head = system.query(HANAMAKI, lambda s: s.get(Resident, people["head"]))
    # 消除 as of the planned date: a 除票 with the 転出予定地, awaiting the 転出確定.
    assert head.status is RecordStatus.REMOVED and head.planned_moveout_address == "岩手県北上市大通り1-3-1"
    assert head.confirmed_moveout_address is None

    # -- Kitakami: the 転出証明書情報 arrives and is matched with the reservation ------------------------
    def matched(session: Any) -> bool:
        rows = session.execute(select(MoveoutCertificate)).scalars().all()
        return len(rows) == 2 and all(r.case_id == in_case.id for r in rows)
    system.wait(lambda: system.query(KITAKAMI, matched), "the 転出証明書情報 matched at Kitakami")
    c_id, _ = _staff(system, KITAKAMI, "clerk_c", "clerk")
    d_id, d_secret = _staff(system, KITAKAMI, "approver_d", "approver")
    assert _step(system, KITAKAMI, lambda s: cases.confirm(s, in_case.id, by=s.get(Staff, c_id))) is None
    assert _step(system, KITAKAMI, lambda s: cases.approve(s, in_case.id, by=s.get(Staff, d_id),
                                                           totp_code=_fresh_code(d_secret, used))) is None
    assert "moveout_certificate_matched" in case_of(KITAKAMI, parts["move_in_reservation"]).findings

    # -- the counter visit: the card signs in at the counter terminal, the clerk completes the 転入 -----
    from backoffice.services import counter, terminals

    terminal_id = system.query(KITAKAMI, lambda s: terminals.add_terminal(s, name="kitakami-counter")[0].id)
    with kitakami.test_request_context("/"):
        challenge = counter.nonces().issue().nonce
    # The card signs in on the counter's page at Kitakami's own origin (a token for the portal's is refused there).
    signed_in = build_auth_token(card, PIN, origin=kitakami.config["COUNTER_ORIGIN"], nonce=challenge)

    def counter_visit(session: Any) -> list[int]:
        case = session.get(Case, in_case.id)
        visit = counter.check_visit(session, case, token=signed_in, nonce=challenge, staff_id=c_id,
                                    terminal_id=terminal_id)
        assert visit.cert_serial == str(_serial(card, "auth"))
        return [r.id for r in counter.complete_move_in(session, case, by=session.get(Staff, c_id), visit=visit,
                                                       moved_on=clock.today_jst())]
    created = system.query(KITAKAMI, counter_visit)
    new_head, new_wife = (system.query(KITAKAMI, lambda s, i=i: s.get(Resident, i)) for i in created)
    assert (new_head.name, new_head.juminhyo_code, new_head.machiaza_code, new_head.banchi) == (
        "宮沢　賢", people["code"], "0320690045", "3-1")
    assert new_head.became_resident_reason.value == "転入" and new_head.previous_address.startswith("岩手県花巻市")
    assert new_wife.household_id == new_head.household_id
    assert (new_wife.nationality, new_wife.foreign_resident_category, new_wife.residence_status,
            new_wife.residence_period_years, new_wife.residence_expiry, new_wife.became_foreign_resident_on) == (
        "ベトナム", "中長期在留者", "日本人の配偶者等", 3, dt.date(2028, 3, 31), dt.date(2019, 4, 1))
    assert system.query(KITAKAMI, lambda s: records.residence_card_number(s.get(Resident, new_wife.id))) == \
        "AB12345678CD"
    # 継続利用: the head's card, checked with its PIN at the counter, is now in Kitakami's ledger.
    kept = system.query(KITAKAMI, lambda s: s.execute(select(CardRecord)).scalar_one())
    assert (kept.resident_id, kept.transferred_from, kept.continued_on) == (new_head.id, HANAMAKI, clock.today_jst())

    # -- Hanamaki: the 転入通知 arrives; 転出確定 on both 除票 ------------------------------------------------
    def removed(session: Any) -> bool:
        return all(session.get(Resident, i).confirmed_moveout_address for i in (people["head"], people["wife"]))
    system.wait(lambda: system.query(HANAMAKI, removed), "the 転出確定 at Hanamaki")
    old_head = system.query(HANAMAKI, lambda s: s.get(Resident, people["head"]))
    assert old_head.removal_reason.value == "転出" and old_head.confirmed_moveout_address.startswith("岩手県北上市")
    assert case_of(HANAMAKI, parts["move_out"]).status is CaseStatus.COMPLETED
    # The 転入通知 named the card: Hanamaki marks it as kept by Kitakami now.
    assert system.query(HANAMAKI, lambda s: s.execute(select(CardRecord.transferred_to).where(
        CardRecord.card_number == kept.card_number)).scalar_one()) == KITAKAMI
    # Ledger enquiry: Hanamaki still finds the person, as a 除票; Kitakami finds the current record.
    from backoffice.services.ledger import SearchCriteria, search

    criteria = SearchCriteria(name="宮沢　賢", birth_date=dt.date(1990, 8, 27))
    assert [r.status for r in system.query(HANAMAKI, lambda s: search(s, criteria).residents)] == [
        RecordStatus.REMOVED]
    assert [r.status for r in system.query(KITAKAMI, lambda s: search(s, criteria).residents)] == [
        RecordStatus.CURRENT]

    # -- the prefecture holds both cities' updates; the departments got their notices and nothing else --
    peers = system.tmp / "peers"

    def prefecture_updates() -> list[Any]:
        path = peers / "prefecture.db"
        return PeerStore(path).received() if path.exists() else []
    updates = system.wait(lambda: len(got := prefecture_updates()) == 6 and got, "six identity updates")
    assert sorted((u.sender, u.payload["items"]["change_reason"]) for u in updates) == [
        (f"muni:{HANAMAKI}", "転出")] * 4 + [(f"muni:{KITAKAMI}", "転入")] * 2
    assert {u.payload["items"]["juminhyo_code"] for u in updates if u.sender == f"muni:{KITAKAMI}"} == {
        people["code"], new_wife.juminhyo_code}
    from backoffice.services.provision import load_recipients

    recipients = load_recipients()
    by_party = {r.party: r for r in recipients.by_id.values()}
    # Tax and pension (ages 20-59) for both, on the way out and on the way in; no other department.
    expected = sorted([(f"peer:dept:{d}", f"muni:{c}", f"dept.notice.{e}") for c, e in
                       ((HANAMAKI, "move_out"), (KITAKAMI, "move_in")) for d in ("tax", "pension")] * 2)

    def department_notices() -> list[Any]:
        path = peers / "departments.db"
        return PeerStore(path).received() if path.exists() else []
    notices = system.wait(lambda: len(got := department_notices()) == len(expected) and got, "the department notices")
    assert sorted((n.party, n.sender, n.message_type) for n in notices) == expected
    for notice in notices:
        assert set(notice.items) <= set(by_party[notice.party].items), notice.party
    assert all("my_number" not in n.items for n in notices if n.party == "peer:dept:pension")

    # -- J-LIS revoked the signature certificate: the portal refuses it for a new signature ------------
    from bridge.peers.jlis.service import open_simulator

    # Sent by Kitakami with the 転入 (its outbox), relayed, and applied by the J-LIS peer's worker.
    record = system.wait(lambda: (r := open_simulator(jlis_config).certificate_record(_serial(card, "sign")))
                         .revocation_reason is not None and r, "J-LIS revoking the signature certificate")
    assert record.revocation_reason.value == "affiliationChanged"
    # J-LIS records the revocation, then publishes its CRLs: the portal reads the CRL, so wait for that too.
    system.wait(lambda: _crl_lists(Path(jlis_config["JPKI_CRL_DIRECTORY"]), _serial(card, "sign")),
                "the CRL listing the revoked signature certificate")
    again = send(application)
    assert again.status_code == 400 and again.json()["error"] == "signature_refused"

    # -- My applications shows every step of both parts ----------------------------------------------
    def history() -> dict[str, list[str]] | None:
        listed = requests.get(f"{api}/applications", headers=bearer, timeout=10).json()["applications"]
        steps = {a["kind"]: [h["status"] for h in a["history"]] for a in listed}
        return steps if all(s and s[-1] == "completed" for s in steps.values()) else None
    steps = system.wait(history, "both parts completed on My applications")
    assert steps == {"move_out": ["submitted", "received", "in_review", "approved", "completed"],
                     "move_in_reservation": ["submitted", "received", "in_review", "approved", "completed"]}

    # -- both operation logs verify ------------------------------------------------------------------
    for code in (HANAMAKI, KITAKAMI):
        result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi:backoffice_app", "audit", "verify"],
                                cwd=ROOT, env=system.city_env[code], capture_output=True, text=True, timeout=120)
        keep_log(result.stdout + result.stderr, f"two-cities-audit-verify-{code}")
        assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 180


def seed_counter_case(directory: str) -> None:
    """Run in a city's own process, configured as the two-city run configures it: a resident with a card and
    an approved 転居予約 waiting at the counter. Prints the case id."""
    from backoffice import create_app
    from backoffice.extensions import db
    from backoffice.services import cards
    from tests.backoffice.test_counter import HEAD, approved_case, in_city_application

    app = create_app()
    with app.test_request_context("/"):
        household = make_household(db.session, householder_name=HEAD[0])
        head = make_resident(db.session, app.config, household=household, name=HEAD[0], name_kana=HEAD[1],
                             birth_date=dt.date.fromisoformat(HEAD[2]))
        _record, data = cards.issue_card(db.session, resident_code=head.juminhyo_code, pin=PIN, password=PASSWORD,
                                         issued_by="clerk0", iterations=1000)
        db.session.commit()
    card = Path(directory) / f"card-{app.config['MUNICIPALITY_CODE']}.json"
    card.write_bytes(data)
    print(approved_case(app, card, in_city_application(app, [HEAD])))


def _counter_check_in_the_browser(page: Any, base: str, demo: str, case_id: int, card: Path, database: Path) -> None:
    """The demo clerk enrolls the browser and signs in; the card signs in at the counter; the 転居 is completed."""
    import re
    import sqlite3

    from playwright.sync_api import expect

    code = re.search(r"enrollment code: (\S+)", demo).group(1)  # type: ignore[union-attr]
    password, secret = re.search(r"clerk1\s+password (\S+)\s+TOTP secret (\S+)", demo).groups()  # type: ignore[union-attr]
    page.goto(base + "/terminal/enroll")
    page.get_by_label("登録コード").fill(code)
    page.get_by_role("button", name="登録する").click()
    page.get_by_label("ログインID").fill("clerk1")
    page.get_by_label("パスワード").fill(password)
    page.get_by_label("ワンタイムコード").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="サインイン").click()
    expect(page.locator(".who")).to_contain_text("窓口 一郎")
    page.goto(f"{base}/counter/{case_id}")
    page.get_by_label("カード", exact=True).set_input_files(str(card))
    page.get_by_label("暗証番号（数字4桁）").fill(PIN)
    page.get_by_role("button", name="カードを確認する").click()
    try:
        expect(page.locator("#visit")).to_contain_text("確認しました", timeout=30_000)
    except AssertionError:
        with sqlite3.connect(database) as ledger:
            visits = ledger.execute("SELECT result, reason FROM counter_visit ORDER BY id").fetchall()
        status = page.locator("#card-status").inner_text()
        raise AssertionError(f"the card check at {base} was refused: {status!r}, stored visits {visits}") from None
    page.get_by_label("住み始めた日").fill(clock.today_jst().isoformat())  # the day the resident states
    page.get_by_role("button", name="転居を完了する").click()
    expect(page.locator("div.notice-success[role=status]")).to_contain_text("転居が完了しました")


@pytest.mark.browser
def test_the_two_city_run_serves_both_back_offices_with_their_bridge_and_the_peers_and_stops_cleanly(tmp_path, page):
    """`make run-two-cities` as documented: SQLite, embedded Redis, Kitakami's back office on the next port; a
    resident's card is checked in Chromium at each city's counter, each back office on its own origin."""
    import urllib.error
    import urllib.request

    from tests.e2e.conftest import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PORTAL_DATABASE_URL", "BACKOFFICE_DATABASE_URL", "REDIS_URL", "APP_ENV", "INSTANCE_PATH")}
    env.update(INSTANCE_PATH=str(tmp_path / "instance"), PORT=str(port), APP_ENV="development",
               SITE_ORIGIN=f"http://127.0.0.1:{port}")

    def flask(*args: str, code: str = HANAMAKI, app: str = "wsgi:backoffice_app") -> str:
        result = subprocess.run([sys.executable, "-m", "flask", "--app", app, *args], cwd=ROOT, timeout=300,
                                env={**env, "MUNICIPALITY_CODE": code}, capture_output=True)
        keep_log(for_leak_scan(result.stdout + result.stderr), f"two-cities-run-{code}-{args[0]}")
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        return result.stdout.decode()
    flask("db", "upgrade", app="wsgi:portal_app")
    demo, cases = {}, {}
    for code in (HANAMAKI, KITAKAMI):
        flask("db", "upgrade", code=code)
        demo[code] = flask("demo", "--residents", "30", code=code)
        # The demo filled the ledger in another process: the leak scan looks for its residents from now on.
        assert register_ledger(f"sqlite:///{tmp_path / 'instance' / f'backoffice-{code}.db'}") == 30
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        run = subprocess.Popen([sys.executable, "-m", "scripts.run", "--two-cities"], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT)

    def status(url: str) -> int | None:
        try:
            return int(urllib.request.urlopen(url, timeout=2).status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError:
            return None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (status(f"http://127.0.0.1:{port}/") != 200
                                               or status(f"http://127.0.0.1:{port + 1}/sign-in") is None):
            time.sleep(0.5)
        assert status(f"http://127.0.0.1:{port}/") == 200
        # Kitakami's back office answers, and like any back office refuses a browser that is not a terminal.
        assert status(f"http://127.0.0.1:{port + 1}/sign-in") == 403
        text = log_path.read_text()
        for started in ("worker of intake:032069", "worker of muni:032069", "relay of 032069", "peer prefecture",
                        "peer departments", "peer standin", "peer jlis.receiver", "worker of muni:032051"):
            assert f"started {started}" in text, started
        public = {p.name for p in (tmp_path / "instance" / "keys" / "public").iterdir()}
        assert {"muni:032051.pub.pem", "muni:032069.pub.pem", "peer:prefecture.pub.pem"} <= public
        for code in (HANAMAKI, KITAKAMI):
            # Each city's own resident with a card and an approved 転居予約, made with the run's configuration
            # (and the keys it registered: receiving the application tells the portal).
            seeded = subprocess.run([sys.executable, "-c", "import sys; from tests.e2e.test_two_cities import "
                                     "seed_counter_case; seed_counter_case(sys.argv[1])", str(tmp_path)],
                                    cwd=ROOT, env={**env, "MUNICIPALITY_CODE": code}, capture_output=True, timeout=300)
            keep_log(seeded.stdout + seeded.stderr, f"two-cities-run-{code}-counter-case")
            assert seeded.returncode == 0, seeded.stderr.decode(errors="replace")
            cases[code] = int(seeded.stdout.decode().split()[-1])
            assert register_ledger(f"sqlite:///{tmp_path / 'instance' / f'backoffice-{code}.db'}") == 31
        # Each back office at its own origin, as the run prints them; Hanamaki's old address leads there.
        assert f"Back office: http://localhost:{port}/backoffice/" in text
        assert f"Back office of {KITAKAMI}: http://127.0.0.1:{port + 1}/" in text
        page.goto(f"http://127.0.0.1:{port}/backoffice/terminal/enroll")
        assert page.url == f"http://localhost:{port}/backoffice/terminal/enroll"
        instance = tmp_path / "instance"
        bases = {HANAMAKI: f"http://localhost:{port}/backoffice", KITAKAMI: f"http://127.0.0.1:{port + 1}"}
        for code, base in bases.items():
            _counter_check_in_the_browser(page, base, demo[code], cases[code], tmp_path / f"card-{code}.json",
                                          instance / f"backoffice-{code}.db")
        findings = leak_scan_instance(tmp_path / "instance", log_path)
    finally:
        run.terminate()
        run.wait(60)
        keep_log(log_path, "make-run-two-cities")
    assert not findings, report(findings)
    assert "stopped 16 bridge process(es)" in log_path.read_text()  # 7 of make run, 5 of Kitakami, 4 peers
