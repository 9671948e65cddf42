"""Support measures (支援措置, R22): set by two people; a certificate reaching a protected person is never answered
automatically; every look at the protected record is an alert."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import event, select

from backoffice.models import AuditLog, BridgeAlert, Case, CaseStatus, IssuedCertificate, SupportMeasure
from backoffice.services.cases import CaseError
from core import clock as clock_module
from tests.backoffice.case_fixtures import deliver, make_city, move, staff

CERTIFICATE = {"type": "certificate", "municipalityCode": "032051", "kind": "juminhyo", "persons": "household",
               "items": {"householder": True, "honseki": False, "juminhyoCode": False, "myNumber": False},
               "copies": 1, "purpose": "就職先への提出", "delivery": "post"}


@pytest.fixture
def city(bo_app, backoffice, tmp_path):
    city = make_city(bo_app, tmp_path)
    backoffice.add_staff("clerk_a", "clerk")
    backoffice.add_staff("clerk_c", "clerk")
    backoffice.add_staff("approver_b", "approver")
    return city


def _protect(bo_app, person, *, hide, requester="clerk_a", approver="approver_b"):
    from backoffice.extensions import db
    from backoffice.services import support

    today = clock_module.today_jst()
    with bo_app.test_request_context("/"):
        measure = support.request(db.session, resident_id=person, covered_ids=[], starts_on=today,
                                  ends_on=today + dt.timedelta(days=365), hide_from_household=hide,
                                  by=staff(db.session, requester))
        db.session.commit()
        measure_id = measure.id
    with bo_app.test_request_context("/"):
        support.approve(db.session, measure_id, by=staff(db.session, approver))
        db.session.commit()
    return measure_id


def _approve_case(bo_app, backoffice, case_id):
    from backoffice.extensions import db
    from backoffice.services import cases

    with bo_app.test_request_context("/"):
        cases.confirm(db.session, case_id, by=staff(db.session, "clerk_a"))
        db.session.commit()
    with bo_app.test_request_context("/"):
        try:
            cases.approve(db.session, case_id, by=staff(db.session, "approver_b"),
                          totp_code=backoffice.totp("approver_b"))
        except Exception:
            db.session.rollback()
            raise
        db.session.commit()


def _alerts(bo_app):
    from backoffice.extensions import db

    with bo_app.app_context():
        return [json.loads(a.detail) for a in db.session.execute(
            select(BridgeAlert).where(BridgeAlert.kind == "support_measure_access")).scalars()]


def test_a_measure_needs_a_second_person_and_a_clerk_cannot_approve_their_own(bo_app, city):
    from backoffice.extensions import db
    from backoffice.services import support

    today = clock_module.today_jst()
    with bo_app.test_request_context("/"):
        measure = support.request(db.session, resident_id=city["wife"], covered_ids=[], starts_on=today,
                                  ends_on=today + dt.timedelta(days=365), hide_from_household=True,
                                  by=staff(db.session, "clerk_a"))
        db.session.commit()
        assert support.in_force(db.session, city["wife"]) is None  # asked for, not yet in force
        with pytest.raises(support.SupportError) as refused:
            support.approve(db.session, measure.id, by=staff(db.session, "clerk_a"))
        assert refused.value.field == "approved_by"
        with pytest.raises(support.SupportError) as too_long:
            support.request(db.session, resident_id=city["wife"], covered_ids=[], starts_on=today,
                            ends_on=today + dt.timedelta(days=800), hide_from_household=True,
                            by=staff(db.session, "clerk_a"))
        assert too_long.value.field == "period"
        db.session.rollback()
        support.approve(db.session, measure.id, by=staff(db.session, "approver_b"))
        db.session.commit()
        assert support.in_force(db.session, city["wife"]).id == measure.id
        # An extension, again by two people: asked by one clerk, approved by another person.
        support.request_extension(db.session, measure.id, ends_on=measure.ends_on + dt.timedelta(days=365),
                                  reason="警察署の意見により延長", by=staff(db.session, "clerk_c"))
        with pytest.raises(support.SupportError):
            support.approve_extension(db.session, measure.id, by=staff(db.session, "clerk_c"))
        support.approve_extension(db.session, measure.id, by=staff(db.session, "approver_b"))
        db.session.commit()
        assert support.in_force(db.session, city["wife"], on=today + dt.timedelta(days=500)) is not None
        assert support.in_force(db.session, city["wife"], on=today + dt.timedelta(days=800)) is None
        actions = db.session.execute(select(AuditLog.action, AuditLog.actor).where(
            AuditLog.action.like("support_measure.%")).order_by(AuditLog.seq)).all()
    assert [tuple(a) for a in actions] == [
        ("support_measure.request", "clerk_a"), ("support_measure.approve", "approver_b"),
        ("support_measure.extension_request", "clerk_c"), ("support_measure.extension_approve", "approver_b")]


def test_a_household_certificate_asked_by_another_member_is_flagged_and_refused_and_nothing_is_issued(
        bo_app, backoffice, city):
    _protect(bo_app, city["wife"], hide=False)
    case_id = deliver(bo_app, city, "certificate", CERTIFICATE)  # the householder asks, covering his wife
    from backoffice.extensions import db

    with bo_app.app_context():
        case = db.session.get(Case, case_id)
        assert case.status is CaseStatus.IN_REVIEW  # flagged for a clerk at intake, not answered automatically
        assert "support_measure" in {f["code"] for f in json.loads(case.findings)}
    with pytest.raises(CaseError) as refused:
        _approve_case(bo_app, backoffice, case_id)
    with bo_app.app_context():  # the refusal reads in Japanese unless a page asks for English
        assert "支援措置" in refused.value.message
        assert db.session.execute(select(IssuedCertificate)).first() is None
    assert any(a["action"] == "certificate" and a["resident"] == city["wife"] for a in _alerts(bo_app))


def test_where_the_measure_says_so_the_person_is_left_off_another_members_household_certificate(
        bo_app, backoffice, city):
    _protect(bo_app, city["wife"], hide=True)
    case_id = deliver(bo_app, city, "certificate", CERTIFICATE)
    _approve_case(bo_app, backoffice, case_id)
    from backoffice.extensions import db

    with bo_app.app_context():
        cert = db.session.execute(select(IssuedCertificate)).scalar_one()
        assert json.loads(cert.resident_ids) == [city["head"]]


def test_without_a_measure_the_household_certificate_names_both_and_raises_no_alert(bo_app, backoffice, city):
    case_id = deliver(bo_app, city, "certificate", CERTIFICATE)
    _approve_case(bo_app, backoffice, case_id)
    from backoffice.extensions import db

    with bo_app.app_context():
        cert = db.session.execute(select(IssuedCertificate)).scalar_one()
        assert sorted(json.loads(cert.resident_ids)) == sorted([city["head"], city["wife"]])
    assert _alerts(bo_app) == []


def test_every_view_of_a_protected_record_is_an_alert_and_an_ended_measure_raises_none(bo_app, city, clock):
    from backoffice.extensions import db
    from backoffice.services import ledger

    _protect(bo_app, city["wife"], hide=True)
    with bo_app.test_request_context("/"):
        ledger.get_record(db.session, city["wife"])
        ledger.get_record(db.session, city["head"])
        db.session.commit()
    assert [(a["action"], a["resident"]) for a in _alerts(bo_app)] == [("ledger.view", city["wife"])]
    clock.advance(days=400)
    with bo_app.test_request_context("/"):
        ledger.get_record(db.session, city["wife"])
        db.session.commit()
    assert len(_alerts(bo_app)) == 1


def test_a_move_taking_a_protected_person_along_is_flagged_sensitive_and_never_returned_automatically(
        bo_app, backoffice, city):
    first = deliver(bo_app, city, "move_out", move())
    _protect(bo_app, city["wife"], hide=True)
    # A second move-out naming the same people would be returned automatically as a duplicate; not now.
    second = deliver(bo_app, city, "move_out", move())
    from backoffice.extensions import db

    with bo_app.app_context():
        plain, flagged = db.session.get(Case, first), db.session.get(Case, second)
        assert not plain.sensitive
        assert flagged.sensitive and flagged.status is CaseStatus.IN_REVIEW
        assert {"support_measure", "would_return"} <= {f["code"] for f in json.loads(flagged.findings)}


def test_a_clerk_records_a_measure_on_the_page_and_only_another_person_can_put_it_in_force(bo_app, backoffice, city):
    from backoffice.extensions import db
    from backoffice.models import Resident, SupportMeasure
    from tests.conftest import csrf_from

    with bo_app.app_context():
        atena = db.session.get(Resident, city["wife"]).atena_number
    both = backoffice.client_for("both_d", "clerk", "approver", terminal="t-both")
    token = csrf_from(both, "/support-measures/")
    today = clock_module.today_jst()
    period = {"starts_on": today.isoformat(), "ends_on": (today + dt.timedelta(days=365)).isoformat()}
    bad = both.post("/support-measures/", data={"csrf_token": token, "atena_number": "T000", **period})
    assert bad.status_code == 400 and "宛名番号" in bad.get_data(as_text=True)
    done = both.post("/support-measures/", data={"csrf_token": token, "atena_number": atena,
                                                 "hide_from_household": "1", **period})
    assert done.status_code == 302
    with bo_app.app_context():
        measure_id = db.session.execute(select(SupportMeasure.id)).scalar_one()
    own = both.post(f"/support-measures/{measure_id}/approve", data={"csrf_token": token})
    assert own.status_code == 400 and "別の承認者" in own.get_data(as_text=True)
    approver = backoffice.client_for("approver_e", "approver", terminal="t-approver")
    token = csrf_from(approver, "/support-measures/")
    assert approver.post(f"/support-measures/{measure_id}/approve", data={"csrf_token": token}).status_code == 302
    assert "実施中" in approver.get("/support-measures/").get_data(as_text=True)
    from backoffice.services import support

    with bo_app.app_context():
        assert support.in_force(db.session, city["wife"]).approved_by == "approver_e"


# -- the portal never shows a protected person's address to the other party ----------------------------------


def _sent_to_portal(bo_app) -> str:
    """Every message the back office sealed for the portal, opened with the portal's keys, as one text."""
    from backoffice.extensions import db
    from backoffice.models import Outbox
    from core.envelope import KeyRegistry, open_envelope

    keys = KeyRegistry.from_config({"BRIDGE_KEY_DIRECTORY": bo_app.config["BRIDGE_KEY_DIRECTORY"]}, party="portal")
    with bo_app.app_context():
        rows = db.session.execute(select(Outbox).where(Outbox.recipient == "portal")
                                  .order_by(Outbox.id)).scalars().all()
        sealed = [(r.message_type, r.envelope) for r in rows]
    assert sealed  # the portal was told something: the check below is not vacuous
    return json.dumps([open_envelope(envelope, me="portal", keys=keys, accepted_types={kind},
                                     max_age=dt.timedelta(days=1), now=clock_module.utcnow()).payload
                       for kind, envelope in sealed], ensure_ascii=False)


