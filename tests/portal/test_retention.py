"""The portal's retention (R16): closed applications with their signed payloads, drafts and sessions go when due."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import func, select

from core import clock as clock_module
from portal.models import (
    Application,
    ApplicationEvent,
    ApplicationKind,
    ApplicationStatus,
    AuditLog,
    Draft,
    PortalAccount,
)


def _application(session, account, status, at, previous=None):
    app = Application(receipt_number=uuid.uuid4().hex[:18], account_id=account.id, kind=ApplicationKind.CERTIFICATE,
                      municipality_code="032051", status=status, signed_jws="eyJ.signed.payload", sign_cert_serial="1",
                      summary="{}", submitted_at=at, updated_at=at, previous_id=previous)
    session.add(app)
    session.flush()
    session.add(ApplicationEvent(application_id=app.id, status=status, actor="portal", at=at))
    return app


def test_closed_applications_past_five_years_and_old_drafts_go_and_everything_younger_or_open_stays(portal_app,
                                                                                                   clock):
    from portal.extensions import db

    now = clock_module.utcnow()
    long_ago, recent = now - dt.timedelta(days=6 * 365), now - dt.timedelta(days=200)
    with portal_app.app_context():
        account = PortalAccount(cert_issuer="CN=sim", cert_serial="42", cert_not_after=now + dt.timedelta(days=900),
                                created_at=long_ago, last_sign_in_at=now)
        db.session.add(account)
        db.session.flush()
        old_first = _application(db.session, account, ApplicationStatus.WITHDRAWN, long_ago)
        old_second = _application(db.session, account, ApplicationStatus.COMPLETED, long_ago, previous=old_first.id)
        keep = {
            _application(db.session, account, ApplicationStatus.COMPLETED, recent).id,  # closed, but young
            _application(db.session, account, ApplicationStatus.IN_REVIEW, long_ago).id,  # old, but still open
        }
        db.session.add_all([
            Draft(account_id=account.id, journey="move", data="{}", updated_at=now - dt.timedelta(days=40)),
            Draft(account_id=account.id, journey="certificate", data="{}", updated_at=now - dt.timedelta(days=5))])
        db.session.commit()
        gone = {old_first.id, old_second.id}

    result = portal_app.test_cli_runner().invoke(args=["retention", "run", "--batch", "1"])
    assert result.exit_code == 0, result.output
    with portal_app.app_context():
        assert set(db.session.execute(select(Application.id)).scalars()) == keep
        assert not gone & set(db.session.execute(select(ApplicationEvent.application_id)).scalars())
        assert db.session.execute(select(Draft.journey)).scalars().all() == ["certificate"]
        kinds = {r.target_id: r for r in db.session.execute(
            select(AuditLog).where(AuditLog.action == "retention.purge")).scalars()}
        assert {"applications", "drafts", "sessions", "processed_messages", "dead_letters", "alerts",
                "audit_log"} == set(kinds)
        assert kinds["applications"].detail_dict()["rows"] == 2 and kinds["drafts"].detail_dict()["rows"] == 1
        assert db.session.execute(select(func.count()).select_from(Application)).scalar_one() == 2
    assert portal_app.test_cli_runner().invoke(args=["audit", "verify"]).exit_code == 0
