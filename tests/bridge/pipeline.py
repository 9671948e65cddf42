"""Real applications end to end for the fault tests: residents with cards submit through the portal's API.

The count oracle of every fault test compares the applications the portal stored (each a receipt
shown to a resident) with the cases the back office made: exactly one case per application.
``consistency`` checks with SQL that no case lacks the rows written in its transaction.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

from tests.bridge.conftest import ROOT, Bridged
from tests.portal_fixtures import PASSWORD, PIN, Cards

CERTIFICATE = {"type": "certificate", "municipalityCode": "032051", "kind": "juminhyo", "persons": "self",
               "items": {"householder": False, "honseki": False, "juminhyoCode": False, "myNumber": False},
               "copies": 1, "purpose": "提出用", "delivery": "post"}
# Family names and given names of the test residents (each one registered with the leak scan by Cards.issue).
FAMILY = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤"]
GIVEN = ["一郎", "花子", "健太", "美咲", "大輔", "陽子", "翔", "由美", "拓也", "恵", "直樹", "彩", "誠", "舞", "亮",
         "真由美", "剛", "愛", "学", "沙織"]


class CardPool:
    """Cards issued once per test process and handed out to the tests that need residents (issuing is slow)."""

    def __init__(self, cards: Cards) -> None:
        self.cards = cards
        self.issued: list[Path] = []

    def take(self, count: int) -> list[Path]:
        """``count`` card files, each of a different holder living in 花巻市."""
        while len(self.issued) < count:
            n = len(self.issued)
            name = f"{FAMILY[n % len(FAMILY)]}　{GIVEN[(n // len(FAMILY)) % len(GIVEN)]}{'' if n < 200 else n}"
            self.issued.append(self.cards.issue(
                name=name, birth_date=dt.date(1950 + n % 50, 1 + n % 12, 1 + n % 28),
                address=f"岩手県花巻市大通り一丁目{n + 1}番{n % 9 + 1}号"))
        return self.issued[:count]


@dataclass
class Resident:
    """One signed-in, linked resident using the portal's JSON API with a test client (their own address)."""

    card: Path
    client: Any
    headers: dict[str, str]
    receipts: list[str] = field(default_factory=list)
    refusals: list[int] = field(default_factory=list)

    def submit(self, application: dict[str, Any] | None = None) -> Any:
        """Ask for a challenge, sign the application with the card and send it; keeps the receipt shown."""
        from bridge.peers.jlis.cardclient import sign_challenge

        application = application or CERTIFICATE
        challenge = self.client.post("/api/v1/applications/challenge", headers=self.headers,
                                     json={"application": application})
        if challenge.status_code != 200:
            self.refusals.append(challenge.status_code)
            return challenge
        body = challenge.get_json()
        jws = sign_challenge(self.card, PASSWORD, body, application)
        response = self.client.post("/api/v1/applications", headers=self.headers,
                                    json={"signed_application": jws, "nonce": body["nonce"]})
        if response.status_code == 202:
            self.receipts.extend(p["receipt_number"] for p in response.get_json()["parts"])
        else:
            self.refusals.append(response.status_code)
        return response


def sign_in(portal_app: Any, card: Path, *, address: str = "127.0.0.1") -> Resident:
    """Sign in with the card through the API and link the account to the card's four items."""
    from bridge.peers.jlis.cardclient import build_auth_token, build_signed_application

    client = portal_app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    origin = portal_app.config["SITE_ORIGIN"]
    nonce = client.post("/api/v1/auth/challenge").get_json()["nonce"]
    token = build_auth_token(card, PIN, origin=origin, nonce=nonce)
    response = client.post("/api/v1/auth/token", json={"authToken": token, "nonce": nonce})
    assert response.status_code == 200, response.get_data(as_text=True)
    headers = {"Authorization": f"Bearer {response.get_json()['access_token']}"}
    challenge = client.post("/api/v1/identity/challenge", headers=headers).get_json()
    jws = build_signed_application(card, PASSWORD, aud=challenge["aud"], nonce=challenge["nonce"],
                                   application=challenge["application"])
    linked = client.post("/api/v1/identity", headers=headers,
                         json={"signedApplication": jws, "nonce": challenge["nonce"]})
    assert linked.status_code == 200, linked.get_data(as_text=True)
    return Resident(card, client, headers)