def _moved_away(bo_app, city) -> dict[str, str]:
    """The wife has left for an address of her own in the city, in a household of her own; returns what it is."""
    from backoffice.extensions import db
    from backoffice.models import Resident
    from backoffice.services import ledger
    from tests.factories import make_household

    with bo_app.test_request_context("/"):
        wife = db.session.get(Resident, city["wife"])
        wife.household_id = make_household(db.session, householder_name=wife.name).id
        wife.banchi, wife.katagaki = "88番地12", "コーポ若葉203号"
        wife.relationship_to_head, wife.is_householder = "世帯主", True
        db.session.commit()
        return {"address": ledger.address_text(wife), "banchi": wife.banchi, "katagaki": wife.katagaki}


def test_the_other_party_never_reads_the_protected_persons_address_in_what_the_portal_is_sent(
        bo_app, backoffice, city):
    # The attack: the husband names his wife in a move-out; the clerk who returns it explains, in the reason,
    # where she now lives. The portal (and whoever holds the husband's account) must not learn it.
    from backoffice.extensions import db
    from backoffice.services import cases

    where = _moved_away(bo_app, city)
    _protect(bo_app, city["wife"], hide=True)
    case_id = deliver(bo_app, city, "move_out", move([("宮沢　トシ", "1992-11-27")]))
    clerk = backoffice.client_for("clerk_page", "clerk", terminal="t-clerk")
    assert "窓口または郵送で申請者に伝えて" in clerk.get(f"/cases/{case_id}").get_data(as_text=True)  # told so
    with bo_app.test_request_context("/"):
        cases.return_case(db.session, case_id, by=staff(db.session, "clerk_a"),
                          reason=f"宮沢トシさんは{where['address']}に別の世帯として住んでいるため、届出できません。")
        db.session.commit()
        kept = db.session.get(Case, case_id).status_reason
    sent = _sent_to_portal(bo_app)
    assert where["banchi"] not in sent and where["katagaki"] not in sent
    assert "returned" in sent  # the husband still learns his application came back ...
    assert "city_will_contact" in sent  # ... with the fixed reason, worded by the portal in his language
    assert where["address"] in kept  # ... and the clerk's words stay in the back office for the file


