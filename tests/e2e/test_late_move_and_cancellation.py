"""The move as the law runs it, end to end across two back offices (Hanamaki 032051 → Kitakami 032069).

The system of tests/e2e/test_two_cities.py (one portal over HTTP, both back offices on their own
PostgreSQL databases, a private redis-server, relays, workers and the prefecture peer as processes):

- a foreign resident family (外国人住民) arrives late: filed online, approved, the 除票 at
  Hanamaki; the resident states at the Kitakami counter a move 20 days ago, so the 特例転入 is
  refused naming its limit and the card's special use lapses; the clerk records the paper
  転出証明書; the 転入 is recorded with the actual date and the 第30条の45 items, marked
  届出期間経過 on the list for the summary court; the 転入通知 records the 転出確定 at Hanamaki;
- another family cancels: filed, approved (除票), then the resident signs the cancellation on the
  portal; Hanamaki restores the records, Kitakami's reservation is cancelled and its 転出証明書情報
  withdrawn over the bridge, the prefecture is told, and My applications shows both parts withdrawn.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select

from backoffice.models import (
    Case,
    CaseEvent,
    CaseStatus,
    IdoReason,
    MoveoutCertificate,
    RecordStatus,
    Resident,
    ResidentHistory,
    Sex,
    Staff,
)
from bridge.peers.jlis.cardclient import build_auth_token, build_signed_application, sign_challenge
from bridge.peers.receiver import PeerStore
from core import clock
from tests.e2e.test_two_cities import (  # noqa: F401  (two_cities is the fixture, requested by name)
    HANAMAKI,
    KITAKAMI,
    TwoCities,
    _application,
    _fresh_code,
    _serial,
    _staff,
    _step,
    two_cities,
)
from tests.factories import make_household, make_resident
from tests.portal_fixtures import PASSWORD, PIN


class Resident_:
    """A card holder signed in on the portal's API."""

    def __init__(self, system: TwoCities, card: Path) -> None:
        self.system, self.card = system, card
        self.api = system.origin + "/api/v1"
        nonce = requests.post(f"{self.api}/auth/challenge", timeout=10).json()["nonce"]
        token = build_auth_token(card, PIN, origin=system.origin, nonce=nonce)
        issued = requests.post(f"{self.api}/auth/token", json={"authToken": token, "nonce": nonce}, timeout=30)
        assert issued.status_code == 200, issued.text
        self.bearer = {"Authorization": "Bearer " + issued.json()["access_token"]}
        link = requests.post(f"{self.api}/identity/challenge", headers=self.bearer, timeout=10).json()
        jws = build_signed_application(card, PASSWORD, aud=link["aud"], nonce=link["nonce"],
                                       application=link["application"])
        assert requests.post(f"{self.api}/identity", headers=self.bearer, timeout=30,
                             json={"signedApplication": jws, "nonce": link["nonce"]}).status_code == 200

    def send(self, application: dict[str, Any]) -> dict[str, str]:
        """Sign and send a move; its receipt numbers by part."""
        challenge = requests.post(f"{self.api}/applications/challenge", headers=self.bearer, timeout=10,
                                  json={"application": application}).json()
        signed = sign_challenge(self.card, PASSWORD, challenge, application)
        sent = requests.post(f"{self.api}/applications", headers=self.bearer, timeout=30,
                             json={"signedApplication": signed, "nonce": challenge["nonce"]})
        assert sent.status_code == 202, sent.text
        return {p["kind"]: p["receipt_number"] for p in sent.json()["parts"]}

    def withdraw(self, receipt: str) -> requests.Response:
        """Sign the withdrawal (for an approved move: the cancellation) with the card and send it."""
        challenge = requests.post(f"{self.api}/applications/challenge", headers=self.bearer, timeout=10).json()
        jws = build_signed_application(self.card, PASSWORD, aud=challenge["aud"], nonce=challenge["nonce"],
                                       application={"type": "withdrawal", "receiptNumber": receipt})
        return requests.post(f"{self.api}/applications/{receipt}/withdraw", headers=self.bearer, timeout=30,
                             json={"signedApplication": jws, "nonce": challenge["nonce"]})

    def steps(self) -> dict[str, list[str]]:
        listed = requests.get(f"{self.api}/applications", headers=self.bearer, timeout=10).json()["applications"]
        return {a["receipt_number"]: [h["status"] for h in a["history"]] for a in listed}


