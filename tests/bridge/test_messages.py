"""Every bridge message is defined once (bridge.messages): checked when it is sent and again when it arrives.

A compromised portal (or a buggy back office) that sends a payload its type does not define gets a
dead letter naming the JSON path, never the value, and nothing else changes; a sender that builds
a payload its type does not define raises before anything is written.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import jsonschema
import pytest
from rq import Callback, Retry
from sqlalchemy import select

from bridge.queues import QueueNames, get_queue
from bridge.relay import DELIVER, ON_FAILURE
from core import clock as clock_module
from core.envelope import KeyRegistry, Sealed, open_envelope, seal
from tests.backoffice.case_fixtures import PASSWORD, make_city, move
from tests.backoffice.test_certificates import _confirm_and_approve, _deliver, _request, _staff, city  # noqa: F401 (a fixture)
from tests.backoffice.test_moves import (  # noqa: F401  (hanamaki, kitakami, family, move_keys, kitakami_db_url: fixtures)
    MOVERS,
    City,
    _complete,
    _move,
    _reservation,
    family,
    hanamaki,
    kitakami,
    kitakami_db_url,
    move_keys,
)
from tests.bridge.conftest import BO_PARTY, INTAKE

RECEIPT = "202612060000000001"


def _enqueue(bridged: Any, queue: str, sealed: Sealed) -> None:
    """Put a delivery job on ``queue`` directly, as the relay does (or anyone who can write to the bridge's Redis)."""
    get_queue(queue, bridged.redis.client()).enqueue_call(
        DELIVER, args=(sealed.message_id, sealed.token), job_id=sealed.message_id,
        description=f"deliver {sealed.message_id}", retry=Retry(max=1, interval=[0]), on_failure=Callback(ON_FAILURE))


def _signed_application(bridged: Any, tmp_path: Any) -> str:
    from bridge.peers.jlis.cardclient import build_signed_application

    card = make_city(bridged.bo_app, tmp_path)["card"]
    return build_signed_application(card, PASSWORD, aud=bridged.bo_app.config["SITE_ORIGIN"],
                                    nonce="n" * 44, application=move())


def _without(payload: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != name}


# Shapes today's hand checks in intake let through (they looked at receiptNumber, kind and signedApplication only).
ATTACKS = {
    "an extra field": (lambda p: {**p, "sensitive": False}, "$.sensitive: additionalProperties"),
    "a move id that is no move id": (lambda p: {**p, "moveId": "../../another-move"}, "$.moveId: format"),
    "a field of the wrong type": (lambda p: {**p, "submittedAt": 1765000000}, "$.submittedAt: type"),
    "a missing field": (lambda p: _without(p, "submittedAt"), "$.submittedAt: required"),
}


def test_a_compromised_portals_application_of_the_wrong_shape_is_a_dead_letter_naming_the_path_and_no_case(
        bridged, bridge_keys, tmp_path):
    from backoffice.models import Case

    jws = _signed_application(bridged, tmp_path)
    sent: dict[str, tuple[str, str]] = {}
    for n, (name, (change, path)) in enumerate(ATTACKS.items(), start=1):
        receipt = f"{RECEIPT[:-1]}{n}"
        payload = change({"receiptNumber": receipt, "kind": "move_out", "moveId": None,
                          "submittedAt": clock_module.utcnow().isoformat(), "signedApplication": jws})
        sealed = seal(payload, message_type="application.submitted", sender="portal", recipient=BO_PARTY,
                      keys=bridge_keys.portal)
        _enqueue(bridged, INTAKE, sealed)
        sent[sealed.message_id] = (name, path)
    bridged.run_burst("backoffice", INTAKE)

    dead = {d.message_id: d for d in bridged.rows(bridged.bo_app, "dead")}
    assert {i: (d.reason, d.detail) for i, d in dead.items()} == {
        i: ("schema_invalid", path) for i, (_name, path) in sent.items()}
    with bridged.bo_app.app_context():
        from backoffice.extensions import db

        assert db.session.execute(select(Case)).scalars().all() == []
    assert bridged.rows(bridged.bo_app, "processed") == []  # nothing recorded as applied ...
    assert bridged.rows(bridged.bo_app, "outbox") == []  # ... no ack, no status to the portal
    logged = bridged.audit_actions(bridged.bo_app, "bridge.dead_letter")
    assert sorted(r.target_id for r in logged) == sorted(sent)
    assert {json.loads(r.detail)["reason"] for r in logged} == {"schema_invalid"}
    # The detail names where, never what: no value of the payload is in it.
    for row in dead.values():
        assert "another-move" not in row.detail and "1765000000" not in row.detail and RECEIPT[:12] not in row.detail


def test_a_status_the_portal_does_not_know_is_a_dead_letter_naming_the_path(bridged, bridge_keys):
    sealed = seal({"receiptNumber": RECEIPT, "status": "teleported", "reason": None},
                  message_type="application.status", sender=BO_PARTY, recipient="portal", keys=bridge_keys.backoffice)
    _enqueue(bridged, QueueNames.STATUS, sealed)
    bridged.run_burst("portal", QueueNames.STATUS)

    [dead] = bridged.rows(bridged.portal_app, "dead")
    assert (dead.message_id, dead.reason, dead.detail) == (sealed.message_id, "schema_invalid", "$.status: enum")
    [logged] = bridged.audit_actions(bridged.portal_app, "bridge.dead_letter")
    assert logged.target_id == sealed.message_id and json.loads(logged.detail)["reason"] == "schema_invalid"
    assert bridged.rows(bridged.portal_app, "processed") == [] and bridged.rows(bridged.portal_app, "outbox") == []


def test_a_sender_building_a_payload_its_type_does_not_define_raises_and_writes_nothing(bridged):
    from backoffice.models import Case, CaseStatus
    from backoffice.services import cases
    from portal.models import Application, ApplicationKind
    from portal.services import outbound

    with bridged.portal_app.app_context():
        from portal.extensions import db

        application = Application(receipt_number=RECEIPT, kind=ApplicationKind.MOVE_OUT, move_id="not-a-move-id",
                                  municipality_code="032051", signed_jws="a.b.c", submitted_at=clock_module.utcnow())
        with pytest.raises(ValueError) as refused:
            outbound.submitted_row(db.session, application)
        assert "$.moveId" in str(refused.value) and "not-a-move-id" not in str(refused.value)
        assert db.session.execute(select(bridged.portal_app.extensions["bridge"].outbox)).first() is None
        db.session.rollback()
    with bridged.bo_app.app_context():
        from backoffice.extensions import db

        case = Case(receipt_number="R 1", status=CaseStatus.RECEIVED)  # a receipt number the portal never issues
        with pytest.raises(ValueError) as refused:
            cases.send_status(db.session, case)
        assert "$.receiptNumber" in str(refused.value)
        assert db.session.execute(select(bridged.bo_app.extensions["bridge"].outbox)).first() is None
        db.session.rollback()
    assert bridged.rows(bridged.portal_app, "outbox") == [] and bridged.rows(bridged.bo_app, "outbox") == []


# -- one definition for every type --------------------------------------------------------------------


def _closed(schema: Any, where: str = "$") -> list[str]:
    """Every object of ``schema`` (nested too) that does not refuse fields nobody defined."""
    found = []
    if isinstance(schema, dict):
        if schema.get("type") == "object" and schema.get("additionalProperties") is not False:
            found.append(where)
        for key, value in schema.items():
            found += _closed(value, f"{where}.{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            found += _closed(value, f"{where}[{i}]")
    return found


def test_every_message_type_handled_anywhere_has_a_closed_schema_and_a_new_one_cannot_be_added_without(bridged):
    from bridge import handlers, messages
    from bridge.peers import departments, prefecture, standin
    from bridge.peers.jlis.receiver import JLIS
    from bridge.peers.receiver import PeerSpec

    apps = {(zone, t) for zone, t in handlers.registered() if not t.startswith("test.")}
    peers = {(spec.name, t) for spec in (prefecture.PREFECTURE, JLIS, departments.DEPARTMENTS_PEER, standin.STANDIN)
             for t in spec.accepted_types}
    handled = {t for _where, t in apps | peers}
    # The ones each side registers today, so a handler that stops being registered is noticed too.
    assert {t for zone, t in apps if zone == "backoffice"} == {
        "ack", "application.submitted", "application.withdrawn", "moveout.certificate", "movein.notice",
        "moveout.cancellation"}
    assert {t for zone, t in apps if zone == "portal"} == {
        "ack", "application.status", "certificate.issued", "certificate.revoked", "intake.paused"}
    assert sorted(handled - set(messages.SCHEMAS)) == []
    for message_type in handled:
        schema = messages.SCHEMAS[message_type]
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert _closed(schema) == [], message_type

    with pytest.raises(ValueError, match="no schema"):
        handlers.register("case.teleported", lambda session, opened: None, zone="backoffice")
    with pytest.raises(ValueError, match="no schema"):
        PeerSpec(name="elsewhere", title="x", parties=("peer:prefecture",), accepted_types=frozenset({"x.y"}))


def test_the_schemas_agree_with_the_recipients_file_and_the_ledgers_codes():
    from backoffice.models import IdoReason, Sex
    from backoffice.services.cases import PORTAL_STATUS
    from backoffice.services.provision import load_recipients
    from bridge import messages
    from bridge.peers.jlis.simulator import RevocationReason
    from portal.models import ApplicationKind, ApplicationStatus

    recipients = load_recipients()
    assert set(messages.ITEMS) == set(recipients.items)
    by_type: dict[str, list[Any]] = {}
    for recipient in recipients.by_id.values():
        for message_type in recipient.message_types:
            by_type.setdefault(message_type, []).append(recipient)
    for message_type, listed in by_type.items():
        items = messages.SCHEMAS[message_type]["properties"]["items"]
        # The schema carries exactly what the file lets some recipient of the type receive ...
        assert set(items["properties"]) == {i for r in listed for i in r.items}, message_type
        # ... and requires only what every one of them may receive (provision.send strips the rest).
        for recipient in listed:
            assert set(items["required"]) <= set(recipient.items), (message_type, recipient.id)
    assert set(messages.CHANGE_REASONS) == {r.value for r in IdoReason}
    assert messages.ITEMS["sex"]["enum"] == [s.value for s in Sex]
    assert set(messages.REVOCATION_REASONS) == {r.value for r in RevocationReason}
    assert {*messages.APPLICATION_KINDS, *messages.REQUEST_KINDS} == {k.value for k in ApplicationKind}
    assert set(messages.PORTAL_STATUSES) == set(PORTAL_STATUS.values())
    assert set(messages.PORTAL_STATUSES) <= {s.value for s in ApplicationStatus}
    # Every reason the back office gives itself has a code the status message allows and words in the catalogue.
    from backoffice.services import filing, intake, support
    from bridge import reasons

    assert set(intake.REASONS) | set(filing.REASONS) | set(support.PORTAL_REASONS) == set(reasons.CODES)
    assert messages.SCHEMAS["application.status"]["properties"]["reasonCode"]["enum"] == [*reasons.CODES, None]


@pytest.mark.parametrize("payload, path", [
    ({"receiptNumber": RECEIPT, "status": "returned", "reason": None, "reasonCode": "teleported"}, "$.reasonCode"),
    ({"receiptNumber": RECEIPT, "status": "returned", "reasonCode": "stale"}, "$.reason"),
])
def test_a_status_with_an_unknown_reason_code_or_without_its_reason_field_is_refused(payload, path):
    from bridge import messages

    with pytest.raises(messages.MessageInvalid) as refused:
        messages.validate("application.status", payload)
    assert refused.value.path == path


def test_a_status_message_in_the_old_form_without_a_reason_code_is_still_accepted_for_one_version():
    """A back office of the version before sent its reasons as text; such a message may still be in flight."""
    from bridge import messages

    messages.validate("application.status", {"receiptNumber": RECEIPT, "status": "returned", "reason": "古い形式"})
    messages.validate("application.status", {"receiptNumber": RECEIPT, "status": "returned", "reason": None,
                                             "reasonCode": "not_all_resident"})


def test_what_a_whole_move_really_sends_fits_the_schemas(hanamaki, kitakami, family, clock, move_keys):  # noqa: F811
    """Hanamaki approves a 転出届, Kitakami completes the 転入, Hanamaki confirms it: every message sent is valid."""
    from backoffice.models import Outbox
    from bridge import messages
    from bridge.handlers import PermanentFailure
    from bridge.jobs.deliver import check_payload

    origin, destination = City(hanamaki, clock, move_keys), City(kitakami, clock, move_keys)
    move_id = str(uuid.uuid4())
    out_case = origin.deliver(family["card"], "move_out", _move(MOVERS), move_id=move_id)
    in_case = _reservation(destination, family, move_id)
    origin.confirm_and_approve(out_case)
    for message in origin.sent("moveout.certificate"):
        check_payload(message)
        destination.receive(message)
    destination.confirm_and_approve(in_case)
    _complete(kitakami, destination, in_case)
    for message in destination.sent("movein.notice"):
        check_payload(message)
        origin.receive(message)

    seen: dict[str, int] = {}
    for app in (hanamaki, kitakami):
        from backoffice.extensions import db

        with app.app_context():
            rows = db.session.execute(select(Outbox)).scalars().all()
            for row in rows:
                keys = KeyRegistry.from_config({"BRIDGE_KEY_DIRECTORY": str(move_keys)}, party=row.recipient)
                opened = open_envelope(row.envelope, me=row.recipient, keys=keys, accepted_types={row.message_type},
                                       max_age=dt.timedelta(days=1), now=clock.now)
                validator = jsonschema.Draft202012Validator(messages.SCHEMAS[row.message_type],
                                                            format_checker=messages.FORMATS)
                assert [e.json_path for e in validator.iter_errors(opened.payload)] == [], row.message_type
                seen[row.message_type] = seen.get(row.message_type, 0) + 1
    assert set(seen) >= {"application.status", "moveout.certificate", "movein.notice", "identity.update",
                         "dept.notice.move_out", "dept.notice.move_in"}
    # And what arrives broken is refused before any handler: a 転入通知 whose 住民票コード fails its check digit.
    [notice, *_] = destination.sent("movein.notice")
    code = notice.payload["items"]["juminhyo_code"]
    notice.payload["items"]["juminhyo_code"] = code[:-1] + str((int(code[-1]) + 1) % 10)
    with pytest.raises(PermanentFailure) as refused:
        check_payload(notice)
    assert (refused.value.reason, refused.value.detail) == ("schema_invalid", "$.items.juminhyo_code: format")


def test_the_certificate_messages_really_sent_fit_and_the_portal_applies_them(
        bo_app, backoffice, city, portal_app):  # noqa: F811
    """An issued then revoked certificate: both messages are valid when sent and applied through delivery."""
    from backoffice.extensions import db as bo_db
    from backoffice.models import IssuedCertificate, Outbox
    from backoffice.services import certificates
    from bridge.jobs.deliver import deliver
    from portal.extensions import db as portal_db
    from portal.models import CertificateState, CertificateVerification

    cert_id = _confirm_and_approve(bo_app, backoffice, _deliver(bo_app, city["card"], _request()))
    with bo_app.test_request_context("/"):
        certificates.revoke(bo_db.session, bo_db.session.get(IssuedCertificate, cert_id), by=_staff("clerk_a"),
                            reason="記載誤りのため再発行")
        bo_db.session.commit()
        rows = [(r.id, r.message_type, r.envelope) for r in bo_db.session.execute(
            select(Outbox).where(Outbox.recipient == "portal").order_by(Outbox.created_at)).scalars()]
    assert {t for _i, t, _e in rows} == {"application.status", "certificate.issued", "certificate.revoked"}
    for message_id, message_type, envelope in rows:
        if message_type.startswith("certificate."):  # the statuses are of an application the portal never saw
            with portal_app.test_request_context("/"):
                deliver(message_id, envelope)
    with portal_app.app_context():
        [row] = portal_db.session.execute(select(CertificateVerification)).scalars().all()
        assert row.status is CertificateState.REVOKED
        assert portal_db.session.execute(select(portal_app.extensions["bridge"].dead_letters)).first() is None


def test_the_moveout_certificate_carries_the_foreign_resident_items_typed_and_refuses_a_malformed_one():
    from bridge.messages import CERTIFICATE_EXTRA, MessageInvalid, validate

    base = {"juminhyo_code": "12345678903", "name": "グエン　トシ", "birth_date": "1992-11-27", "sex": "2",
            "address": "岩手県花巻市", "move_date": "2026-12-10", "previous_address": None,
            "new_address": "岩手県北上市",
            "my_number": None, "name_kana": "", "householder_name": "宮沢　賢", "relationship": "妻", "honseki": None,
            "hittosha": None}
    for item in ("foreign_resident_category", "residence_card_number", "became_foreign_resident_on",
                 "residence_period_years", "special_permanent_certificate_issued_on", "kanji_name"):
        assert item in CERTIFICATE_EXTRA
    validate("moveout.certificate", {"items": {**base, "foreign_resident_category": "中長期在留者",
                                               "residence_card_number": "AB12345678CD", "residence_period_years": 3,
                                               "became_foreign_resident_on": "2019-04-01"}})
    for bad in ({"residence_card_number": "AB1234"}, {"foreign_resident_category": "観光客"},
                {"residence_period_years": "3"}, {"became_foreign_resident_on": "令和元年"}):
        with pytest.raises(MessageInvalid) as caught:
            validate("moveout.certificate", {"items": {**base, **bad}})
        assert next(iter(bad)) in caught.value.path
