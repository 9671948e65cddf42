"""Retention that purges (R16): a schedule per kind of record, and the nightly run that deletes what is due.

The schedule is ``RETENTION_DAYS`` (``kind=days,kind=days``) over the defaults below; a value
under a kind's minimum (the law's, or the bridge's replay window) stops the command, naming it.
``flask --app wsgi:<app> retention run [--dry-run]`` deletes, kind by kind, in batches, what is
older than its period, and writes one operation-log row (``retention.purge``) per kind with the
count and the cut-off; each kind is one transaction, so a run stopped half-way leaves whole
kinds done and is simply run again.

On PostgreSQL the append-only triggers (migrations ``0030_retention`` and portal
``0020_retention``) refuse DELETE unless the transaction set ``juki.retention`` (only this path
does), and even then only rows past the legal floor the trigger itself knows: a 除票 removed more
than 150 years ago (and its history rows), an operation-log row older than one year. UPDATE and
TRUNCATE stay refused.

The operation log is purged only up to a signed checkpoint, and only after the rows up to it were
exported to ``RETENTION_ARCHIVE_DIR`` as JSON lines, sealed (fsynced, read-only, SHA-256 recorded)
and verified (the chain recomputed from its start, its end equal to the signed checkpoint). The
``retention.purge`` row written after it names the last purged row and its hash, which is what
lets ``audit verify`` start the chain there (see ``AuditChain.verify``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Table, and_, delete, exists, func, select, text, true
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from core import clock
from core.audit import GENESIS, AuditChain, _checkpoint_bytes, chain_hash
from core.config import ConfigError

LOG_KIND = "audit_log"
LOG_FLOOR_DAYS = 366  # the triggers refuse to delete a log row younger than a year, whatever the schedule says


@dataclasses.dataclass(frozen=True)
class Rule:
    """One kind of record: its table, the column its age is counted from, which rows qualify, its period."""

    kind: str
    table: Table
    age_column: str
    default_days: int
    minimum_days: int
    basis: str
    where: Callable[[Table], ColumnElement[bool]] | None = None
    # Rows of other tables that go with a row (child table, its column naming the row's id), deleted first.
    children: tuple[tuple[Table, str], ...] = ()
    # Newest first, where newer rows point at older ones (an application's previous version).
    newest_first: bool = False


@dataclasses.dataclass(frozen=True)
class Purged:
    """What one kind's run did (or, dry, would do)."""

    kind: str
    days: int
    cutoff: dt.datetime
    rows: int
    dry_run: bool
    # For the log: the archive's name and SHA-256, and the last purged row and its hash (what verify starts from).
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


class RetentionError(RuntimeError):
    """The purge of a kind could not go ahead safely (e.g. the archive did not verify); nothing was deleted."""


def schedule(config: Any, rules: list[Rule], *, log_rule: bool = True) -> dict[str, int]:
    """The period in days of each kind: the defaults, overridden by ``RETENTION_DAYS``; below a minimum stops."""
    periods = {r.kind: r.default_days for r in rules}
    minimums = {r.kind: r.minimum_days for r in rules}
    if log_rule:
        periods[LOG_KIND], minimums[LOG_KIND] = 3653, LOG_FLOOR_DAYS
    minimums["processed_messages"] = max(minimums.get("processed_messages", 0),
                                         int(config.get("BRIDGE_MAX_MESSAGE_AGE_DAYS") or 30) + 1)
    raw = config.get("RETENTION_DAYS") or ""
    pairs = list(raw.items()) if isinstance(raw, dict) else [
        tuple(p.split("=", 1)) if "=" in p else (p, "") for p in str(raw).split(",") if p.strip()]
    for kind, value in ((str(k).strip(), str(v).strip()) for k, v in pairs):
        if kind not in periods:
            raise ConfigError(f"RETENTION_DAYS: unknown kind {kind!r} (known: {', '.join(sorted(periods))})")
        try:
            periods[kind] = int(value)
        except ValueError:
            raise ConfigError(f"RETENTION_DAYS: {kind} must be a whole number of days") from None
    for kind, days in periods.items():
        if days < minimums.get(kind, 1):
            raise ConfigError(f"RETENTION_DAYS: {kind} must be at least {minimums[kind]} days, not {days}")
    return periods


def _allow(session: Session) -> None:
    # The append-only triggers let this transaction delete (rows past their legal floor only).
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT set_config('juki.retention', 'on', true)"))


def _cutoff_value(rule: Rule, cutoff: dt.datetime) -> Any:
    column = rule.table.c[rule.age_column]
    return cutoff.date() if column.type.python_type is dt.date else cutoff