def _family(system: TwoCities, head_name: str, kana: str, born: dt.date, wife_name: str, wife_born: dt.date,
            banchi: str, **foreign: Any) -> dict[str, Any]:
    from backoffice.services import cards

    hanamaki = system.cities[HANAMAKI]

    def create(session: Any) -> dict[str, Any]:
        household = make_household(session, householder_name=head_name)
        head = make_resident(session, hanamaki.config, household=household, name=head_name, name_kana=kana,
                             birth_date=born, banchi=banchi, **foreign)
        wife = make_resident(session, hanamaki.config, household=household, name=wife_name, name_kana=kana,
                             birth_date=wife_born, relationship_to_head="妻", is_householder=False, banchi=banchi,
                             sex=Sex.FEMALE, **foreign)
        _record, card_file = cards.issue_card(session, resident_code=head.juminhyo_code, pin=PIN, password=PASSWORD,
                                              issued_by="clerk1", iterations=1000)
        return {"head": head.id, "wife": wife.id, "code": head.juminhyo_code, "card": card_file}
    people: dict[str, Any] = system.query(HANAMAKI, create)
    card = system.tmp / f"card-{people['head']}.json"
    card.write_bytes(people["card"])
    people["card_path"] = card
    return people


def _movers(people: list[tuple[str, str, dt.date]]) -> list[dict[str, Any]]:
    return [{"name": n, "kana": k, "birthDate": b.isoformat(), "relationship": "本人" if i == 0 else "妻",
             "keepsCard": True} for i, (n, k, b) in enumerate(people)]


def _case(system: TwoCities, code: str, receipt: str) -> Any:
    return system.query(code, lambda s: s.execute(select(Case).where(Case.receipt_number == receipt))
                        .scalar_one_or_none())


def _approve(system: TwoCities, code: str, case_id: int, clerk: tuple[int, str], approver: tuple[int, str],
             used: dict[str, set[int]]) -> None:
    from backoffice.services import cases

    assert _step(system, code, lambda s: cases.confirm(s, case_id, by=s.get(Staff, clerk[0]))) is None
    assert _step(system, code, lambda s: cases.approve(s, case_id, by=s.get(Staff, approver[0]),
                                                       totp_code=_fresh_code(approver[1], used))) is None


def _certificates_at_kitakami(system: TwoCities, case_id: int) -> bool:
    rows = system.query(KITAKAMI, lambda s: s.execute(select(MoveoutCertificate)
                                                      .where(MoveoutCertificate.case_id == case_id)).scalars().all())
    return len(rows) == 2


