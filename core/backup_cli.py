"""``flask … backup --out DIR`` and ``flask … restore --from DIR --into URL``, alike for both apps (R17)."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from core.audit import AuditChain
from core.backup import BackupError, Target, backup, backup_key, restore
from core.cli import fail
from core.config import Config


def backup_commands(app_name: Callable[[], str], url_setting: str, chain: Callable[[], AuditChain],
                    session: Callable[[], Session]) -> list[click.Command]:
    """The two commands of one app: its name in the manifest, the setting naming its database, its chain, and
    the session its operation-log rows are written in."""

    def target() -> Target:
        return Target(app=app_name(), database_url=str(current_app.config[url_setting]), chain=chain())

    def logged(action: str, outcome: str, detail: dict[str, Any]) -> None:
        # Every copy of the whole register taken or put back is in the app's own operation log (R6, R14): who
        # ran it (the operating-system account), where the copy went or came from, and what it held.
        chain().append(session(), action=action, actor=f"os:{getpass.getuser()}", outcome=outcome, detail=detail)
        session().commit()

    def key() -> bytes:
        return backup_key(current_app.config, Config.SECRETS)

    @click.command("backup")
    @click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
                  help="A new or empty folder for this backup (dump, checkpoints, manifest).")
    @with_appcontext
    def backup_command(out: Path) -> None:
        """Dump the app's database consistently, encrypted under BACKUP_KEY, with a signed manifest."""
        try:
            manifest = backup(target(), out, key())
        except BackupError as exc:
            logged("backup.create", "failure", {"out": str(out.resolve()), "error": str(exc)[:500]})
            fail(str(exc))
        rows = sum(manifest["row_counts"].values())
        logged("backup.create", "success", {"out": str(out.resolve()), "tables": len(manifest["row_counts"]),
                                            "rows": rows, "audit_seq": manifest["audit"]["seq"]})
        click.echo(f"Backup of {manifest['app']} written to {out}: {len(manifest['row_counts'])} tables, "
                   f"{rows:,} rows, operation log to row {manifest['audit']['seq']:,}, "
                   f"{manifest['files']['database.dump.enc']['size']:,} bytes encrypted in {manifest['seconds']} s.")

    @click.command("restore")
    @click.option("--from", "source", required=True,
                  type=click.Path(exists=True, file_okay=False, path_type=Path), help="A backup folder.")
    @click.option("--into", "into", required=True,
                  help="The URL of an empty database to restore into (never the app's live one unless it is empty).")
    @with_appcontext
    def restore_command(source: Path, into: str) -> None:
        """Restore a backup into an empty database; check its manifest, row counts and operation log."""
        where = {"from": str(source.resolve()), "into": make_url(into).render_as_string(hide_password=True)}
        try:
            result = restore(target(), source, into, key())
        except BackupError as exc:
            logged("backup.restore", "failure", {**where, "check": exc.check})
            click.echo(f"Restore refused at check '{exc.check}': {exc.message}", err=True)
            raise SystemExit(1) from None
        logged("backup.restore", "success", {**where, "rows": result.rows,
                                             "backup_created_at": result.manifest["created_at"]})
        click.echo(f"Restored {result.rows:,} rows of {result.manifest['app']} (backup of "
                   f"{result.manifest['created_at']}) in {result.seconds} s; row counts match the manifest; "
                   f"audit verify OK: {result.audit_summary}.")

    return [backup_command, restore_command]
