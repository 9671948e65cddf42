"""Bridge commands of both apps: ``keys generate|import|show``, ``relay``, ``worker`` and ``alerts`` (thin wrappers)."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from core.cli import fail
from core.envelope import (
    KeyRegistry,
    import_public_key,
    key_directory,
    private_key_path,
    public_key_path,
    validate_party,
    write_private_key,
)

keys_cli = AppGroup("keys", help="This party's bridge keys and the public keys of the other parties.")


@keys_cli.command("generate")
def keys_generate() -> None:
    """Write this app's key pairs (unless present) and print the public keys to register with the other side."""
    binding = current_app.extensions["bridge"]
    directory = key_directory(current_app.config)
    path = private_key_path(directory, binding.party)
    if write_private_key(directory, binding.party, KeyRegistry.generate(binding.party).private_pem()):
        click.echo(f"Wrote the private keys of {binding.party} to {path} (mode 0600).", err=True)
    else:
        click.echo(f"{path} already exists; it was kept. Its public keys:", err=True)
    registry = KeyRegistry.from_config(current_app.config, party=binding.party)
    click.echo(f"Register these public keys on the other side with: keys import {binding.party} FILE", err=True)
    click.echo(registry.public_pem(), nl=False)


@keys_cli.command("show")
def keys_show() -> None:
    """Print this app's public keys and the parties whose public keys are registered."""
    binding = current_app.extensions["bridge"]
    registry = KeyRegistry.from_config(current_app.config, party=binding.party)
    known = ", ".join(sorted(registry.public_keys)) or "none"
    click.echo(f"Party {binding.party}; public keys registered for: {known}", err=True)
    click.echo(registry.public_pem(), nl=False)


@keys_cli.command("import")
@click.argument("party")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def keys_import(party: str, file: Path) -> None:
    """Register PARTY's public keys from FILE (the output of its ``keys generate``)."""
    try:
        validate_party(party)
        keys = import_public_key(key_directory(current_app.config), party, file.read_text())
    except ValueError as exc:
        fail(str(exc))
        return
    path = public_key_path(key_directory(current_app.config), party)
    click.echo(f"Registered {party}: signing key {keys.verify_kid}, encryption key {keys.encrypt_kid} ({path}).")


@click.command("relay")
@with_appcontext
@click.option("--once", is_flag=True, help="One pass over the due rows, then exit.")
def relay_command(once: bool) -> None:
    """Publish this app's outbox to the queues and republish what is not acknowledged (loops until stopped)."""
    import redis as redis_module

    from bridge.relay import RelayLocked, run_relay

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        published = run_relay(app, once=once)
    except RelayLocked as exc:
        fail(str(exc))
        return
    except redis_module.RedisError as exc:
        fail(f"Redis unavailable ({type(exc).__name__}); nothing was lost, the rows stay in the outbox")
        return
    if once:
        click.echo(f"Published {published} message(s).")


@click.command("worker")
@with_appcontext
@click.option("--queue", "queue", required=True, help="The one queue this process works (see QueueNames).")
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
@click.option("--name", default=None, help="Worker name (default: party, queue, host and pid).")
def worker_command(queue: str, burst: bool, name: str | None) -> None:
    """Run an rq worker on one queue, each job inside this app's context."""
    from bridge.worker import run_worker

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        run_worker(app, queue, burst=burst, name=name)
    except ValueError as exc:
        fail(str(exc))


@click.command("alerts")
@with_appcontext
@click.option("--limit", default=50, show_default=True, help="How many of the newest alerts to list.")
@click.option("--check", is_flag=True, help="First record the watched conditions and mail what is new (the relay "
              "does this every ALERT_CHECK_SECONDS).")
@click.option("--acknowledge", "acknowledge_id", type=int, help="Acknowledge the alert with this id (needs --by).")
@click.option("--resolve", "resolve_id", type=int, help="Resolve the alert with this id (needs --by).")
@click.option("--by", default="", help="Who acknowledges or resolves (written to the operation log).")
def alerts_command(limit: int, check: bool, acknowledge_id: int | None, resolve_id: int | None, by: str) -> None:
    """List the alerts, newest first: queues without workers or waiting long, outbox lag, dead letters, Redis loss.

    The portal has no administrators' pages: its alerts are acknowledged and resolved here.
    """
    from sqlalchemy import select

    binding = current_app.extensions["bridge"]
    if binding.alerts is None:
        fail("this app keeps no bridge alerts")
        return
    for action, alert_id in (("acknowledge", acknowledge_id), ("resolve", resolve_id)):
        if alert_id is None:
            continue
        from bridge import alerting

        row = binding.session.get(binding.alerts, alert_id)
        if not by.strip():
            fail("--by: name who handles the alert")
            return
        if row is None:
            fail(f"--{action}: no alert {alert_id}")
            return
        try:
            getattr(alerting, action)(binding, row, by=by.strip()[:80])
        except alerting.AlertClosed as exc:
            binding.session.rollback()
            fail(f"--{action}: {exc}")
            return
        binding.session.commit()
        click.echo(f"Alert {alert_id}: {action}d by {by.strip()[:80]}.", err=True)
    if check:
        from bridge import alerting

        connection = binding.redis()
        try:
            mails = alerting.check(binding, connection)
        finally:
            connection.close()
        click.echo(f"Checked; {mails} mail(s) sent.", err=True)
    model = binding.alerts
    rows = binding.session.execute(select(model).order_by(model.id.desc()).limit(limit)).scalars().all()
    for row in rows:
        state = "resolved" if row.resolved_at else "acknowledged" if row.acknowledged_at else "open"
        click.echo(f"{row.id}\t{row.created_at.isoformat(timespec='seconds')}\t"
                   f"{row.seen_last.isoformat(timespec='seconds')}\t{row.kind}\t{row.subject or ''}\t{row.count}\t"
                   f"{state}\t{row.messages}\t{row.detail}")
    click.echo(f"{len(rows)} alert(s) of {binding.party}.", err=True)
    binding.session.rollback()


def register_commands(app: Flask) -> None:
    """Attach the bridge commands to ``app``."""
    for command in (keys_cli, relay_command, worker_command, alerts_command):
        app.cli.add_command(command)
