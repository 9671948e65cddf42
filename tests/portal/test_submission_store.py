"""How a signed submission's rows are written: one application per receipt number, with its event and outbox row."""

from __future__ import annotations

import datetime as dt
import types
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from tests.portal_fixtures import _portal


def _store_two_with_a_taken_number(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second application draws the first one's number, then another: it is stored once, under the other."""
    from core import clock
    from core.envelope import KeyRegistry, open_envelope
    from portal.extensions import db
    from portal.models import (
        Application,
        ApplicationEvent,
        ApplicationKind,
        ApplicationStatus,
        AuditLog,
        Outbox,
        PortalAccount,
    )
    from portal.services import applications as apps

    draws = iter([1, 1, 2])
    monkeypatch.setattr(apps, "secrets", types.SimpleNamespace(randbelow=lambda _n: next(draws)))
    now, today = clock.utcnow(), dt.date(2026, 12, 6)
    with app.test_request_context("/"):
        account = PortalAccount(cert_issuer="ab", cert_serial="1", cert_not_after=now + dt.timedelta(days=9),
                                created_at=now, last_sign_in_at=now)
        db.session.add(account)
        db.session.flush()

        def application() -> Application:
            return Application(account_id=account.id, kind=ApplicationKind.CERTIFICATE, municipality_code="032051",
                               status=ApplicationStatus.SUBMITTED, version=1, signed_jws="x.y.z",
                               sign_cert_serial="7", summary="{}", submitted_at=now, updated_at=now)

        first = apps._store(db.session, application(), today)
        second = apps._store(db.session, application(), today)
        db.session.commit()
        assert (first.receipt_number, second.receipt_number) == ("202612060000000001", "202612060000000002")
        stored = db.session.execute(select(Application.id, Application.receipt_number)
                                    .order_by(Application.id)).all()
        assert stored == [(first.id, first.receipt_number), (second.id, second.receipt_number)]
        events = db.session.execute(select(ApplicationEvent.application_id, ApplicationEvent.status,
                                           ApplicationEvent.actor).order_by(ApplicationEvent.id)).all()
        assert events == [(first.id, ApplicationStatus.SUBMITTED, "resident"),
                          (second.id, ApplicationStatus.SUBMITTED, "resident")]
        # One sealed message per application stored, naming its receipt number; none for the number taken.
        keys = KeyRegistry.from_config(app.config, party="muni:032051")
        receipts = sorted(open_envelope(row.envelope, me="muni:032051", keys=keys,
                                        accepted_types={"application.submitted"}, max_age=dt.timedelta(hours=1),
                                        now=clock.utcnow()).payload["receiptNumber"]
                          for row in db.session.execute(select(Outbox)).scalars())
        assert receipts == [first.receipt_number, second.receipt_number]
        assert db.session.execute(select(AuditLog)).first() is None  # the caller writes the log row


def test_a_receipt_number_already_taken_is_drawn_again_and_nothing_is_written_under_it(
        portal_app: Any, monkeypatch: pytest.MonkeyPatch):
    import psycopg
    from sqlalchemy.engine import make_url

    from bridge.notify import CHANNEL

    url = make_url(portal_app.config["PORTAL_DATABASE_URL"]).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        _store_two_with_a_taken_number(portal_app, monkeypatch)
        # The outbox rows inserted under the statement's CTE wake the relays at commit like any other.
        assert [n.channel for n in listener.notifies(timeout=5, stop_after=1)] == [CHANNEL]


def test_the_same_on_sqlite_where_each_row_is_its_own_statement(
        jlis_config: dict[str, str], tmp_path: Path, session_dir: Path, monkeypatch: pytest.MonkeyPatch):
    from portal.models import Base

    url = f"sqlite:///{tmp_path / 'portal.db'}"
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    app = _portal(url, jlis_config, tmp_path, session_dir)
    try:
        _store_two_with_a_taken_number(app, monkeypatch)
    finally:
        app.extensions["engine"].dispose()
