"""Status messages from the municipalities: each step the back office takes shows on "My applications".

A granted disclosure request (R20) comes with its answer, kept on that application only: it is shown
to the account that filed it and to no one else (``applications.get_own``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge import messages
from bridge.handlers import PermanentFailure, register
from bridge.jobs.deliver import register_rehearsal
from bridge.queues import QueueNames
from core import clock
from core.config import connected_municipalities
from core.envelope import Opened
from portal.models import Application, ApplicationKind, ApplicationStatus, PortalAccount
from portal.services import applications as apps

STATUS = messages.APPLICATION_STATUS
# Where each status stands on the way to a decision. Messages may arrive out of order (a relay republishes
# what was not acknowledged in time), so a status never moves an application backwards, and nothing
# moves it out of a final one.
_STAGE = {ApplicationStatus.SUBMITTED: 0, ApplicationStatus.RECEIVED: 1, ApplicationStatus.IN_REVIEW: 2,
          ApplicationStatus.APPROVED: 3}
FINAL = frozenset({ApplicationStatus.RETURNED, ApplicationStatus.REJECTED, ApplicationStatus.COMPLETED,
                   ApplicationStatus.WITHDRAWN})


def moves_forward(current: ApplicationStatus, new: ApplicationStatus) -> bool:
    """Whether ``new`` is a step after ``current`` (a final status is after every other one)."""
    if current in FINAL:
        return False
    return new in FINAL or _STAGE[new] > _STAGE[current]


def receive_status(session: Session, opened: Opened) -> None:
    """Record the status a municipality reports for one of its applications (and only its own)."""
    # The shape (a known status, a text or null reason, a known or null code) was checked against bridge.messages
    # on arrival.
    receipt, new = opened.payload["receiptNumber"], ApplicationStatus(opened.payload["status"])
    application = session.execute(select(Application).where(Application.receipt_number == receipt)).scalar_one_or_none()
    if application is None or f"muni:{application.municipality_code}" != opened.sender:
        raise PermanentFailure("unknown_application", "status for an application this sender did not receive")
    # A reason of the city's own comes as a code; a message sent before codes existed has no ``reasonCode``.
    reason, code = opened.payload["reason"], opened.payload.get("reasonCode")
    if application.status is ApplicationStatus.WITHDRAWN:
        # The resident withdrew; a late "received" does not bring it back. A status that is not final and
        # comes with a reason is the municipality refusing the withdrawal: the application is still open.
        if (reason is not None or code is not None) and new not in FINAL:
            apps.set_status(session, application, new, actor=opened.sender, reason=reason, reason_code=code)
        return
    if not moves_forward(application.status, new):
        if new is application.status and new not in FINAL and reason is not None \
                and reason != application.status_reason:
            apps.set_status(session, application, new, actor=opened.sender, reason=reason,
                            reason_code=code)  # e.g. a new deadline
        return  # a step that arrived after a later one: the later one already tells the resident more
    answer = opened.payload.get("answer")
    if answer is not None:
        if application.kind is not ApplicationKind.DISCLOSURE_REQUEST or new is not ApplicationStatus.COMPLETED:
            raise PermanentFailure("unexpected_answer", "an answer for an application that is no disclosure request")
        application.answer = json.dumps(answer, ensure_ascii=False)
    apps.set_status(session, application, new, actor=opened.sender, reason=reason, reason_code=code)


def receive_intake_paused(session: Session, opened: Opened) -> None:
    """A municipality paused or resumed one kind's intake; an older word than the one kept changes nothing."""
    import datetime as dt

    from portal.models import IntakeNotice

    code, kind = opened.sender.removeprefix("muni:"), opened.payload["kind"]
    changed = dt.datetime.fromisoformat(opened.payload["changedAt"])
    row = session.get(IntakeNotice, (code, kind))
    if row is None:
        session.add(IntakeNotice(municipality_code=code, kind=kind, paused=opened.payload["paused"],
                                 changed_at=changed))
    elif changed > row.changed_at:
        row.paused, row.changed_at = opened.payload["paused"], changed


def delayed(session: Session) -> set[tuple[str, str]]:
    """(municipality code, kind) of every paused intake."""
    from portal.models import IntakeNotice

    return {(code, kind) for code, kind in session.execute(
        select(IntakeNotice.municipality_code, IntakeNotice.kind).where(IntakeNotice.paused.is_(True)))}


def rehearsal_messages(session: Session, queue: str) -> list[Callable[[Session], Opened]]:
    """What a status worker's parent rehearses before its first fork (``bridge.jobs.deliver.rehearse``).

    A status of an application the rehearsal writes itself, in a transaction rolled back: the statements
    of a status job (the application looked up, its status changed, its event, the ack), compiled once
    in the parent instead of in every horse.
    """
    return [_status_of_an_application_made_here] if queue == QueueNames.STATUS else []


def _status_of_an_application_made_here(session: Session) -> Opened:
    now = clock.utcnow()
    code = connected_municipalities()[0]
    account = PortalAccount(cert_issuer="rehearsal", cert_serial=uuid.uuid4().hex, cert_not_after=now,
                            created_at=now, last_sign_in_at=now)
    session.add(account)
    session.flush()
    application = Application(receipt_number=f"rehearsal-{uuid.uuid4().hex[:12]}", account_id=account.id,
                              kind=ApplicationKind.CERTIFICATE, municipality_code=code,
                              status=ApplicationStatus.SUBMITTED, version=1, signed_jws="", sign_cert_serial="",
                              summary="{}", submitted_at=now, updated_at=now)
    session.add(application)
    session.flush()
    return Opened(message_id=str(uuid.uuid4()), message_type=STATUS, sender=f"muni:{code}", recipient="portal",
                  created_at=now, payload={"receiptNumber": application.receipt_number, "status": "received",
                                           "reason": None, "reasonCode": None})


def register_handlers() -> None:
    """The message types the portal takes from municipalities, and what its status workers rehearse."""
    register(STATUS, receive_status, zone="portal", senders={"muni:*"})
    register(messages.INTAKE_PAUSED, receive_intake_paused, zone="portal", senders={"muni:*"})
    register_rehearsal("portal", rehearsal_messages)
