"""Alerts that reach a person: every watched condition in the app's ``bridge_alert`` table, mailed, acknowledged.

``check`` looks at what ``bridge.monitor`` reads and keeps one open row per condition and subject:

| kind | subject | when |
|---|---|---|
| ``queue_unattended`` | the queue | jobs wait and no live worker takes them |
| ``job_waiting_too_long`` | the queue | the oldest waiting job is older than 5 minutes |
| ``outbox_unacknowledged`` | the recipient | the oldest message not acknowledged is older than 15 minutes |
| ``dead_letter_open`` | the party | a dead letter waits for an administrator |
| ``redis_data_lost`` | (an event row of the relay) | Redis lost its data |

A condition seen again updates its open row (``last_seen_at``, ``count``); once an administrator
resolved it, the next sighting opens a new row. Open rows not yet mailed are sent to
``ALERT_MAIL_TO`` through the SMTP settings, at most one mail per kind per 15 minutes (a kind held
back is mailed when its quarter hour has passed). The mail names kinds, queues, parties and counts:
never a message id or anything of a resident. The relay runs ``check`` every ``ALERT_CHECK_SECONDS``.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bridge import monitor
from bridge.binding import Bridge
from core import clock

log = logging.getLogger("bridge.alerting")

QUEUE_UNATTENDED = "queue_unattended"
JOB_WAITING_TOO_LONG = "job_waiting_too_long"
OUTBOX_UNACKNOWLEDGED = "outbox_unacknowledged"
DEAD_LETTER_OPEN = "dead_letter_open"
WAITING_LIMIT = dt.timedelta(minutes=5)
UNACKNOWLEDGED_LIMIT = dt.timedelta(minutes=15)
MAIL_INTERVAL = dt.timedelta(minutes=15)
# Alerts for the security officer (the auditor role), written to the same table by the back office's
# staff-access rules (R18) and support measures (R22). They name staff and residents, and an
# administrator may be the person they are about, so they are never on the administrators' page, in
# their mail or in their hands to acknowledge: the officer's page lists them, and
# SECURITY_ALERT_MAIL_TO is told of them by kind and count only.
SECURITY_KINDS = ("staff_access", "support_measure_access")


@dataclass(frozen=True)
class Condition:
    """One watched condition that holds now."""

    kind: str
    subject: str
    detail: str


def conditions(binding: Bridge, connection: Any) -> list[Condition]:
    """Every watched condition that holds now for this app (and, every 5 minutes, the 24-hour chart's samples)."""
    found = []
    queues = monitor.queue_figures(connection, monitor.queues_of(binding))
    monitor.take_samples(connection, queues)
    for q in queues:
        if q.unattended and q.waiting:
            found.append(Condition(QUEUE_UNATTENDED, q.name, f"{q.waiting} job(s) waiting, no live worker"))
        if q.oldest_waiting is not None and q.oldest_waiting > WAITING_LIMIT.total_seconds():
            found.append(Condition(JOB_WAITING_TOO_LONG, q.name,
                                   f"oldest waiting job {int(q.oldest_waiting // 60)} min, {q.waiting} waiting"))
    for o in monitor.outbox_figures(binding):
        if o.oldest_unacknowledged is not None and o.oldest_unacknowledged > UNACKNOWLEDGED_LIMIT.total_seconds():
            found.append(Condition(OUTBOX_UNACKNOWLEDGED, o.recipient,
                                   f"oldest unacknowledged {int(o.oldest_unacknowledged // 60)} min, "
                                   f"{o.pending} pending, {o.unacknowledged} unacknowledged"))
    dead = monitor.open_dead_letters(binding)
    if dead:
        found.append(Condition(DEAD_LETTER_OPEN, binding.party, f"{dead} dead letter(s) open"))
    return found


def _alerts(binding: Bridge) -> Any:
    """The app's alert model (every app with a bridge has one)."""
    model = binding.alerts
    if model is None:
        raise RuntimeError(f"{binding.party} has no alert table")
    return model


def record(binding: Bridge, found: Iterable[Condition], *, now: dt.datetime) -> None:
    """Open a row per condition, or update the open one (flushes; the caller commits)."""
    session = binding.session
    table = _alerts(binding).__table__
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    for condition in found:
        statement = insert(table).values(kind=condition.kind, subject=condition.subject, detail=condition.detail,
                                         messages=0, count=1, created_at=now, last_seen_at=now)
        session.execute(statement.on_conflict_do_update(
            index_elements=["kind", "subject"], index_where=table.c.resolved_at.is_(None) & table.c.subject.isnot(None),
            set_={"last_seen_at": now, "count": table.c.count + 1, "detail": condition.detail}))
    session.flush()


def open_alerts(binding: Bridge, *, limit: int = 200) -> list[Any]:
    """The administrators' alerts not yet resolved, newest first (never the security officer's)."""
    model = _alerts(binding)
    return list(binding.session.execute(
        select(model).where(model.resolved_at.is_(None), model.kind.notin_(SECURITY_KINDS))
        .order_by(model.id.desc()).limit(limit)).scalars())


def open_counts(binding: Bridge) -> dict[str, int]:
    """Open alerts by kind."""
    counts: dict[str, int] = {}
    for row in open_alerts(binding, limit=10_000):
        counts[row.kind] = counts.get(row.kind, 0) + 1
    return counts


# -- mail -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MailSettings:
    """Where alert mail goes and through which server."""

    to: tuple[str, ...]
    sender: str
    host: str
    port: int
    username: str
    password: str
    starttls: bool

    @classmethod
    def from_config(cls, config: Any, *, security: bool = False) -> MailSettings:
        """From ALERT_MAIL_TO (SECURITY_ALERT_MAIL_TO for the security officer's alerts), ALERT_MAIL_FROM and SMTP_*.

        No address: no mail.
        """
        setting = "SECURITY_ALERT_MAIL_TO" if security else "ALERT_MAIL_TO"
        to = tuple(a.strip() for a in str(config.get(setting) or "").split(",") if a.strip())
        return cls(to=to, sender=str(config.get("ALERT_MAIL_FROM") or "juki-alerts@localhost"),
                   host=str(config.get("SMTP_HOST") or "localhost"), port=int(config.get("SMTP_PORT") or 25),
                   username=str(config.get("SMTP_USERNAME") or ""), password=str(config.get("SMTP_PASSWORD") or ""),
                   starttls=bool(config.get("SMTP_STARTTLS")))


def mail_new(binding: Bridge, *, now: dt.datetime, settings: MailSettings | None = None,
             security: bool = False) -> int:
    """Mail the open, unacknowledged, unmailed alerts, one mail per kind at most every 15 minutes; returns mails sent.

    ``security``: the security officer's kinds, to SECURITY_ALERT_MAIL_TO; else the administrators'. Flushes; the
    caller commits. A mail the server refuses is logged and tried again at the next check.
    """
    settings = settings or MailSettings.from_config(current_app.config, security=security)
    if not settings.to:
        return 0
    model = _alerts(binding)
    session = binding.session
    group = model.kind.in_(SECURITY_KINDS) if security else model.kind.notin_(SECURITY_KINDS)
    waiting = session.execute(select(model).where(
        model.resolved_at.is_(None), model.acknowledged_at.is_(None), model.mailed_at.is_(None), group)
        .order_by(model.id)).scalars().all()
    sent = 0
    for kind in sorted({row.kind for row in waiting}):
        recent = session.execute(select(model.id).where(
            model.kind == kind, model.mailed_at.isnot(None), model.mailed_at > now - MAIL_INTERVAL).limit(1)).first()
        if recent is not None:
            continue
        rows = [row for row in waiting if row.kind == kind]
        try:
            _send(settings, _message(settings, binding.party, kind, rows))
        except (OSError, smtplib.SMTPException) as exc:
            log.error("alert mail for %s not sent: %s (tried again at the next check)", kind, type(exc).__name__)
            continue
        session.execute(update(model).where(model.id.in_([r.id for r in rows])).values(mailed_at=now))
        sent += 1
    session.flush()
    return sent


def _message(settings: MailSettings, party: str, kind: str, rows: list[Any]) -> EmailMessage:
    if kind in SECURITY_KINDS:
        return _security_message(settings, party, kind, rows)
    message = EmailMessage()
    message["Subject"] = f"[住基 bridge] 警報 alert: {kind} ({party}, {len(rows)})"
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.to)
    lines = [f"{party} の監視で警報が出ました。/ An alert was raised by the monitoring of {party}.", "",
             f"種類 kind: {kind}"]
    for row in rows:
        first = row.created_at.astimezone(clock.JST).strftime("%Y-%m-%d %H:%M JST")
        last = row.seen_last.astimezone(clock.JST).strftime("%Y-%m-%d %H:%M JST")
        lines.append(f"- {row.subject or party}: {row.detail} (初回 first {first}, 最終 last {last}, {row.count}x)")
    lines += ["", "バックオフィスの「ブリッジ」画面で確認・対応してください。",
              "Acknowledge and resolve it on the back office's Bridge page (/admin/bridge)."]
    message.set_content("\n".join(lines))
    return message


