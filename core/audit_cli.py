"""``flask … audit verify|checkpoint|keygen``: the operation-log commands, alike for the portal and the back office."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy.orm import Session

from core.audit import AuditChain, CheckpointError, default_public_key_path, generate_checkpoint_keys
from core.cli import fail


def audit_group(chain: Callable[[], AuditChain], session: Callable[[], Session]) -> AppGroup:
    """The ``audit`` command group of one app, over its chain and its database session."""
    group = AppGroup("audit", help="Verify and checkpoint the operation log.")

    @group.command("verify")
    def audit_verify() -> None:
        """Recompute the chain and check it against the signed checkpoints; exit 1 naming the first bad row.

        Only the public key (AUDIT_CHECKPOINT_PUBLIC_KEY) is read; no key is ever made here.
        """
        db_session = session()
        result = chain().verify(db_session)
        db_session.rollback()
        if result.ok:
            click.echo(f"OK: {result.summary()}; chain and checkpoints agree.")
            if result.reason != "ok":
                click.echo(f"Note: {result.reason.removeprefix('ok; ')}")
            return
        where = f"at row {result.first_bad}" if result.first_bad is not None else "before any row"
        click.echo(f"FAILED {where}: {result.reason} ({result.summary()})", err=True)
        sys.exit(1)

    @group.command("checkpoint")
    def audit_checkpoint() -> None:
        """Write a signed checkpoint of the current head now (also starts a new checkpoint file, deliberately)."""
        db_session = session()
        try:
            seq, head = chain().checkpoint_now(db_session)
        except CheckpointError as exc:
            fail(str(exc))
        finally:
            db_session.rollback()
        click.echo(f"Checkpoint at row {seq}: {head}")

    @group.command("keygen")
    @click.option("--public-key", "public_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="Where to write the public key (default: AUDIT_CHECKPOINT_PUBLIC_KEY, else <key>.pub.pem).")
    def audit_keygen(public_path: Path | None) -> None:
        """Make the checkpoint signing key (AUDIT_CHECKPOINT_KEY_PATH) once; an existing key is never replaced."""
        current = chain()
        if public_path is None:
            configured = current.checkpoint_public_key
            usable = configured and not configured.lstrip().startswith("-----BEGIN")
            public_path = Path(configured) if usable else default_public_key_path(current.checkpoint_key_path)
        try:
            generate_checkpoint_keys(current.checkpoint_key_path, public_path)
        except CheckpointError as exc:
            fail(str(exc))
        click.echo(f"Signing key: {current.checkpoint_key_path} (keep it with the app only)")
        click.echo(f"Public key: {public_path} (give it to whoever runs `audit verify`: AUDIT_CHECKPOINT_PUBLIC_KEY)")

    return group