def test_a_move_in_reservation_from_elsewhere_naming_her_tells_the_portal_nothing_a_stranger_would_not_get(
        bo_app, city):
    # The attack: the other party, living elsewhere, reserves a move into this city naming her and someone who
    # lives nowhere here. "Already a resident here" (or any answer but the stranger's) says where she lives.
    from tests.backoffice.case_fixtures import status_messages

    stranger = [("佐藤　一郎", "1985-01-01")]
    control = deliver(bo_app, city, "move_in_reservation", move(stranger))
    expected = status_messages(bo_app)
    assert [(m["status"], m["reason"]) for m in expected] == [("received", None)]
    _protect(bo_app, city["wife"], hide=True)
    case_id = deliver(bo_app, city, "move_in_reservation", move([("宮沢　トシ", "1992-11-27"), *stranger]))
    sent = status_messages(bo_app)[len(expected):]
    assert [(m["status"], m["reason"]) for m in sent] == [("received", None)]
    from backoffice.extensions import db

    with bo_app.app_context():
        case = db.session.get(Case, case_id)
        assert case.sensitive and case.status is CaseStatus.IN_REVIEW  # a clerk decides, flagged
        assert "support_measure" in {f["code"] for f in json.loads(case.findings)}
        assert not db.session.get(Case, control).sensitive


