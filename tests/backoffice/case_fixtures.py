"""Cases for the workflow tests, made the way they are in production: a signed application through intake."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from backoffice.models import AuditLog, Case, CaseEvent, Outbox, Staff
from bridge.peers.jlis.cardclient import build_signed_application
from core import clock
from core.envelope import KeyRegistry, Opened, open_envelope
from tests.factories import make_household, make_resident, my_number

PASSWORD = "ABC123"
HEAD_NUMBER = my_number(424242)
WIFE_NUMBER = my_number(434343)


@pytest.fixture(autouse=True)
def no_effects(monkeypatch: pytest.MonkeyPatch) -> None:
    """For the modules that import it: the workflow and its pages are under test, not the kinds' real effects
    (moves, certificates), which have tests of their own; every kind approves with nothing done."""
    from backoffice.services import approval
    from backoffice.services.cases import KINDS

    monkeypatch.setattr(approval, "APPROVAL_EFFECTS", dict.fromkeys(KINDS, lambda session, case, by: None))


def make_city(bo_app: Any, tmp_path: Path) -> dict[str, Any]:
    """A household of two in Hanamaki; the householder holds a card issued at the counter."""
    from backoffice.extensions import db
    from backoffice.services import cards

    bo_app.config["CARD_FILE_ITERATIONS"] = 1000
    with bo_app.test_request_context("/"):
        household = make_household(db.session, householder_name="宮沢　賢")
        head = make_resident(db.session, bo_app.config, household=household, name="宮沢　賢",
                             name_kana="ミヤザワ　ケン", birth_date=dt.date(1990, 8, 27), my_number=HEAD_NUMBER)
        wife = make_resident(db.session, bo_app.config, household=household, name="宮沢　トシ",
                             name_kana="ミヤザワ　トシ", birth_date=dt.date(1992, 11, 27), relationship_to_head="妻",
                             is_householder=False, banchi=head.banchi, my_number=WIFE_NUMBER)
        _record, card_file = cards.issue_card(db.session, resident_code=head.juminhyo_code, pin="1234",
                                              password=PASSWORD, issued_by="clerk1", iterations=1000)
        db.session.commit()
        ids = {"head": head.id, "wife": wife.id}
    card = tmp_path / "card.json"
    card.write_bytes(card_file)
    return {"card": card, **ids}


def move(movers: list[tuple[str, str]] | None = None, **changes: Any) -> dict[str, Any]:
    """A move-out application for ``movers`` (name, birth date)."""
    movers = movers or [("宮沢　賢", "1990-08-27"), ("宮沢　トシ", "1992-11-27")]
    today = clock.today_jst()
    data = {"type": "move", "fromMunicipalityCode": "032051", "moveDate": (today + dt.timedelta(days=5)).isoformat(),
            "destination": {"kind": "elsewhere", "municipalityCode": "032069", "postalCode": "0240061",
                            "prefecture": "岩手県", "municipality": "北上市", "address": "大通り1-3-1"},
            "movers": [{"name": n, "kana": "ミヤザワ", "birthDate": b, "relationship": "本人", "keepsCard": True}
                       for n, b in movers],
            "newHouseholder": movers[0][0], "contactPhone": "0198-24-2111",
            "visitDate": (today + dt.timedelta(days=6)).isoformat()}
    data.update(changes)
    return data


HANAMAKI = {"kind": "elsewhere", "municipalityCode": "032051", "postalCode": "0258601", "prefecture": "岩手県",
            "municipality": "花巻市", "address": "花城町9-30"}


def as_part(kind: str, application: dict[str, Any], here: str = "032051") -> dict[str, Any]:
    """``application`` reshaped, where needed, so that its ``kind`` part is one for ``here`` (as the portal would)."""
    if kind == "move_in_reservation":
        return {**application, "fromMunicipalityCode": "032069", "destination": {**HANAMAKI, "municipalityCode": here}}
    if kind == "in_city_reservation" and application.get("destination", {}).get("kind") != "in_city":
        return {**application, "fromMunicipalityCode": here,
                "destination": {"kind": "in_city", "machiazaCode": here + "0001", "banchi": "1番地"}}
    return application


def sign_part(card: Any, config: Any, kind: str, application: dict[str, Any], *, move_id: str | None = None,
              here: str = "032051") -> tuple[str, str | None]:
    """The resident's JWS for ``application`` naming its ``kind`` part for ``here``; returns it and the move id."""
    claims = {"moveId": move_id, "parts": [{"kind": kind, "municipalityCode": here}]}
    jws = build_signed_application(card, PASSWORD, aud=config["SITE_ORIGIN"], nonce="n" * 44,
                                   application=application, claims=claims)
    return jws, move_id


