"""Staff access watched (R18): rules over the operation log, run as a scheduled job, each hit an alert.

``flask --app wsgi:backoffice_app watch run`` (cron, every 10 minutes) reads the staff rows of the
last ``WATCH_LOOKBACK_HOURS`` and applies, per person and Japan-time hour:

- ``volume``: searches, record views, My Number reveals, exports or certificate prints above the
  thresholds of ``WATCH_THRESHOLDS`` (``category=count,…`` over ``THRESHOLDS``);
- ``after_hours``: any of them outside office hours (``WATCH_OFFICE_HOURS``, default 8-19, Monday
  to Friday, JST);
- ``enumeration``: searches or exports whose name is a prefix of at most two characters, at or
  above the ``short_searches`` threshold;
- ``denials``: refused actions at or above the ``denials`` threshold.

Access to a record under a support measure raises its own alert at once (``support.alert_access``).
Each hit is one ``bridge_alert`` row of kind ``staff_access`` whose detail names the rule, the
person, the hour, the count and the operation-log rows behind it; a hit already alerted is not
alerted again. The security officer (role ``auditor``) sees them on ``/audit/alerts`` and
acknowledges each with a note, which is written to the operation log.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, cast, exists, func, select
from sqlalchemy.orm import Session

from backoffice.models import AuditLog, BridgeAlert
from backoffice.services import audit
from bridge.alerting import SECURITY_KINDS
from core import clock
from core.config import ConfigError
from core.textfold import fold

ALERT_KIND = "staff_access"
# Every page that shows a person's data counts as a view, not only the ledger's: a card's page shows the holder's
# name and 住民票コード (a search key of its own), so walking /cards/<id> must count as walking the ledger.
CATEGORIES = {"ledger.search": "searches", "ledger.view": "views", "ledger.unmask": "reveals",
              "ledger.export": "exports", "certificate.print": "prints", "certificate.download": "prints",
              "card.view": "views", "certificate.preview": "views", "counter.view": "views",
              "support_measure.view": "views", "support_measure.list": "views", "resident_request.list": "views"}
THRESHOLDS = {"searches": 80, "views": 80, "reveals": 10, "exports": 5, "prints": 40, "short_searches": 5,
              "denials": 5}
NOT_STAFF = {"system", "bridge", "retention", "watch"}
MAX_ROWS_NAMED = 50


@dataclass(frozen=True)
class Hit:
    """One rule that fired for one person in one hour."""

    rule: str
    actor: str
    hour: str  # JST, "YYYY-MM-DDTHH"
    count: int
    threshold: int
    seqs: tuple[int, ...]
    category: str = ""

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.category}:{self.actor}:{self.hour}"


def thresholds(config: Any) -> dict[str, int]:
    """The thresholds: the defaults, overridden by ``WATCH_THRESHOLDS``; an unknown name stops the job."""
    values = dict(THRESHOLDS)
    for part in str(config.get("WATCH_THRESHOLDS") or "").split(","):
        if not part.strip():
            continue
        name, _, number = part.partition("=")
        if name.strip() not in values or not number.strip().isdigit():
            raise ConfigError(f"WATCH_THRESHOLDS: {part.strip()!r} is not one of {', '.join(sorted(values))}=N")
        values[name.strip()] = int(number)
    return values


def office_hours(config: Any) -> tuple[int, int]:
    """``WATCH_OFFICE_HOURS`` as (first hour, hour after the last), JST."""
    start, _, end = str(config.get("WATCH_OFFICE_HOURS") or "8-19").partition("-")
    try:
        return int(start), int(end)
    except ValueError:
        raise ConfigError("WATCH_OFFICE_HOURS must be like 8-19 (JST hours)") from None


def _short_prefix(row: AuditLog) -> bool:
    criteria = row.detail_dict().get("criteria") or {}
    name = fold(str(criteria.get("name") or "")).replace(" ", "")
    return 0 < len(name) <= 2 and not criteria.get("birth_date")


def evaluate(rows: list[AuditLog], limits: dict[str, int], hours: tuple[int, int]) -> list[Hit]:
    """The hits of the rules over ``rows`` (pure: the test replays a day through it and through the job)."""
    groups: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for row in rows:
        if row.actor in NOT_STAFF or row.actor_id is None:
            continue
        local = row.ts.astimezone(clock.JST)
        hour = local.strftime("%Y-%m-%dT%H")
        category = CATEGORIES.get(row.action)
        if category:
            groups[(f"volume|{category}", row.actor, hour)].append(row.seq)
            if local.weekday() >= 5 or not hours[0] <= local.hour < hours[1]:
                groups[("after_hours|", row.actor, hour)].append(row.seq)
            if row.action in ("ledger.search", "ledger.export") and _short_prefix(row):
                groups[("enumeration|", row.actor, hour)].append(row.seq)
        if row.outcome == "denied":
            groups[("denials|", row.actor, hour)].append(row.seq)
    hits = []
    for (rule_category, actor, hour), seqs in sorted(groups.items()):
        rule, _, category = rule_category.partition("|")
        limit = {"volume": limits.get(category, 0), "after_hours": 1, "enumeration": limits["short_searches"],
                 "denials": limits["denials"]}[rule]
        if (rule == "volume" and len(seqs) > limit) or (rule != "volume" and len(seqs) >= limit):
            hits.append(Hit(rule, actor, hour, len(seqs), limit, tuple(seqs[:MAX_ROWS_NAMED]), category))
    return hits


def run(session: Session, config: Any) -> list[Hit]:
    """The scheduled job: evaluate the recent log, write an alert per new hit, log the run (caller commits)."""
    now = clock.utcnow()
    since = now - dt.timedelta(hours=int(config.get("WATCH_LOOKBACK_HOURS") or 26))
    rows = list(session.execute(select(AuditLog).where(AuditLog.ts >= since).order_by(AuditLog.seq)).scalars())
    hits = evaluate(rows, thresholds(config), office_hours(config))
    known = {json.loads(a.detail).get("key") for a in session.execute(
        select(BridgeAlert).where(BridgeAlert.kind == ALERT_KIND, BridgeAlert.created_at >= since
                                  - dt.timedelta(hours=24))).scalars()}
    new = [h for h in hits if h.key not in known]
    for hit in new:
        session.add(BridgeAlert(kind=ALERT_KIND, messages=hit.count, created_at=now, detail=json.dumps({
            "key": hit.key, "rule": hit.rule, "category": hit.category, "actor": hit.actor, "hour": hit.hour,
            "count": hit.count, "threshold": hit.threshold, "seqs": list(hit.seqs)})))
    audit.record("watch.run", actor="watch", detail={"rows": len(rows), "hits": len(hits), "new": len(new)})
    return new


# -- the security officer's page ----------------------------------------------------------------


WATCHED_KINDS = SECURITY_KINDS  # staff access (here) and support measures (backoffice/services/support.py)


class AcknowledgeError(ValueError):
    """An acknowledgement refused; ``field`` names what to correct."""

    def __init__(self, field: str, message: str) -> None:
        self.field, self.message = field, message
        super().__init__(message)


def alerts(session: Session, *, limit: int = 100) -> list[dict[str, Any]]:
    """The newest alerts of staff access with the log rows behind each and their acknowledgement, if any."""
    found = session.execute(select(BridgeAlert).where(BridgeAlert.kind.in_(WATCHED_KINDS))
                            .order_by(BridgeAlert.created_at.desc(), BridgeAlert.id.desc()).limit(limit)).scalars()
    out = []
    for alert in found:
        detail = json.loads(alert.detail or "{}")
        seqs = detail.get("seqs") or []
        rows = list(session.execute(select(AuditLog).where(AuditLog.seq.in_(seqs)).order_by(AuditLog.seq))
                    .scalars()) if seqs else []
        ack = session.execute(select(AuditLog).where(
            AuditLog.action == "alert.acknowledge", AuditLog.target_type == "bridge_alert",
            AuditLog.target_id == str(alert.id)).order_by(AuditLog.seq.desc()).limit(1)).scalar_one_or_none()
        out.append({"alert": alert, "detail": detail, "rows": rows, "ack": ack,
                    "note": ack.detail_dict().get("note") if ack else None})
    return out


def acknowledge(session: Session, alert_id: int, note: str) -> None:
    """The officer acknowledges an alert with a note (1 to 500 characters); written to the operation log."""
    from flask_babel import gettext as _

    note = (note or "").strip()
    if not 1 <= len(note) <= 500:
        raise AcknowledgeError("note", _("Enter a note of 1 to 500 characters: what you checked and found."))
    alert = session.get(BridgeAlert, alert_id)
    if alert is None or alert.kind not in WATCHED_KINDS:
        raise AcknowledgeError("alert", _("There is no such alert."))
    audit.record("alert.acknowledge", target_type="bridge_alert", target_id=alert.id, detail={"note": note})


# -- the security officer's alerts in the metrics ---------------------------------------------------


def counts(session: Session) -> dict[str, tuple[int, int]]:
    """Per security kind: the alerts raised (every row kept) and those the officer has not yet acknowledged."""
    acknowledged = exists().where(AuditLog.action == "alert.acknowledge", AuditLog.target_type == "bridge_alert",
                                  AuditLog.target_id == cast(BridgeAlert.id, String))
    per_kind = select(BridgeAlert.kind, func.count()).where(BridgeAlert.kind.in_(WATCHED_KINDS))
    raised = {kind: n for kind, n in session.execute(per_kind.group_by(BridgeAlert.kind))}
    waiting = {kind: n for kind, n in session.execute(per_kind.where(~acknowledged).group_by(BridgeAlert.kind))}
    return {kind: (int(raised.get(kind, 0)), int(waiting.get(kind, 0))) for kind in WATCHED_KINDS}


def metric_families(binding: Any) -> Any:
    """``security_alerts_raised_total`` and ``security_alerts_unacknowledged`` per kind, for /metrics.

    Kinds and counts only: never the person acting, the resident or the rows behind an alert (those are for the
    officer's page). Every kind is listed, at 0 too, so a rule sees the series before the first alert.
    """
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    if binding.zone != "backoffice":
        return
    raised = CounterMetricFamily("security_alerts_raised", "Security officer's alerts raised, by kind.",
                                 labels=["party", "kind"])
    waiting = GaugeMetricFamily("security_alerts_unacknowledged",
                                "Security officer's alerts not yet acknowledged, by kind.", labels=["party", "kind"])
    for kind, (total, open_) in counts(binding.session).items():
        raised.add_metric([binding.party, kind], total)
        waiting.add_metric([binding.party, kind], open_)
    yield raised
    yield waiting


def register_metrics() -> None:
    """Show the security officer's alerts, by kind, on /metrics."""
    from bridge import metrics

    if metric_families not in metrics.EXTRA_FAMILIES:
        metrics.EXTRA_FAMILIES.append(metric_families)