def purge_kind(session: Session, rule: Rule, days: int, *, now: dt.datetime, dry_run: bool,
               batch: int) -> Purged:
    """Delete (or count) the rows of ``rule`` older than ``days``, in batches, in the caller's transaction."""
    table = rule.table
    cutoff = now - dt.timedelta(days=days)
    condition = and_(table.c[rule.age_column] < _cutoff_value(rule, cutoff),
                     rule.where(table) if rule.where is not None else true())
    key = next(iter(table.primary_key.columns))
    if dry_run:
        rows = session.execute(select(func.count()).select_from(table).where(condition)).scalar_one()
        return Purged(rule.kind, days, cutoff, int(rows), True)
    _allow(session)
    total = 0
    order = key.desc() if rule.newest_first else key
    while True:
        ids = list(session.execute(select(key).where(condition).order_by(order).limit(batch)).scalars())
        if not ids:
            break
        for child, column in rule.children:
            session.execute(delete(child).where(child.c[column].in_(ids)))
        total += _deleted(session.execute(delete(table).where(key.in_(ids))))
        if len(ids) < batch:
            break
    return Purged(rule.kind, days, cutoff, total, False)


def not_referenced(table: Table, *, except_tables: tuple[str, ...] = ()) -> Callable[[Table], ColumnElement[bool]]:
    """A condition: no row of another table (but ``except_tables``) refers to the row by a foreign key."""

    def condition(t: Table) -> ColumnElement[bool]:
        clauses: list[ColumnElement[bool]] = []
        for other in t.metadata.tables.values():
            if other.name in except_tables:
                continue
            for fk in other.foreign_keys:
                if fk.column.table is t and other is not t:
                    clauses.append(~exists().where(fk.parent == fk.column))
        return and_(true(), *clauses)

    return condition


# -- the operation log ------------------------------------------------------------------------------


def purge_log(session: Session, chain: AuditChain, days: int, *, now: dt.datetime, dry_run: bool, batch: int,
              archive_dir: Path, app: str) -> Purged:
    """Archive, seal, verify and then delete the log rows older than ``days`` up to the last signed checkpoint."""
    model = chain.log_model
    cutoff = now - dt.timedelta(days=max(days, LOG_FLOOR_DAYS))
    first = session.execute(select(func.min(model.seq))).scalar()
    old_end = session.execute(select(func.max(model.seq)).where(model.ts < cutoff)).scalar()
    if first is None or old_end is None:
        return Purged(LOG_KIND, days, cutoff, 0, dry_run)
    ends = [cp for cp in chain.checkpoints() if first <= cp["seq"] <= old_end]
    if not ends:
        return Purged(LOG_KIND, days, cutoff, 0, dry_run)
    end = max(ends, key=lambda cp: cp["seq"])
    rows = end["seq"] - first + 1
    if dry_run:
        return Purged(LOG_KIND, days, cutoff, rows, True)
    archive_dir.mkdir(parents=True, exist_ok=True)
    path = archive_dir / f"audit-{app.replace(':', '-')}-{first:012d}-{end['seq']:012d}.jsonl"
    with open(path, "x", encoding="utf-8") as fh:
        after = first - 1
        while after < end["seq"]:
            chunk = session.execute(select(model).where(model.seq > after, model.seq <= end["seq"])
                                    .order_by(model.seq).limit(batch)).scalars().all()
            for row in chunk:
                fh.write(json.dumps({"seq": row.seq, "prev_hash": row.prev_hash, "row_hash": row.row_hash,
                                     "canonical": row.canonical}, ensure_ascii=False) + "\n")
            after = chunk[-1].seq
        fh.flush()
        os.fsync(fh.fileno())
    path.chmod(0o440)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    problem = verify_archive(chain, path)
    if problem:
        raise RetentionError(f"the archive {path} does not verify ({problem}); no log row was deleted")
    _allow(session)
    deleted = 0
    while True:
        ids = list(session.execute(select(model.seq).where(model.seq <= end["seq"]).order_by(model.seq)
                                   .limit(batch)).scalars())
        if not ids:
            break
        deleted += _deleted(session.execute(delete(model).where(model.seq.in_(ids))))
    if deleted != rows:
        raise RetentionError(f"expected to purge {rows} log rows, deleted {deleted}")
    return Purged(LOG_KIND, days, cutoff, deleted, False, {"archive": path.name, "sha256": digest,
                                                           "through_seq": end["seq"], "head_hash": end["head_hash"]})


def _deleted(result: Any) -> int:
    """The rows a DELETE removed (a cursor result's row count)."""
    return int(getattr(result, "rowcount", 0) or 0)