@pytest.mark.parametrize("kind", ["move_out", "in_city_reservation"])
def test_naming_her_in_a_move_here_tells_the_portal_what_naming_a_person_who_lives_nowhere_here_does(
        bo_app, city, kind):
    # The attack: the other party files a move naming her, now in a household of her own here. Any answer but
    # the one a person unknown here gets (or the one an unprotected resident of another household gets) says
    # that she lives in this city.
    from backoffice.extensions import db
    from tests.backoffice.case_fixtures import status_messages

    def answers(receipt: str) -> list[tuple[str, str | None]]:
        return [(m["status"], m["reasonCode"]) for m in status_messages(bo_app) if m["receiptNumber"] == receipt]

    _moved_away(bo_app, city)
    deliver(bo_app, city, kind, move([("佐藤　一郎", "1985-01-01")]), receipt="stranger")
    _protect(bo_app, city["wife"], hide=True)
    case_id = deliver(bo_app, city, kind, move([("宮沢　トシ", "1992-11-27")]), receipt="her")

    assert answers("her") == answers("stranger") != []
    with bo_app.app_context():
        case = db.session.get(Case, case_id)
        assert case.sensitive and case.status is CaseStatus.IN_REVIEW  # a clerk decides, flagged
        assert "support_measure" in {f["code"] for f in json.loads(case.findings)}


def test_the_protected_person_reads_the_clerks_reason_on_her_own_application(bo_app, city):
    from backoffice.extensions import db
    from backoffice.services import cases
    from tests.backoffice.test_who_may_file import make_card_for

    _protect(bo_app, city["wife"], hide=True)
    hers = make_card_for(bo_app, city, "wife")
    case_id = deliver(bo_app, hers, "certificate", {**CERTIFICATE, "persons": "self"})
    with bo_app.test_request_context("/"):
        cases.return_case(db.session, case_id, by=staff(db.session, "clerk_a"),
                          reason="写しの通数を確認してください。/ Please check the number of copies.")
        db.session.commit()
    assert "写しの通数を確認してください" in _sent_to_portal(bo_app)