def receipt_number() -> str:
    """A receipt number of the portal's form (18 digits): random hex could hold exactly 12 digits in a row, which
    the pages' My Number checks would take for one."""
    return f"{uuid.uuid4().int % 10**18:018d}"


def deliver(bo_app: Any, city: dict[str, Any], kind: str = "move_out", application: dict[str, Any] | None = None,
            *, receipt: str | None = None) -> int:
    """Deliver a signed application to intake; returns the case id."""
    from backoffice.extensions import db
    from backoffice.services.intake import receive_application

    application = as_part(kind, application or move())
    move_id = str(uuid.uuid4()) if application.get("type") == "move" else None
    jws, _ = sign_part(city["card"], bo_app.config, kind, application, move_id=move_id)
    opened = Opened(message_id=str(uuid.uuid4()), message_type="application.submitted",
                    sender="portal", recipient="muni:032051", created_at=clock.utcnow(),
                    payload={"receiptNumber": receipt or receipt_number(), "kind": kind, "moveId": move_id,
                             "submittedAt": clock.utcnow().isoformat(), "signedApplication": jws})
    with bo_app.test_request_context("/"):
        case = receive_application(db.session, opened)
        db.session.commit()
        return int(case.id)


def staff(session: Any, login_id: str) -> Staff:
    """A member of staff, loaded in ``session``."""
    return session.execute(select(Staff).where(Staff.login_id == login_id)).scalar_one()


def load_case(bo_app: Any, case_id: int) -> Case:
    """A detached copy of the case as committed."""
    from backoffice.extensions import db

    with bo_app.app_context():
        case = db.session.get(Case, case_id)
        db.session.expunge(case)
        return case


def events(bo_app: Any, case_id: int) -> list[tuple[str, str | None, str | None]]:
    """(action, actor, to-status) of each history row, oldest first."""
    from backoffice.extensions import db

    with bo_app.app_context():
        rows = db.session.execute(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id))
        return [(e.action, e.actor, e.to_status.value if e.to_status else None) for e in rows.scalars()]


def audit_actions(bo_app: Any, case_id: int) -> list[tuple[str, str, str]]:
    """(action, actor, outcome) of each operation-log row about the case."""
    from backoffice.extensions import db

    with bo_app.app_context():
        rows = db.session.execute(select(AuditLog).where(AuditLog.target_type == "case",
                                                         AuditLog.target_id == str(case_id)).order_by(AuditLog.seq))
        return [(r.action, r.actor, r.outcome) for r in rows.scalars()]


def status_messages(bo_app: Any) -> list[dict[str, Any]]:
    """Every status message in the outbox, opened with the portal's keys as the portal would."""
    from backoffice.extensions import db

    keys = KeyRegistry.from_config({"BRIDGE_KEY_DIRECTORY": bo_app.config["BRIDGE_KEY_DIRECTORY"]}, party="portal")
    with bo_app.app_context():
        rows = db.session.execute(select(Outbox).where(Outbox.recipient == "portal")
                                  .order_by(Outbox.created_at, Outbox.id)).scalars().all()
        envelopes = [r.envelope for r in rows if r.message_type == "application.status"]
    opened = [open_envelope(e, me="portal", keys=keys, accepted_types={"application.status"},
                            max_age=dt.timedelta(days=1), now=clock.utcnow()) for e in envelopes]
    return [o.payload for o in opened]


def findings(case: Case) -> list[dict[str, str]]:
    """What intake found."""
    return list(json.loads(case.findings))
