"""Status messages from municipalities reach "My applications", and only from the municipality concerned."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from bridge.handlers import PermanentFailure
from bridge.jobs.deliver import check_payload
from core import clock
from core.envelope import Opened
from portal.models import Application, ApplicationStatus
from tests.portal.test_applications import Resident, _api_submit, _bearer, _move


@pytest.fixture
def filed(portal_app, cards):
    """A move filed by API: 転出届 to Hanamaki and 転入予約 to Kitakami."""
    resident = Resident(portal_app, cards)
    client, headers = _bearer(portal_app, resident.card)
    body = _api_submit(client, headers, resident.card, _move()).json
    return {p["kind"]: p["receipt_number"] for p in body["parts"]}


def _status(app, sender, receipt, status, reason=None, **code):
    """A status message as it arrives; ``reasonCode=`` for the new form, without it the form before codes."""
    from portal.extensions import db
    from portal.services.status import receive_status

    opened = Opened(message_id=str(uuid.uuid4()), message_type="application.status", sender=sender,
                    recipient="portal", created_at=clock.utcnow(),
                    payload={"receiptNumber": receipt, "status": status, "reason": reason, **code})
    check_payload(opened)
    with app.test_request_context("/"):
        receive_status(db.session, opened)
        db.session.commit()


def _application(app, receipt):
    from portal.extensions import db

    with app.app_context():
        application = db.session.execute(select(Application).where(Application.receipt_number == receipt)).scalar_one()
        return application.status, application.status_reason, [e.status for e in application.events]


def test_a_returned_status_with_its_reason_shows_in_the_history(portal_app, filed):
    receipt = filed["move_out"]
    _status(portal_app, "muni:032051", receipt, "received")
    _status(portal_app, "muni:032051", receipt, "returned", "転居予約を送ってください")
    status, reason, history = _application(portal_app, receipt)
    assert status is ApplicationStatus.RETURNED and reason == "転居予約を送ってください"
    assert history == [ApplicationStatus.SUBMITTED, ApplicationStatus.RECEIVED, ApplicationStatus.RETURNED]


def test_a_municipality_cannot_set_the_status_of_another_municipalitys_application(portal_app, filed):
    with pytest.raises(PermanentFailure):
        _status(portal_app, "muni:032069", filed["move_out"], "approved")
    assert _application(portal_app, filed["move_out"])[0] is ApplicationStatus.SUBMITTED


def test_an_unknown_status_is_a_permanent_failure(portal_app, filed):
    """Refused by the schema on arrival, before the handler runs (tests/bridge/test_messages.py: end to end)."""
    opened = Opened(message_id=str(uuid.uuid4()), message_type="application.status", sender="muni:032051",
                    recipient="portal", created_at=clock.utcnow(),
                    payload={"receiptNumber": filed["move_out"], "status": "teleported", "reason": None})
    with pytest.raises(PermanentFailure) as refused:
        check_payload(opened)
    assert (refused.value.reason, refused.value.detail) == ("schema_invalid", "$.status: enum")
    assert _application(portal_app, filed["move_out"])[0] is ApplicationStatus.SUBMITTED


def test_a_status_that_arrives_late_never_moves_the_application_back(portal_app, filed):
    """A relay republishes what was not acknowledged in time, so an older status can arrive after a newer one."""
    receipt = filed["move_out"]
    _status(portal_app, "muni:032051", receipt, "in_review")
    _status(portal_app, "muni:032051", receipt, "received")
    assert _application(portal_app, receipt)[0] is ApplicationStatus.IN_REVIEW
    _status(portal_app, "muni:032051", receipt, "approved")
    _status(portal_app, "muni:032051", receipt, "completed")
    _status(portal_app, "muni:032051", receipt, "approved")
    status, _, history = _application(portal_app, receipt)
    assert status is ApplicationStatus.COMPLETED
    assert history == [ApplicationStatus.SUBMITTED, ApplicationStatus.IN_REVIEW, ApplicationStatus.APPROVED,
                       ApplicationStatus.COMPLETED]


def _withdrawn(app, receipt):
    """The resident withdrew the application (as the portal records it on a verified signed withdrawal)."""
    from portal.extensions import db
    from portal.services import applications as apps

    with app.app_context():
        application = db.session.execute(select(Application).where(Application.receipt_number == receipt)).scalar_one()
        apps.set_status(db.session, application, ApplicationStatus.WITHDRAWN, actor="resident")
        db.session.commit()


def test_a_withdrawal_the_city_refused_shows_the_application_open_again_with_the_citys_message(portal_app, filed):
    receipt = filed["move_out"]
    _withdrawn(portal_app, receipt)
    _status(portal_app, "muni:032051", receipt, "received")  # a late step from before the withdrawal
    assert _application(portal_app, receipt)[0] is ApplicationStatus.WITHDRAWN
    _status(portal_app, "muni:032051", receipt, "received", "取下げは受け付けられませんでした。")
    status, reason, history = _application(portal_app, receipt)
    assert status is ApplicationStatus.RECEIVED and reason == "取下げは受け付けられませんでした。"
    assert history[-2:] == [ApplicationStatus.WITHDRAWN, ApplicationStatus.RECEIVED]


def test_a_withdrawal_refused_with_a_reason_code_reopens_the_application_in_each_language(portal_app, filed):
    from flask_babel import force_locale

    from portal.applications.labels import reason_label
    from portal.extensions import db

    receipt = filed["move_out"]
    _withdrawn(portal_app, receipt)
    _status(portal_app, "muni:032051", receipt, "received", reasonCode="withdrawal_too_late")
    with portal_app.app_context():
        application = db.session.execute(select(Application).where(Application.receipt_number == receipt)).scalar_one()
        assert application.status is ApplicationStatus.RECEIVED
        assert (application.status_reason, application.status_reason_code) == (None, "withdrawal_too_late")
    with portal_app.test_request_context("/"):
        with force_locale("ja"):
            assert str(reason_label("withdrawal_too_late", None)).startswith("すでに市で手続きを進めている")
        with force_locale("en"):
            assert str(reason_label("withdrawal_too_late", None)).startswith("The city has already started")