def test_a_household_certificate_leaving_the_protected_person_off_tells_the_portal_nothing_of_her(
        bo_app, backoffice, city):
    # No channel to the portal carries ledger data today (status, certificate verification): this keeps it so.
    _protect(bo_app, city["wife"], hide=True)
    case_id = deliver(bo_app, city, "certificate", CERTIFICATE)
    _approve_case(bo_app, backoffice, case_id)
    sent = _sent_to_portal(bo_app)
    assert "certificate.issued" not in sent and "codeHash" in sent
    for secret in ("トシ", "1992-11-27", "妻"):
        assert secret not in sent


# -- extensions and the household members covered, on the measure's page, each by two people ------------------


def _add_child(bo_app, city) -> int:
    from backoffice.extensions import db
    from backoffice.models import Resident
    from tests.factories import make_resident

    with bo_app.test_request_context("/"):
        head = db.session.get(Resident, city["head"])
        child = make_resident(db.session, bo_app.config, household=head.household, name="宮沢　清六",
                              name_kana="ミヤザワ　セイロク", birth_date=dt.date(2015, 4, 29),
                              relationship_to_head="子", is_householder=False, banchi=head.banchi)
        db.session.commit()
        return int(child.id)


def test_an_extension_and_a_child_covered_are_asked_for_on_the_page_and_take_effect_only_once_another_approves(
        bo_app, backoffice, city):
    from backoffice.extensions import db
    from backoffice.models import SupportMeasure
    from backoffice.services import support
    from tests.conftest import csrf_from

    child = _add_child(bo_app, city)
    measure_id = _protect(bo_app, city["wife"], hide=True)
    with bo_app.app_context():
        old_end = db.session.get(SupportMeasure, measure_id).ends_on
    page = f"/support-measures/{measure_id}"
    both = backoffice.client_for("both_d", "clerk", "approver", terminal="t-both")
    token = csrf_from(both, page)
    shown = both.get(page).get_data(as_text=True)
    assert "支援措置を延長する" in shown and "宮沢　清六" in shown

    # Bad input names the field and changes nothing.
    no_reason = both.post(f"{page}/extension", data={"csrf_token": token,
                                                     "ends_on": (old_end + dt.timedelta(days=300)).isoformat()})
    assert no_reason.status_code == 400 and "延長の理由" in no_reason.get_data(as_text=True)
    too_far = both.post(f"{page}/extension", data={"csrf_token": token, "reason": "警察署の意見",
                                                   "ends_on": (old_end + dt.timedelta(days=400)).isoformat()})
    assert too_far.status_code == 400 and "1年以内" in too_far.get_data(as_text=True)

    new_end = old_end + dt.timedelta(days=365)
    asked = both.post(f"{page}/extension", data={"csrf_token": token, "ends_on": new_end.isoformat(),
                                                 "reason": "警察署の意見（継続の必要あり）"})
    assert asked.status_code == 302
    waiting = both.post(f"{page}/covered", data={"csrf_token": token, "covered": [str(child)]})
    assert waiting.status_code == 400 and "承認待ちの変更" in waiting.get_data(as_text=True)  # one change at a time
    own = both.post(f"{page}/extension/approve", data={"csrf_token": token})
    assert own.status_code == 400 and "別の承認者" in own.get_data(as_text=True)
    with bo_app.app_context():
        assert support.in_force(db.session, city["wife"], on=old_end + dt.timedelta(days=1)) is None

    approver = backoffice.client_for("approver_e", "approver", terminal="t-approver")
    atoken = csrf_from(approver, page)
    assert approver.post(f"{page}/extension/approve", data={"csrf_token": atoken}).status_code == 302
    with bo_app.app_context():
        assert support.in_force(db.session, city["wife"], on=old_end + dt.timedelta(days=1)).id == measure_id
        assert support.in_force(db.session, child) is None

    # The child covered: asked by one, approved by another, then protected like the mother.
    outsider = both.post(f"{page}/covered", data={"csrf_token": token, "covered": [str(city["head"] + 1000)]})
    assert outsider.status_code == 400 and "同じ世帯" in outsider.get_data(as_text=True)
    assert both.post(f"{page}/covered", data={"csrf_token": token, "covered": [str(child)]}).status_code == 302
    with bo_app.app_context():
        assert support.in_force(db.session, child) is None  # not before the second person
    assert approver.post(f"{page}/covered/approve", data={"csrf_token": atoken}).status_code == 302
    with bo_app.app_context():
        assert support.in_force(db.session, child).id == measure_id
    shown = approver.get(page).get_data(as_text=True)
    assert "警察署の意見（継続の必要あり）" in shown and "承認済みの変更" in shown

    with bo_app.app_context():
        actions = [tuple(a) for a in db.session.execute(select(AuditLog.action, AuditLog.actor).where(
            AuditLog.action.like("support_measure.%"), AuditLog.action != "support_measure.view")
            .order_by(AuditLog.seq)).all()]
    assert actions[2:] == [("support_measure.extension_request", "both_d"),
                           ("support_measure.extension_approve", "approver_e"),
                           ("support_measure.covered_request", "both_d"),
                           ("support_measure.covered_approve", "approver_e")]