def _security_message(settings: MailSettings, party: str, kind: str, rows: list[Any]) -> EmailMessage:
    """The security officer's mail: the kind, how many and since when; who and what only on the officer's page."""
    message = EmailMessage()
    message["Subject"] = f"[住基 security] 警告 alert: {kind} ({party}, {len(rows)})"
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.to)
    first = min(row.created_at for row in rows).astimezone(clock.JST).strftime("%Y-%m-%d %H:%M JST")
    message.set_content("\n".join([
        f"{party} で職員のアクセスに関する警告が {len(rows)} 件あります（最初 {first}）。",
        f"{party} has {len(rows)} staff-access alert(s) (first {first}).", "", f"種類 kind: {kind}", "",
        "内容はバックオフィスの「アクセス警告」画面で確認してください。",
        "See who and what on the back office's Access alerts page (/audit/alerts)."]))
    return message


def _send(settings: MailSettings, message: EmailMessage) -> None:
    with smtplib.SMTP(settings.host, settings.port, timeout=10) as smtp:
        if settings.starttls:
            smtp.starttls()
        if settings.username:
            smtp.login(settings.username, settings.password)
        smtp.send_message(message)


# -- the check and the administrator's actions ---------------------------------------------------


def check(binding: Bridge, connection: Any, *, now: dt.datetime | None = None) -> int:
    """Record every condition that holds and mail what is new (commits); returns the mails sent."""
    if binding.alerts is None:
        return 0
    now = now or clock.utcnow()
    session = binding.session
    record(binding, conditions(binding, connection), now=now)
    session.commit()
    sent = mail_new(binding, now=now)
    session.commit()
    sent += mail_new(binding, now=now, security=True)
    session.commit()
    return sent