def residents(bridged: Bridged, pool: CardPool, count: int) -> list[Resident]:
    """``count`` residents signed in from ``count`` different addresses."""
    return [sign_in(bridged.portal_app, card, address=f"10.0.{i // 200}.{i % 200 + 1}")
            for i, card in enumerate(pool.take(count))]


def submit_many(bridged: Bridged, pool: CardPool, count: int, *, per_resident: int = 10) -> list[str]:
    """``count`` certificate requests by ``count / per_resident`` residents; returns the receipts shown."""
    people = residents(bridged, pool, -(-count // per_resident))
    receipts: list[str] = []
    for i in range(count):
        person = people[i % len(people)]
        response = person.submit()
        assert response.status_code == 202, response.get_data(as_text=True)
        receipts.append(response.get_json()["receipt_number"])
    return receipts


def _scalar_rows(app: Any, sql: str) -> list[Any]:
    with app.app_context():
        session = app.extensions["bridge"].session
        rows = list(session.execute(text(sql)))
        session.rollback()
    return rows


def portal_receipts(bridged: Bridged) -> list[str]:
    """Every application stored in the portal (the receipts residents were shown)."""
    return [r[0] for r in _scalar_rows(bridged.portal_app, "SELECT receipt_number FROM application")]


def case_receipts(bridged: Bridged) -> list[str]:
    """The receipt number of every case in the back office (duplicates kept, to be counted)."""
    return [r[0] for r in _scalar_rows(bridged.bo_app, "SELECT receipt_number FROM application_case")]


def oracle(bridged: Bridged) -> tuple[int, int, int]:
    """(applications in the portal, cases in the back office, distinct receipts among the cases)."""
    cases = case_receipts(bridged)
    return len(portal_receipts(bridged)), len(cases), len(set(cases))


def all_delivered(bridged: Bridged, expected: int) -> bool:
    """True once every one of ``expected`` applications has become a case (and none twice)."""
    applications, cases, distinct = oracle(bridged)
    assert cases == distinct, f"{cases - distinct} duplicate case(s)"
    return applications == expected and cases == expected


def consistency(bridged: Bridged) -> dict[str, int]:
    """Rows that would show a half-applied message in the back office; every value must be 0."""
    checks = {
        # A case without the processed-message row of the message that made it.
        "case_without_processed": "SELECT count(*) FROM application_case c "
                                  "LEFT JOIN processed_message p ON p.message_id = c.message_id "
                                  "WHERE p.message_id IS NULL",
        # A processed application without its case.
        "processed_without_case": "SELECT count(*) FROM processed_message p "
                                  "LEFT JOIN application_case c ON c.message_id = p.message_id "
                                  "WHERE p.message_type = 'application.submitted' AND c.id IS NULL",
        # Each case sends exactly one status message and writes one operation-log row.
        "cases_minus_status_rows": "SELECT (SELECT count(*) FROM application_case) - "
                                   "(SELECT count(*) FROM outbox WHERE message_type = 'application.status')",
        "cases_minus_audit_rows": "SELECT (SELECT count(*) FROM application_case) - "
                                  "(SELECT count(*) FROM audit_log WHERE action = 'intake.case')",
        # Each processed message was acknowledged (at least once) in the same transaction: by an ack, or by the
        # status sent for its case, which carries the ack (bridge.acks).
        "processed_without_ack": "SELECT GREATEST(0, (SELECT count(*) FROM processed_message "
                                 "WHERE message_type = 'application.submitted') - "
                                 "(SELECT count(*) FROM outbox WHERE message_type IN ('ack', 'application.status')))",
        "dead_letters": "SELECT count(*) FROM dead_letter",
    }
    return {name: int(_scalar_rows(bridged.bo_app, sql)[0][0]) for name, sql in checks.items()}


def start_relay(bridged: Bridged, zone: str, **env: str) -> subprocess.Popen[bytes]:
    """Start the production relay command of ``zone`` (``flask --app wsgi:<zone>_app relay``) as a process."""
    app = "wsgi:portal_app" if zone == "portal" else "wsgi:backoffice_app"
    log = open(bridged.logs / f"relay-{zone}-{len(bridged.processes)}.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "flask", "--app", app, "relay"], cwd=ROOT,
                               env={**bridged.env, **env}, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    log.close()
    bridged.processes.append(process)
    return process