def test_a_child_covered_is_left_off_the_fathers_household_certificate(bo_app, backoffice, city):
    from backoffice.extensions import db
    from backoffice.services import support

    child = _add_child(bo_app, city)
    measure_id = _protect(bo_app, city["wife"], hide=True)
    with bo_app.test_request_context("/"):
        support.request_covered(db.session, measure_id, covered_ids=[child], by=staff(db.session, "clerk_a"))
        db.session.commit()
    with bo_app.test_request_context("/"):
        support.approve_covered(db.session, measure_id, by=staff(db.session, "approver_b"))
        db.session.commit()
    _approve_case(bo_app, backoffice, deliver(bo_app, city, "certificate", CERTIFICATE))
    with bo_app.app_context():
        cert = db.session.execute(select(IssuedCertificate)).scalar_one()
        assert json.loads(cert.resident_ids) == [city["head"]]


# -- the security officer's alerts in the metrics (R18) --------------------------------------------------------


def test_the_security_officers_alerts_are_in_the_metrics_by_kind_and_count_only(bo_app, backoffice, city):
    import re
    import secrets

    from backoffice.extensions import db
    from backoffice.models import Resident
    from backoffice.services import ledger
    from tests.conftest import csrf_from

    _protect(bo_app, city["wife"], hide=True)
    with bo_app.test_request_context("/"):
        ledger.get_record(db.session, city["wife"])
        ledger.get_record(db.session, city["wife"])
        db.session.commit()
        wife = db.session.get(Resident, city["wife"])
        secrets_of_hers = [wife.name, wife.atena_number, wife.juminhyo_code, wife.banchi]
    bo_app.config["METRICS_TOKEN"] = token = secrets.token_urlsafe(16)

    def scrape() -> dict[str, float]:
        text = bo_app.test_client().get("/metrics", headers={"Authorization": f"Bearer {token}"}).text
        for secret in secrets_of_hers:
            assert secret not in text
        lines = [line for line in text.splitlines() if line.startswith("security_alerts_")]
        assert all(re.fullmatch(r'security_alerts_\w+\{kind="\w+",party="muni:032051"\} \d+\.0', line)
                   for line in lines), lines  # kind and party, nothing else
        return {line.split(" ")[0]: float(line.split(" ")[1]) for line in lines}

    party = 'party="muni:032051"'
    before = scrape()
    assert before[f'security_alerts_raised_total{{kind="support_measure_access",{party}}}'] == 2
    assert before[f'security_alerts_unacknowledged{{kind="support_measure_access",{party}}}'] == 2
    assert before[f'security_alerts_unacknowledged{{kind="staff_access",{party}}}'] == 0

    with bo_app.app_context():
        alert_id = db.session.execute(select(BridgeAlert.id).where(
            BridgeAlert.kind == "support_measure_access").order_by(BridgeAlert.id)).scalars().first()
    officer = backoffice.client_for("officer", "auditor", terminal="t-officer")
    done = officer.post(f"/audit/alerts/{alert_id}/acknowledge",
                        data={"csrf_token": csrf_from(officer, "/audit/alerts"), "note": "担当課の正当な確認。"})
    assert done.status_code == 302
    after = scrape()
    assert after[f'security_alerts_raised_total{{kind="support_measure_access",{party}}}'] == 2
    assert after[f'security_alerts_unacknowledged{{kind="support_measure_access",{party}}}'] == 1