def test_a_late_arrival_and_a_cancelled_move_between_two_back_offices(two_cities: TwoCities) -> None:  # noqa: F811
    from backoffice.services import counter, filing, terminals
    from portal.services.applications import next_business_day

    system = two_cities
    kitakami = system.cities[KITAKAMI]
    today = clock.today_jst()
    used: dict[str, set[int]] = {}
    clerk_a, approver_b = _staff(system, HANAMAKI, "clerk_a", "clerk"), _staff(system, HANAMAKI, "approver_b",
                                                                              "approver")
    clerk_c, approver_d = _staff(system, KITAKAMI, "clerk_c", "clerk"), _staff(system, KITAKAMI, "approver_d",
                                                                              "approver")

    # == 1. the late arrival ===========================================================================
    # A foreign resident family (外国人住民): the 第30条の45 items travel in the 転出証明書情報.
    expiry = today + dt.timedelta(days=400)
    late = _family(system, "グエン　アン", "グエン", dt.date(1990, 8, 27), "グエン　ホア", dt.date(1992, 11, 27), "1-1",
                   nationality="ベトナム", residence_status="技術・人文知識・国際業務", residence_expiry=expiry)
    resident = Resident_(system, late["card_path"])
    planned = today - dt.timedelta(days=5)
    application = {**_application(_movers([("グエン　アン", "グエン　アン", dt.date(1990, 8, 27)),
                                            ("グエン　ホア", "グエン　ホア", dt.date(1992, 11, 27))])),
                   "moveDate": planned.isoformat(),
                   "visitDate": next_business_day(today).isoformat()}
    parts = resident.send(application)
    out_case = system.wait(lambda: _case(system, HANAMAKI, parts["move_out"]), "the 転出届 at Hanamaki")
    in_case = system.wait(lambda: _case(system, KITAKAMI, parts["move_in_reservation"]), "the 転入予約 at Kitakami")
    _approve(system, HANAMAKI, out_case.id, clerk_a, approver_b, used)
    head = system.query(HANAMAKI, lambda s: s.get(Resident, late["head"]))
    assert head.status is RecordStatus.REMOVED and head.removed_on == planned  # the 除票, as of the planned date
    system.wait(lambda: _certificates_at_kitakami(system, in_case.id), "the 転出証明書情報 matched at Kitakami")
    _approve(system, KITAKAMI, in_case.id, clerk_c, approver_d, used)

    # At the counter the resident states they moved 20 days ago: past the 特例転入 limit and the 14 days.
    moved = today - dt.timedelta(days=20)
    terminal_id = system.query(KITAKAMI, lambda s: terminals.add_terminal(s, name="kitakami-counter")[0].id)

    def visit_and_complete(paper: tuple[str, str] | None) -> Any:
        with kitakami.test_request_context("/"):
            challenge = counter.nonces().issue().nonce
        token = build_auth_token(late["card_path"], PIN, origin=kitakami.config["COUNTER_ORIGIN"], nonce=challenge)

        def run(session: Any) -> list[int]:
            case = session.get(Case, in_case.id)
            visit = counter.check_visit(session, case, token=token, nonce=challenge, staff_id=clerk_c[0],
                                        terminal_id=terminal_id)
            return [r.id for r in counter.complete_move_in(session, case, by=session.get(Staff, clerk_c[0]),
                                                           visit=visit, moved_on=moved, paper_certificate=paper)]
        from backoffice.services.cases import CaseError

        try:
            return system.query(KITAKAMI, run)
        except CaseError as refused:
            return refused
    refused = visit_and_complete(None)
    # The refusal reads in the page's language: Japanese by default.
    assert refused.field == "paper_certificate"
    assert "特例転入の期限" in system.query(KITAKAMI, lambda _: str(refused.message))
    assert _case(system, KITAKAMI, parts["move_in_reservation"]).status is CaseStatus.APPROVED
    created = visit_and_complete(("花巻-2026-0042", "岩手県花巻市"))
    new_head = system.query(KITAKAMI, lambda s: s.get(Resident, created[0]))
    assert (new_head.became_resident_on, new_head.address_set_on) == (moved, moved)  # the actual date
    assert (new_head.nationality, new_head.residence_status, new_head.residence_expiry) == (
        "ベトナム", "技術・人文知識・国際業務", expiry)  # the foreign-resident items arrived and were recorded
    late_list = system.query(KITAKAMI, lambda s: [(n.case.id, n.days, [p.name for p in n.people])
                                                  for n in filing.late_list(s)])
    assert late_list == [(in_case.id, 20, ["グエン　アン", "グエン　ホア"])]  # 届出期間経過, for the 過料通知
    paper = system.query(KITAKAMI, lambda s: s.execute(select(CaseEvent.detail).where(
        CaseEvent.case_id == in_case.id, CaseEvent.action == "paper_moveout_certificate")).scalar_one())
    assert json.loads(paper) == {"number": "花巻-2026-0042", "issuer": "岩手県花巻市"}
    lapsed = system.query(KITAKAMI, lambda s: s.execute(select(CaseEvent.action).where(
        CaseEvent.case_id == in_case.id, CaseEvent.action == "card_use_lapsed")).scalars().all())
    assert lapsed == ["card_use_lapsed"]  # the card's special use lapsed past the limit

    # The 転入通知 confirms the 除票 at Hanamaki as usual (転出確定).
    def confirmed(session: Any) -> bool:
        return all(session.get(Resident, i).confirmed_moveout_address for i in (late["head"], late["wife"]))
    system.wait(lambda: system.query(HANAMAKI, confirmed), "the 転出確定 at Hanamaki")
    assert _case(system, HANAMAKI, parts["move_out"]).status is CaseStatus.COMPLETED
    # The card is 廃止 past the limit: Kitakami sent J-LIS the revocation of both its certificates with the
    # 転入, and the J-LIS peer's worker applied them.
    from bridge.peers.jlis.service import open_simulator

    def revoked(slot: str) -> bool:
        record = open_simulator(system.env).certificate_record(_serial(late["card_path"], slot))
        return record.revocation_reason is not None and record.revocation_reason.value == "affiliationChanged"
    system.wait(lambda: revoked("auth") and revoked("sign"), "J-LIS revoking both certificates of the lapsed card")
    # The application is completed on the portal, and the 転出 can no longer be cancelled: the card that
    # signed it is 廃止, so the portal refuses its session and a new sign-in; nothing changes at Hanamaki.
    with system.portal.app_context():
        from portal.extensions import db as portal_db
        from portal.models import Application, ApplicationStatus

        def completed() -> bool:
            portal_db.session.rollback()
            return portal_db.session.execute(select(Application.status).where(
                Application.receipt_number == parts["move_out"])).scalar_one() is ApplicationStatus.COMPLETED
        system.wait(completed, "completed on the portal")
    listed = requests.get(f"{resident.api}/applications", headers=resident.bearer, timeout=10)
    assert listed.status_code == 401 and listed.json()["error"] == "unauthorized"
    nonce = requests.post(f"{resident.api}/auth/challenge", timeout=10).json()["nonce"]
    again = requests.post(f"{resident.api}/auth/token", timeout=30, json={
        "authToken": build_auth_token(late["card_path"], PIN, origin=system.origin, nonce=nonce), "nonce": nonce})
    assert again.status_code == 401
    assert system.query(HANAMAKI, lambda s: s.get(Resident, late["head"])).status is RecordStatus.REMOVED

    # == 2. the cancelled move ==========================================================================
    other = _family(system, "石川　一", "イシカワ", dt.date(1986, 2, 20), "石川　節子", dt.date(1986, 10, 1), "2-2")
    cancelling = Resident_(system, other["card_path"])
    parts = cancelling.send(_application(_movers([("石川　一", "イシカワ　ハジメ", dt.date(1986, 2, 20)),
                                                  ("石川　節子", "イシカワ　セツコ", dt.date(1986, 10, 1))])))
    out_case = system.wait(lambda: _case(system, HANAMAKI, parts["move_out"]), "the second 転出届")
    in_case = system.wait(lambda: _case(system, KITAKAMI, parts["move_in_reservation"]), "the second 転入予約")
    _approve(system, HANAMAKI, out_case.id, clerk_a, approver_b, used)
    assert system.query(HANAMAKI, lambda s: s.get(Resident, other["head"])).status is RecordStatus.REMOVED
    system.wait(lambda: _certificates_at_kitakami(system, in_case.id), "the second 転出証明書情報 matched")
    _approve(system, KITAKAMI, in_case.id, clerk_c, approver_d, used)
    system.wait(lambda: cancelling.steps()[parts["move_out"]][-1] == "approved", "the 転出届 approved on the portal")

    cancelled = cancelling.withdraw(parts["move_out"])  # 転出取消, signed with the card on the portal
    assert cancelled.status_code == 200, cancelled.text

    def restored(session: Any) -> bool:
        return all(session.get(Resident, i).status is RecordStatus.CURRENT for i in (other["head"], other["wife"]))
    system.wait(lambda: system.query(HANAMAKI, restored), "the 除票 restored at Hanamaki")
    reasons = system.query(HANAMAKI, lambda s: s.execute(select(ResidentHistory.reason).where(
        ResidentHistory.resident_id == other["head"]).order_by(ResidentHistory.id)).scalars().all())
    assert reasons[-2:] == [IdoReason.MOVE_OUT, IdoReason.MOVE_OUT_CANCELLED]
    assert _case(system, HANAMAKI, parts["move_out"]).status is CaseStatus.WITHDRAWN
    # Kitakami: the reservation cancelled, the 転出証明書情報 withdrawn.
    system.wait(lambda: _case(system, KITAKAMI, parts["move_in_reservation"]).status is CaseStatus.WITHDRAWN,
                "the reservation cancelled at Kitakami")
    assert system.query(KITAKAMI, lambda s: s.execute(select(MoveoutCertificate).where(
        MoveoutCertificate.juminhyo_code == other["code"])).scalars().all()) == []
    # The prefecture is told of the cancellation for both.
    peers = system.tmp / "peers"

    def cancellations() -> list[Any]:
        path = peers / "prefecture.db"
        got = [u for u in (PeerStore(path).received() if path.exists() else [])
               if u.payload["items"]["change_reason"] == "転出取消"]
        return got if len(got) == 2 else []
    assert {u.sender for u in system.wait(cancellations, "two 転出取消 updates")} == {f"muni:{HANAMAKI}"}
    # The departments told of the 転出 (tax and pension for two adults of 40) learn of its cancellation.

    def department_cancellations() -> list[Any]:
        path = peers / "departments.db"
        got = [n for n in (PeerStore(path).received() if path.exists() else [])
               if n.message_type == "dept.notice.move_out_cancelled"]
        return got if len(got) == 4 else []
    notices = system.wait(department_cancellations, "the departments told of the 転出取消")
    assert sorted(n.party for n in notices) == ["peer:dept:pension"] * 2 + ["peer:dept:tax"] * 2
    # My applications: both parts withdrawn.
    steps = system.wait(lambda: (got := cancelling.steps()) and all(got[r][-1] == "withdrawn" for r in parts.values())
                        and got, "both parts withdrawn on My applications")
    assert steps[parts["move_out"]][-2:] == ["approved", "withdrawn"]