def verify_archive(chain: AuditChain, path: Path) -> str:
    """Check an archive of log rows: each row's hash, the links, a start at row 1 or at a signed checkpoint,
    and an end at a signed checkpoint. Returns "" when it verifies, else what failed."""
    public = chain.public_key()
    signed = {}
    for cp in chain.checkpoints():
        try:
            public.verify(bytes.fromhex(cp["signature"]), _checkpoint_bytes(cp))
        except Exception:
            return f"the checkpoint of row {cp.get('seq')} has a bad signature"
        signed[cp["seq"]] = cp["head_hash"]
    prev = None
    last = None
    digest = path.with_name(path.name + ".sha256")
    if digest.exists() and digest.read_text().split()[0] != hashlib.sha256(path.read_bytes()).hexdigest():
        return "the file does not match its SHA-256"
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if prev is None:
                start = GENESIS if row["seq"] == 1 else signed.get(row["seq"] - 1)
                if row["prev_hash"] != start:
                    return f"row {row['seq']} does not follow row 1's genesis or a signed checkpoint"
            elif row["seq"] != last + 1 or row["prev_hash"] != prev:  # type: ignore[operator]
                return f"row {row['seq']} does not follow row {last}"
            if chain_hash(chain.hmac_key, row["prev_hash"], row["seq"], row["canonical"]) != row["row_hash"]:
                return f"row {row['seq']} does not match its hash"
            prev, last = row["row_hash"], row["seq"]
    if last is None or signed.get(last) != prev:
        return f"the last row {last} is not the one a signed checkpoint covers"
    return ""


def run(session: Session, rules: list[Rule], periods: dict[str, int], *, chain: AuditChain | None, dry_run: bool,
        batch: int, archive_dir: Path, app: str, record: Callable[[Session, Purged], None]) -> list[Purged]:
    """Purge every kind, one transaction each (the rows and its ``retention.purge`` log row commit together)."""
    now = clock.utcnow()
    steps: list[Callable[[], Purged]] = [
        functools.partial(purge_kind, session, rule, periods[rule.kind], now=now, dry_run=dry_run, batch=batch)
        for rule in rules]
    if chain is not None:
        steps.append(functools.partial(purge_log, session, chain, periods[LOG_KIND], now=now, dry_run=dry_run,
                                       batch=batch, archive_dir=archive_dir, app=app))
    results = []
    for step in steps:
        try:
            result = step()
            record(session, result)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        results.append(result)
    return results


def bridge_rules(processed: Table, dead_letters: Table, alerts: Table) -> list[Rule]:
    """The rules both apps have for their bridge tables."""
    return [
        Rule("processed_messages", processed, "processed_at", 90, 1,
             "city rules: 90 days, never under the bridge's replay window (BRIDGE_MAX_MESSAGE_AGE_DAYS)"),
        Rule("dead_letters", dead_letters, "created_at", 365, 1,
             "city rules: resolved dead letters, 1 year", where=lambda t: t.c.resolved_at.is_not(None)),
        # An alert of a condition (it has a subject) goes only once resolved: a year-old open one still stands.
        Rule("alerts", alerts, "created_at", 365, 1, "city rules: bridge alerts, 1 year (events, and resolved ones)",
             where=lambda t: t.c.resolved_at.is_not(None) | t.c.subject.is_(None)),
    ]


# -- the triggers (migrations 0030_retention and portal 0020_retention) ---------------------------------

SETTING_ON = "current_setting('juki.retention', true) = 'on'"
JOSHU_DUE = "status = 'removed' AND {p}removed_on < current_date - interval '150 years'"


def refusing_function(name: str, message: str, allow: str = "") -> str:
    """The SQL of an append-only trigger function that raises ``message``; ``allow``: when DELETE may pass."""
    let_through = f"""
        IF TG_OP = 'DELETE' AND {SETTING_ON} AND {allow} THEN
            RETURN OLD;
        END IF;""" if allow else ""
    return f"""
    CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN{let_through}
        RAISE EXCEPTION '{message}', TG_OP USING ERRCODE = 'insufficient_privilege';
    END $$"""


AUDIT_LOG = ("audit_log_append_only", "audit_log is append-only: % refused")
AUDIT_LOG_DUE = f"OLD.ts < now() - interval '{LOG_FLOOR_DAYS} days'"


def detail(result: Purged) -> dict[str, Any]:
    """The ``retention.purge`` row's detail: counts and dates only; for the log, the archive and its end."""
    body: dict[str, Any] = {"kind": result.kind, "days": result.days, "cutoff": result.cutoff.isoformat(),
                            "rows": result.rows, "dry_run": result.dry_run}
    return {**body, **result.extra}
