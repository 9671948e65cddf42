"""``flask --app wsgi:backoffice_app watch run``: the staff-access rules as a scheduled job (R18)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from backoffice.extensions import db
from backoffice.services import watch
from core.cli import fail
from core.config import ConfigError

watch_cli = AppGroup("watch", help="Watch staff access to the ledger (R18).")


@watch_cli.command("run")
def run() -> None:
    """Apply the rules to the recent operation log and alert each new hit (cron: every 10 minutes)."""
    try:
        hits = watch.run(db.session, current_app.config)
    except ConfigError as exc:
        db.session.rollback()
        fail(str(exc))
        return
    db.session.commit()
    for hit in hits:
        click.echo(f"alert: {hit.rule} {hit.category} {hit.actor} {hit.hour} JST: {hit.count} (limit {hit.threshold})")
    click.echo(f"{len(hits)} new alerts.")
