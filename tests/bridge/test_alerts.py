"""Alerts that reach a person: every watched condition in the alert table, mailed once per kind per 15 minutes."""

from __future__ import annotations

import datetime as dt
import secrets

from bs4 import BeautifulSoup
from sqlalchemy import select, text

from bridge import alerting
from tests.bridge.conftest import BO_PARTY, INTAKE
from tests.bridge.test_dead_letter_admin import RealClock
from tests.conftest import Backoffice
from tests.mailbox import mailbox  # noqa: F401  (the fixture)

SECRET = "秘密の申請内容"


def _open_alerts(app):
    with app.app_context():
        binding = app.extensions["bridge"]
        rows = binding.session.execute(
            select(binding.alerts).where(binding.alerts.resolved_at.is_(None)).order_by(binding.alerts.id)).scalars()
        found = [(a.kind, a.subject, a.count, a.acknowledged_by, a.mailed_at is not None) for a in rows]
        binding.session.rollback()
    return found


def _check(app, now=None):
    with app.app_context():
        binding = app.extensions["bridge"]
        connection = binding.redis()
        try:
            return alerting.check(binding, connection, now=now)
        finally:
            connection.close()


def test_a_stopped_intake_and_a_dead_letter_raise_alerts_that_are_mailed_once_per_kind_and_handled_on_the_page(
        bridged, mailbox):  # noqa: F811
    office = bridged.bo_app
    office.config.update(mailbox.config("admins@city.example"))
    [poison] = bridged.send("test.schema", [{"marker": SECRET}])
    assert bridged.relay(bridged.portal_app) == 1
    bridged.run_burst("backoffice", INTAKE)  # one dead letter
    waiting = bridged.send("test.note", [{"marker": SECRET} for _ in range(3)])
    assert bridged.relay(bridged.portal_app) == 3  # three jobs wait: no worker runs

    listed = office.test_cli_runner().invoke(args=["alerts", "--check"])
    assert listed.exit_code == 0, listed.output
    assert "queue_unattended" in listed.output and "dead_letter_open" in listed.output
    assert _open_alerts(office) == [("queue_unattended", INTAKE, 1, None, True),
                                    ("dead_letter_open", BO_PARTY, 1, None, True)]
    mails = mailbox.wait_for(2)
    assert sorted(m["Subject"] for m in mails) == [
        f"[住基 bridge] 警報 alert: dead_letter_open ({BO_PARTY}, 1)",
        f"[住基 bridge] 警報 alert: queue_unattended ({BO_PARTY}, 1)"]
    assert {m["To"] for m in mails} == {"admins@city.example"}
    unattended = next(m for m in mails if "queue_unattended" in m["Subject"]).get_content()
    assert f"{INTAKE}: 3 job(s) waiting, no live worker" in unattended and "JST" in unattended
    for mail in mails:
        body = mail.get_content()
        assert SECRET not in body and poison not in body and not any(m in body for m in waiting)

    # Seen again: the same rows count up, and nobody is mailed twice.
    assert _check(office) == 0
    assert [a[:3] for a in _open_alerts(office)] == [("queue_unattended", INTAKE, 2),
                                                     ("dead_letter_open", BO_PARTY, 2)]

    # The administrator acknowledges one alert and resolves the other on the page; both are in the log by name.
    admin = Backoffice(office, RealClock()).client_for("admin1", "admin")
    page = BeautifulSoup(admin.get("/admin/bridge").text, "html.parser")
    rows = {row["data-kind"]: row for row in page.select("tr.alert")}
    assert set(rows) == {"queue_unattended", "dead_letter_open"}
    token = page.select_one("input[name=csrf_token]")["value"]
    ids = {kind: int(row["id"].removeprefix("alert-")) for kind, row in rows.items()}
    assert admin.post(f"/admin/bridge/alerts/{ids['queue_unattended']}/acknowledge",
                      data={"csrf_token": token}).status_code == 302
    assert admin.post(f"/admin/bridge/alerts/{ids['dead_letter_open']}/resolve",
                      data={"csrf_token": token}).status_code == 302
    again = admin.post(f"/admin/bridge/alerts/{ids['dead_letter_open']}/resolve", data={"csrf_token": token})
    assert again.status_code == 302  # already resolved: refused, nothing logged twice
    clerk = Backoffice(office, RealClock()).client_for("clerk1", "clerk")
    assert clerk.get("/admin/bridge").status_code == 403
    assert clerk.post(f"/admin/bridge/alerts/{ids['queue_unattended']}/resolve",
                      data={"csrf_token": token}).status_code in (400, 403)

    with office.app_context():
        session = office.extensions["bridge"].session
        admin_id = session.execute(text("SELECT id FROM staff WHERE login_id = 'admin1'")).scalar_one()
        logged = session.execute(text(
            "SELECT action, target_id, actor, actor_id FROM audit_log WHERE action LIKE 'bridge.alert.%' "
            "ORDER BY seq")).all()
        session.rollback()
    assert [tuple(r) for r in logged] == [
        ("bridge.alert.acknowledge", str(ids["queue_unattended"]), "admin1", admin_id),
        ("bridge.alert.resolve", str(ids["dead_letter_open"]), "admin1", admin_id)]
    assert [a[:4] for a in _open_alerts(office)] == [("queue_unattended", INTAKE, 2, "admin1")]

    # The dead letter is still open: the next check opens a new alert, mailed only once its kind's 15 minutes passed.
    assert _check(office) == 0
    assert [a[:2] for a in _open_alerts(office)] == [("queue_unattended", INTAKE), ("dead_letter_open", BO_PARTY)]
    assert _check(office, now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=16)) == 1
    assert len(mailbox.wait_for(3)) == 3 and "dead_letter_open" in mailbox.messages[2]["Subject"]

    # The open alerts are in the metrics too.
    office.config["METRICS_TOKEN"] = token = secrets.token_urlsafe(16)
    scraped = office.test_client().get("/metrics", headers={"Authorization": f"Bearer {token}"}).text
    assert f'bridge_alerts_open{{kind="dead_letter_open",party="{BO_PARTY}"}} 1.0' in scraped
    assert f'bridge_alerts_open{{kind="queue_unattended",party="{BO_PARTY}"}} 1.0' in scraped