def check_quietly(binding: Bridge, connection: Any) -> None:
    """``check`` for the relay's loop: a failing check is logged (the error type only) and never stops the relay.

    Redis and database errors are left to the relay's own handling (it waits and tries again).
    """
    import redis as redis_module
    from sqlalchemy.exc import SQLAlchemyError

    try:
        check(binding, connection)
    except (redis_module.RedisError, SQLAlchemyError):
        raise
    except Exception as exc:
        binding.session.rollback()
        log.error("alert check of %s failed: %s", binding.party, type(exc).__name__)


class AlertClosed(ValueError):
    """The alert was already resolved (or acknowledged, for an acknowledgement)."""


def acknowledge(binding: Bridge, row: Any, *, by: str) -> None:
    """An administrator has seen the alert: no more mail for it (flushes; audited)."""
    if row.resolved_at is not None or row.acknowledged_at is not None:
        raise AlertClosed(f"alert {row.id} was already handled")
    row.acknowledged_at, row.acknowledged_by = clock.utcnow(), by
    _audit(binding, row, "bridge.alert.acknowledge", by=by)


def resolve(binding: Bridge, row: Any, *, by: str) -> None:
    """The condition is dealt with; seen again, it opens a new alert (flushes; audited)."""
    if row.resolved_at is not None:
        raise AlertClosed(f"alert {row.id} was already resolved")
    row.resolved_at, row.resolved_by = clock.utcnow(), by
    _audit(binding, row, "bridge.alert.resolve", by=by)


def _audit(binding: Bridge, row: Any, action: str, *, by: str) -> None:
    # On a page the log's actor is the signed-in administrator; from the command line ``by`` names the operator.
    binding.session.flush()
    binding.audit(binding.session, action, outcome="success", target_type="bridge_alert", target_id=str(row.id),
                  detail={"kind": row.kind, "subject": row.subject, "by": by})
