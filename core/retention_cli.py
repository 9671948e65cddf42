"""``flask … retention schedule|run [--dry-run]``: the retention commands, alike for both apps (R16)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.orm import Session

from core import retention
from core.audit import PURGE_ACTION, AuditChain
from core.cli import fail
from core.config import ConfigError


def retention_group(rules: Callable[[], list[retention.Rule]], chain: Callable[[], AuditChain],
                    session: Callable[[], Session], app_name: Callable[[], str]) -> AppGroup:
    """The ``retention`` group of one app: its rules, its operation log and its session."""
    group = AppGroup("retention", help="Delete what is past its retention period (R16).")

    def periods() -> dict[str, int]:
        try:
            return retention.schedule(current_app.config, rules())
        except ConfigError as exc:
            fail(str(exc))
            raise

    @group.command("schedule")
    def show() -> None:
        """Print each kind's retention period in days and its basis."""
        bases = {r.kind: r.basis for r in rules()}
        bases[retention.LOG_KIND] = "city document rules: 10 years, archived before it goes"
        for kind, days in periods().items():
            click.echo(f"{kind:<20} {days:>6} days  {bases.get(kind, '')}")

    @group.command("run")
    @click.option("--dry-run", is_flag=True, help="Count what is due and log the counts; delete nothing.")
    @click.option("--batch", default=1000, show_default=True, type=click.IntRange(1, 100_000))
    def run(dry_run: bool, batch: int) -> None:
        """Delete what is due, kind by kind in batches; one operation-log row per kind. Safe to run every night."""
        db_session = session()
        log_chain = chain()

        def record(s: Session, result: retention.Purged) -> None:
            log_chain.append(s, action=PURGE_ACTION, actor="retention", target_type="retention",
                             target_id=result.kind, detail=retention.detail(result))

        archive_dir = Path(current_app.config.get("RETENTION_ARCHIVE_DIR")
                           or Path(current_app.config["INSTANCE_PATH"]) / "log-archive")
        try:
            results = retention.run(db_session, rules(), periods(), chain=log_chain, dry_run=dry_run, batch=batch,
                                    archive_dir=archive_dir, app=app_name(), record=record)
        except retention.RetentionError as exc:
            fail(str(exc))
            return
        verb = "due" if dry_run else "deleted"
        for result in results:
            where = f" (archive {result.extra['archive']})" if result.extra.get("archive") else ""
            click.echo(f"{result.kind:<20} {result.rows:>8} {verb}, older than {result.days} days{where}")

    return group