def test_without_alert_mail_to_nothing_is_mailed_and_an_unreachable_server_is_tried_again(bridged, mailbox):  # noqa: F811
    office = bridged.bo_app
    bridged.send("test.note", [{"marker": SECRET}])
    assert bridged.relay(bridged.portal_app) == 1
    assert _check(office) == 0 and mailbox.messages == []  # no ALERT_MAIL_TO: rows only
    assert [a[:2] for a in _open_alerts(office)] == [("queue_unattended", INTAKE)]

    office.config.update(mailbox.config(), SMTP_PORT=1)  # nothing listens there
    assert _check(office) == 0
    assert _open_alerts(office)[0][4] is False  # not marked mailed
    office.config.update(mailbox.config())
    assert _check(office) == 1 and len(mailbox.wait_for(1)) == 1


def test_the_portals_alerts_are_acknowledged_and_resolved_on_its_command_line_naming_the_operator(bridged):
    portal = bridged.portal_app
    with portal.app_context():  # another part of the system writes an alert through the table's plain API
        binding = portal.extensions["bridge"]
        binding.session.add(binding.alerts(kind="backup_failed", detail="nightly dump",
                                           created_at=dt.datetime.now(dt.UTC)))
        binding.session.commit()
        [alert_id] = binding.session.execute(select(binding.alerts.id)).scalars().all()
        binding.session.rollback()
    runner = portal.test_cli_runner()
    refused = runner.invoke(args=["alerts", "--acknowledge", str(alert_id)])
    assert refused.exit_code == 2 and "--by" in refused.output
    done = runner.invoke(args=["alerts", "--acknowledge", str(alert_id), "--by", "ops-sato"])
    assert done.exit_code == 0, done.output
    assert runner.invoke(args=["alerts", "--resolve", str(alert_id), "--by", "ops-sato"]).exit_code == 0
    again = runner.invoke(args=["alerts", "--resolve", str(alert_id), "--by", "ops-sato"])
    assert again.exit_code == 2 and "already resolved" in again.output
    with portal.app_context():
        session = portal.extensions["bridge"].session
        row = session.get(portal.extensions["bridge"].alerts, alert_id)
        assert (row.acknowledged_by, row.resolved_by) == ("ops-sato", "ops-sato")
        logged = session.execute(text("SELECT action, detail FROM audit_log WHERE action LIKE 'bridge.alert.%' "
                                      "ORDER BY seq")).all()
        session.rollback()
    assert [a for a, _ in logged] == ["bridge.alert.acknowledge", "bridge.alert.resolve"]
    assert all('"by": "ops-sato"' in str(d) for _, d in logged)


def test_a_failing_alert_check_never_stops_the_relay(bridged, monkeypatch):
    from bridge.relay import run_relay

    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug in the monitoring")

    monkeypatch.setattr(alerting.monitor, "queue_figures", broken)
    bridged.send("test.note", [{"marker": SECRET}])
    assert run_relay(bridged.portal_app, once=True) == 1  # published all the same
def test_the_security_officers_alerts_never_reach_the_administrators_and_their_mail_names_no_one(
        bridged, mailbox):  # noqa: F811
    """Staff-access (R18) and support-measure (R22) alerts share the table, and an administrator may be who they are
    about: not on the bridge page, not in the administrators' mail, not theirs to close; the security officer is
    mailed the kind and count only."""
    office = bridged.bo_app
    office.config.update(mailbox.config("admins@city.example"), SECURITY_ALERT_MAIL_TO="security@city.example")
    with office.app_context():
        binding = office.extensions["bridge"]
        now = dt.datetime.now(dt.UTC)
        watched = [binding.alerts(kind="staff_access", messages=40, created_at=now,
                                  detail='{"rule": "volume", "actor": "admin1", "seqs": [1, 2]}'),
                   binding.alerts(kind="support_measure_access", messages=0, created_at=now,
                                  detail='{"action": "ledger.view", "resident": 4242}')]
        binding.session.add_all(watched)
        binding.session.commit()
        ids = [a.id for a in watched]
    assert _check(office) == 2
    mails = {m["To"]: m for m in mailbox.wait_for(2)}
    assert set(mails) == {"security@city.example"}  # both kinds to the officer, one mail each; none to the admins
    assert len(mailbox.messages) == 2
    for mail in mailbox.messages:
        body = mail.get_content()
        assert "staff-access alert" in body and "admin1" not in body and "4242" not in body and "seqs" not in body

    admin = Backoffice(office, RealClock()).client_for("admin1", "admin")
    page = admin.get("/admin/bridge").text
    assert "staff_access" not in page and "support_measure_access" not in page
    token = BeautifulSoup(page, "html.parser").select_one("input[name=csrf_token]")["value"]
    for alert_id in ids:
        for action in ("acknowledge", "resolve"):
            answer = admin.post(f"/admin/bridge/alerts/{alert_id}/{action}", data={"csrf_token": token})
            assert answer.status_code == 404, (alert_id, action)
    with office.app_context():
        binding = office.extensions["bridge"]
        rows = [binding.session.get(binding.alerts, i) for i in ids]
        assert all(r.acknowledged_at is None and r.resolved_at is None for r in rows)
        binding.session.rollback()
