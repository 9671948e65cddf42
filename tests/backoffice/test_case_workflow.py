"""The case workflow (R7): confirm, return, reject, approval by a second person with a fresh code."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pyotp
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from backoffice.models import AuditLog, Case, CaseEvent, CaseStatus, Outbox
from backoffice.services import approval, audit
from backoffice.services import cases as workflow
from backoffice.services.cases import CaseError
from tests.backoffice.case_fixtures import (  # no_effects: autouse, for this module
    audit_actions,
    deliver,
    events,
    load_case,
    make_city,
    no_effects,  # noqa: F401
    staff,
    status_messages,
)


def _ja(bo_app: Any, message: Any) -> str:
    """A refusal's message as a Japanese page shows it (it is from the catalogue: it reads in the page's language)."""
    with bo_app.test_request_context("/?lang=ja"):
        return str(message)


@pytest.fixture
def city(bo_app: Any, tmp_path: Any) -> dict[str, Any]:
    """A household of two with a card (see case_fixtures)."""
    return make_city(bo_app, tmp_path)


@pytest.fixture
def people(backoffice: Any) -> Any:
    """Two clerks and two approvers (one of them also a clerk)."""
    backoffice.add_staff("clerk_a", "clerk")
    backoffice.add_staff("clerk_b", "clerk")
    backoffice.add_staff("approver_c", "approver")
    backoffice.add_staff("both_d", "clerk", "approver")
    return backoffice


def _step(bo_app: Any, fn: Any, case_id: int, login_id: str, **kwargs: Any) -> Case:
    """Run one workflow step as ``login_id`` in its own transaction, as a request does."""
    from backoffice.extensions import db

    with bo_app.test_request_context("/"):
        try:
            case = fn(db.session, case_id, by=staff(db.session, login_id), **kwargs)
        except CaseError:
            db.session.rollback()
            raise
        db.session.commit()
        return case


def _counts(bo_app: Any) -> tuple[int, int, int]:
    from backoffice.extensions import db

    with bo_app.app_context():
        return (db.session.scalar(select(func.count()).select_from(CaseEvent)),
                db.session.scalar(select(func.count()).select_from(AuditLog)),
                db.session.scalar(select(func.count()).select_from(Outbox)))


def test_a_case_confirmed_by_one_clerk_is_approved_by_another_person_and_the_portal_hears_each_step(bo_app, city,
                                                                                                   people):
    case_id = deliver(bo_app, city, receipt="R-HAPPY")
    _step(bo_app, workflow.confirm, case_id, "clerk_a")
    assert load_case(bo_app, case_id).status is CaseStatus.CONFIRMED
    _step(bo_app, workflow.approve, case_id, "approver_c", totp_code=people.totp("approver_c"))
    case = load_case(bo_app, case_id)
    assert case.status is CaseStatus.APPROVED
    assert (case.confirmed_by, case.approved_by) != (None, None) and case.confirmed_by != case.approved_by
    assert events(bo_app, case_id) == [("received", "bridge", "received"), ("confirm", "clerk_a", "confirmed"),
                                       ("approve", "approver_c", "approved")]
    actions = audit_actions(bo_app, case_id)
    assert ("case.confirm", "clerk_a", "success") in actions and ("case.approve", "approver_c", "success") in actions
    # The resident sees: received, in review (a confirmed case is still in review for them), approved.
    statuses = Counter(m["status"] for m in status_messages(bo_app) if m["receiptNumber"] == "R-HAPPY")
    assert statuses == Counter({"received": 1, "in_review": 1, "approved": 1})


def test_the_clerk_who_confirmed_cannot_approve_even_with_the_approver_role(bo_app, city, people):
    case_id = deliver(bo_app, city)
    _step(bo_app, workflow.confirm, case_id, "both_d")
    before = _counts(bo_app)
    with pytest.raises(CaseError) as refused:
        _step(bo_app, workflow.approve, case_id, "both_d", totp_code=people.totp("both_d"))
    assert refused.value.code == "same_person"
    assert "確認した職員は同じ案件を承認できません" in _ja(bo_app, refused.value.message)
    assert load_case(bo_app, case_id).status is CaseStatus.CONFIRMED
    assert _counts(bo_app) == before


def test_only_the_approver_role_may_approve(bo_app, city, people):
    case_id = deliver(bo_app, city)
    _step(bo_app, workflow.confirm, case_id, "clerk_a")
    with pytest.raises(CaseError) as refused:
        _step(bo_app, workflow.approve, case_id, "clerk_b", totp_code=people.totp("clerk_b"))
    assert refused.value.code == "need_approver"
    assert load_case(bo_app, case_id).status is CaseStatus.CONFIRMED


def test_the_database_refuses_an_approval_by_the_confirmer_whatever_writes_it(bo_app, city, people):
    from backoffice.extensions import db

    case_id = deliver(bo_app, city)
    with bo_app.app_context():
        someone = staff(db.session, "both_d").id
        with pytest.raises(IntegrityError, match="approver_is_not_confirmer"):
            db.session.execute(text("UPDATE application_case SET confirmed_by = :s, approved_by = :s, "
                                    "status = 'approved' WHERE id = :id"), {"s": someone, "id": case_id})
        db.session.rollback()
        # An approval without any confirmation is refused too.
        with pytest.raises(IntegrityError, match="approver_is_not_confirmer"):
            db.session.execute(text("UPDATE application_case SET approved_by = :s WHERE id = :id"),
                               {"s": someone, "id": case_id})
        db.session.rollback()
        with pytest.raises(IntegrityError, match="approver_is_not_confirmer"):
            db.session.execute(text(
                "INSERT INTO application_case (receipt_number, message_id, kind, status, mover_resident_ids, "
                "signed_jws, sign_cert_serial, signature_checked_at, findings, sensitive, received_at, updated_at, "
                "confirmed_by, approved_by, version) SELECT 'R-FORGED', message_id, kind, 'approved', "
                "mover_resident_ids, signed_jws, sign_cert_serial, signature_checked_at, findings, sensitive, "
                "received_at, updated_at, :s, :s, 1 FROM application_case WHERE id = :id"),
                {"s": someone, "id": case_id})
        db.session.rollback()
    assert load_case(bo_app, case_id).approved_by is None


@pytest.mark.parametrize("code", ["", "000000", "sign-in", "used"])
def test_approval_without_a_fresh_valid_code_is_refused_and_nothing_changes(bo_app, city, people, code):
    case_id = deliver(bo_app, city)
    _step(bo_app, workflow.confirm, case_id, "clerk_a")
    if code == "sign-in":
        # The code the approver signed in with is spent: approval needs a new one (step-up).
        client = people.enrolled_client("approver-terminal")
        code = people.totp("approver_c")
        assert people.sign_in(client, "approver_c", totp=code).status_code == 302
    elif code == "used":
        other = deliver(bo_app, city, "certificate", {
            "type": "certificate", "municipalityCode": "032051", "kind": "juminhyo", "persons": "self",
            "items": {"householder": False, "honseki": False, "juminhyoCode": False, "myNumber": False},
            "copies": 1, "purpose": "提出用", "delivery": "post"})  # a valid request: approving it issues one
        _step(bo_app, workflow.confirm, other, "clerk_a")
        code = people.totp("approver_c")
        _step(bo_app, workflow.approve, other, "approver_c", totp_code=code)
    elif code == "000000":
        people.clock.advance(seconds=30)
        real = pyotp.TOTP(people.secrets["approver_c"]).at(people.clock.now)
        code = "000000" if real != "000000" else "111111"
    before = _counts(bo_app)
    with pytest.raises(CaseError) as refused:
        _step(bo_app, workflow.approve, case_id, "approver_c", totp_code=code)
    assert refused.value.field == "totp_code" and "ワンタイムコード" in _ja(bo_app, refused.value.message)
    case = load_case(bo_app, case_id)
    assert case.status is CaseStatus.CONFIRMED and case.approved_by is None
    assert _counts(bo_app) == before


def test_return_sends_the_reason_the_resident_can_act_on_to_the_portal(bo_app, city, people):
    case_id = deliver(bo_app, city, receipt="R-RETURN")
    reason = "転出予定日が空欄です。日付を入れて送り直してください。"
    _step(bo_app, workflow.return_case, case_id, "clerk_a", reason=reason)
    case = load_case(bo_app, case_id)
    assert case.status is CaseStatus.RETURNED and case.status_reason == reason
    returned = [m for m in status_messages(bo_app) if m["receiptNumber"] == "R-RETURN" and m["status"] == "returned"]
    assert [m["reason"] for m in returned] == [reason]
    assert events(bo_app, case_id)[-1] == ("return", "clerk_a", "returned")
    assert ("case.return", "clerk_a", "success") in audit_actions(bo_app, case_id)
    # A returned case is closed: it cannot be confirmed or approved afterwards.
    with pytest.raises(CaseError) as refused:
        _step(bo_app, workflow.confirm, case_id, "clerk_b")
    assert refused.value.code == "not_open"


def test_reject_needs_a_reason_and_tells_the_portal(bo_app, city, people):
    case_id = deliver(bo_app, city, receipt="R-REJECT")
    with pytest.raises(CaseError) as refused:
        _step(bo_app, workflow.reject, case_id, "clerk_a", reason="   ")
    assert refused.value.field == "reason" and "理由を入力してください" in _ja(bo_app, refused.value.message)
    assert load_case(bo_app, case_id).status is CaseStatus.RECEIVED
    _step(bo_app, workflow.reject, case_id, "clerk_a", reason="同一内容の届出が重複しています。")
    assert load_case(bo_app, case_id).status is CaseStatus.REJECTED
    rejected = [m for m in status_messages(bo_app) if m["receiptNumber"] == "R-REJECT" and m["status"] == "rejected"]
    assert [m["reason"] for m in rejected] == ["同一内容の届出が重複しています。"]
    assert events(bo_app, case_id)[-1] == ("reject", "clerk_a", "rejected")


def test_an_approver_may_send_a_confirmed_case_back_instead_of_approving(bo_app, city, people):
    case_id = deliver(bo_app, city)
    _step(bo_app, workflow.confirm, case_id, "clerk_a")
    _step(bo_app, workflow.return_case, case_id, "approver_c", reason="世帯主の記載を確認してください。")
    assert load_case(bo_app, case_id).status is CaseStatus.RETURNED
    with pytest.raises(CaseError) as refused:
        _step(bo_app, workflow.approve, case_id, "approver_c", totp_code=people.totp("approver_c"))
    assert refused.value.code == "not_confirmed"


def test_a_claimed_case_is_worked_only_by_its_claimer_until_released(bo_app, city, people):
    case_id = deliver(bo_app, city)
    _step(bo_app, workflow.claim, case_id, "clerk_a")
    assert load_case(bo_app, case_id).claimed_by is not None
    for fn, kwargs in ((workflow.claim, {}), (workflow.confirm, {}), (workflow.return_case, {"reason": "x"}),
                       (workflow.release, {})):
        with pytest.raises(CaseError) as refused:
            _step(bo_app, fn, case_id, "clerk_b", **kwargs)
        assert refused.value.code in ("claimed_by_other", "not_claimed")
    _step(bo_app, workflow.release, case_id, "clerk_a")
    assert load_case(bo_app, case_id).claimed_by is None
    _step(bo_app, workflow.claim, case_id, "clerk_b")
    _step(bo_app, workflow.confirm, case_id, "clerk_b")
    confirmed = load_case(bo_app, case_id)
    assert confirmed.status is CaseStatus.CONFIRMED and confirmed.claimed_by is None  # back to the inbox
    assert [e[0] for e in events(bo_app, case_id)] == ["received", "claim", "release", "claim", "confirm"]
    assert [a[0] for a in audit_actions(bo_app, case_id) if a[2] == "success"][-4:] == [
        "case.claim", "case.release", "case.claim", "case.confirm"]


def test_an_effect_that_refuses_undoes_the_whole_approval(bo_app, city, people, monkeypatch):
    def refuse(session, case, by):
        case.status_reason = "changed by the effect"
        raise CaseError("moveDate", "転出予定日が過ぎています。 / The move date has passed.")

    monkeypatch.setitem(approval.APPROVAL_EFFECTS, "move_out", refuse)
    case_id = deliver(bo_app, city)
    _step(bo_app, workflow.confirm, case_id, "clerk_a")
    before = _counts(bo_app)
    with pytest.raises(CaseError) as refused:
        _step(bo_app, workflow.approve, case_id, "approver_c", totp_code=people.totp("approver_c"))
    assert refused.value.field == "moveDate"
    case = load_case(bo_app, case_id)
    assert case.status is CaseStatus.CONFIRMED and case.approved_by is None and case.status_reason is None
    assert _counts(bo_app) == before


def test_complete_finishes_an_approved_case_and_tells_the_portal(bo_app, city, people, monkeypatch):
    from backoffice.extensions import db

    monkeypatch.setitem(approval.APPROVAL_EFFECTS, "move_out", lambda session, case, by: None)
    case_id = deliver(bo_app, city, receipt="R-DONE")
    with bo_app.test_request_context("/"):
        with pytest.raises(CaseError):
            workflow.complete(db.session, db.session.get(Case, case_id), by=None)
        db.session.rollback()
    _step(bo_app, workflow.confirm, case_id, "clerk_a")
    _step(bo_app, workflow.approve, case_id, "approver_c", totp_code=people.totp("approver_c"))
    with bo_app.test_request_context("/"):
        workflow.complete(db.session, db.session.get(Case, case_id), by=None, detail={"step": "転入通知"})
        db.session.commit()
    assert load_case(bo_app, case_id).status is CaseStatus.COMPLETED
    assert events(bo_app, case_id)[-1] == ("complete", "bridge", "completed")
    assert "completed" in [m["status"] for m in status_messages(bo_app) if m["receiptNumber"] == "R-DONE"]


def test_every_kind_has_its_effect_and_a_kind_without_one_is_refused_not_approved(bo_app, city, people,
                                                                                 monkeypatch):
    import importlib

    from backoffice.services import certificates, moves

    importlib.reload(approval)  # the real table, not the no_effects fixture's (set back after the test)
    assert set(approval.APPROVAL_EFFECTS) == set(workflow.KINDS)
    assert approval.APPROVAL_EFFECTS["certificate"] is certificates.issue_on_approval
    assert approval.APPROVAL_EFFECTS["move_out"] is moves.approve_move_out
    monkeypatch.delitem(approval.APPROVAL_EFFECTS, "move_out")
    case_id = deliver(bo_app, city)
    _step(bo_app, workflow.confirm, case_id, "clerk_a")
    with pytest.raises(CaseError) as refused:
        _step(bo_app, workflow.approve, case_id, "approver_c", totp_code=people.totp("approver_c"))
    assert refused.value.code == "no_effect"
    case = load_case(bo_app, case_id)
    assert case.status is CaseStatus.CONFIRMED and case.approved_by is None


def test_fifty_concurrent_approvals_and_returns_end_in_one_state_and_one_effect(bo_app, city, people, monkeypatch):
    from backoffice.extensions import db

    def count(session, case, by):
        audit.record("test.effect", target_type="case", target_id=case.id, actor=by.login_id, actor_id=by.id)

    monkeypatch.setitem(approval.APPROVAL_EFFECTS, "move_out", count)
    approvers = [f"approver_{i}" for i in range(5)]
    for login in approvers:
        people.add_staff(login, "approver")
    case_id = deliver(bo_app, city, receipt="R-RACE")
    _step(bo_app, workflow.confirm, case_id, "clerk_a")
    people.clock.advance(seconds=30)
    codes = {login: pyotp.TOTP(people.secrets[login]).at(people.clock.now) for login in approvers}
    barrier = threading.Barrier(50)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        login = approvers[i % 5] if i % 2 == 0 else ("clerk_a" if i % 4 == 1 else "clerk_b")
        with bo_app.test_request_context("/"):
            me = staff(db.session, login)
            db.session.commit()
            barrier.wait(timeout=60)
            try:
                if i % 2 == 0:
                    workflow.approve(db.session, case_id, by=me, totp_code=codes[login])
                    result = "approved"
                else:
                    workflow.return_case(db.session, case_id, by=me, reason="記載に誤りがあります。")
                    result = "returned"
                db.session.commit()
            except CaseError as exc:
                db.session.rollback()
                result = f"refused:{exc.code}"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(outcomes) == 50
    winners = [o for o in outcomes if not o.startswith("refused")]
    assert len(winners) == 1, Counter(outcomes)
    case = load_case(bo_app, case_id)
    assert case.status.value == winners[0]
    with bo_app.app_context():
        effects = db.session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "test.effect"))
    assert effects == (1 if winners[0] == "approved" else 0)
    final = [e for e in events(bo_app, case_id) if e[0] in ("approve", "return")]
    assert len(final) == 1
    portal_final = [m["status"] for m in status_messages(bo_app)
                    if m["receiptNumber"] == "R-RACE" and m["status"] in ("approved", "returned")]
    assert portal_final == [winners[0]]


def test_every_status_the_back_office_sends_is_one_the_portal_understands():
    from portal.models import ApplicationStatus

    assert set(workflow.PORTAL_STATUS) == set(CaseStatus)
    assert {ApplicationStatus(value) for value in workflow.PORTAL_STATUS.values()} <= set(ApplicationStatus)


def test_the_history_of_a_case_can_be_neither_changed_nor_deleted(bo_app, city, people):
    from backoffice.extensions import db

    case_id = deliver(bo_app, city)
    _step(bo_app, workflow.confirm, case_id, "clerk_a")
    with bo_app.app_context():
        for statement in ("UPDATE case_event SET actor = 'someone_else' WHERE case_id = :id",
                          "DELETE FROM case_event WHERE case_id = :id"):
            with pytest.raises(DBAPIError, match="append-only"):
                db.session.execute(text(statement), {"id": case_id})
            db.session.rollback()
    assert events(bo_app, case_id) == [("received", "bridge", "received"), ("confirm", "clerk_a", "confirmed")]