def test_the_only_free_text_a_municipality_sends_the_portal_is_a_cases_reason():
    # Everything else a municipality sends the portal is a code, a hash, a date or a status: no place for an
    # address. A new free-text field fails this test, so whoever adds one sees it must pass support.for_portal.
    from bridge import handlers, messages
    from portal.services import status, verification

    status.register_handlers()
    verification.register_handlers()

    def free_text(schema, path):
        if not isinstance(schema, dict):
            return []
        kinds = schema.get("type") if isinstance(schema.get("type"), list) else [schema.get("type")]
        found = []
        if "string" in kinds and not ({"enum", "const", "format"} & schema.keys()) \
                and schema.get("pattern", r"\S") == r"\S":
            found.append(path)
        for name, sub in (schema.get("properties") or {}).items():
            found += free_text(sub, f"{path}.{name}")
        return found + free_text(schema.get("items"), f"{path}[]")

    from_municipalities = sorted(t for t in handlers.accepted_types("portal")
                                 if handlers.registration_for(t, zone="portal").accepts("muni:032051"))
    assert {"application.status", "certificate.issued", "certificate.revoked"} <= set(from_municipalities)
    found = [p for t in from_municipalities for p in free_text(messages.schema_for(t), t)]
    # A granted disclosure request's answer (R20) is the signer's own record and who accessed it, made only for
    # the person the signature certificate names (tests/backoffice/test_resident_requests_intake.py): her own
    # address reaches only her. Every other free text is the case's reason.
    answer = "application.status.answer."
    assert [p for p in found if not p.startswith(answer)] == ["application.status.reason"]
    assert {p.removeprefix(answer).split(".")[0].rstrip("[]") for p in found if p.startswith(answer)} == {
        "record", "accesses"}


def test_who_is_protected_is_read_once_per_transaction_and_again_once_a_measure_changes_in_it(bo_app, city):
    """Intake asks twice per application; a measure approved, changed or ended in the same transaction counts at once,
    flushed or not."""
    from backoffice.extensions import db
    from backoffice.services import support

    person = city["wife"]
    today = clock_module.today_jst()
    with bo_app.test_request_context("/"):
        measure = support.request(db.session, resident_id=person, covered_ids=[], starts_on=today,
                                  ends_on=today + dt.timedelta(days=365), hide_from_household=True,
                                  by=staff(db.session, "clerk_a"))
        db.session.commit()
        measure_id = measure.id
    with bo_app.test_request_context("/"):
        statements: list[str] = []
        engine = db.session.get_bind()
        listen = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listen)
        try:
            assert person not in support.protected(db.session)
            assert person not in support.protected(db.session)
            reads = [s for s in statements if "support_measure" in s and s.lstrip().upper().startswith("SELECT")]
            assert len(reads) == 1, reads
            support.approve(db.session, measure_id, by=staff(db.session, "approver_b"))
            assert support.protected(db.session).get(person) == measure_id
            changed = db.session.get(SupportMeasure, measure_id)
            changed.ends_on = today - dt.timedelta(days=1)  # ended, not flushed
            assert person not in support.protected(db.session)
            changed.ends_on = today + dt.timedelta(days=30)
            with db.session.no_autoflush:
                db.session.flush()  # flushed outside a read: the next read must not trust what it read before
            assert support.protected(db.session).get(person) == measure_id
        finally:
            event.remove(engine, "before_cursor_execute", listen)
        db.session.rollback()
