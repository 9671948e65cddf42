"""Back-office commands: staff, terminals, audit, db grants, seed and demo data (thin wrappers over services)."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import func, select

from backoffice.cards.cli import CLI_ACTOR, cards_cli, write_new_file
from backoffice.extensions import db
from backoffice.models import Resident, Role, Staff
from backoffice.services import audit
from backoffice.services import staff as staff_service
from backoffice.services import terminals as terminal_service
from core.audit_cli import audit_group
from core.cli import committed, fail
from core.grants import register_grants_command

staff_cli = AppGroup("staff", help="Manage staff accounts.")
terminals_cli = AppGroup("terminals", help="Register and revoke terminals.")
audit_cli = audit_group(audit.chain, lambda: db.session)


T = TypeVar("T")


def _committed(action: Callable[[], T]) -> T:
    return committed(db.session, action, staff_service.StaffError, terminal_service.TerminalError)


@staff_cli.command("add")
@click.argument("login_id")
@click.option("--name", required=True, help="Full name.")
@click.option("--role", "roles", multiple=True, required=True, type=click.Choice([r.value for r in Role]))
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True, help="Read from stdin/prompt.")
def staff_add(login_id: str, name: str, roles: tuple[str, ...], password: str) -> None:
    """Create an account and print its TOTP provisioning URI (once)."""
    staff, secret = _committed(lambda: staff_service.add_staff(db.session, login_id=login_id, name=name,
                                                               password=password, roles=list(roles)))
    click.echo(f"Created {staff.login_id} ({', '.join(roles)}).")
    click.echo(f"TOTP: {staff_service.provisioning_uri(staff, secret)}")


def _staff(login_id: str) -> Staff:
    staff = staff_service.get_by_login(db.session, login_id)
    if staff is None:
        fail(f"login_id: no account {login_id!r}")
    assert staff is not None
    return staff


@staff_cli.command("unlock")
@click.argument("login_id")
def staff_unlock(login_id: str) -> None:
    """Unlock an account locked after repeated failures."""
    _committed(lambda: staff_service.unlock(db.session, _staff(login_id)))
    click.echo(f"Unlocked {login_id}.")


@staff_cli.command("disable")
@click.argument("login_id")
def staff_disable(login_id: str) -> None:
    """Disable an account and end its live sessions."""
    _committed(lambda: staff_service.disable(db.session, _staff(login_id)))
    click.echo(f"Disabled {login_id}.")


@terminals_cli.command("add")
@click.argument("name")
@click.option("--cert-fingerprint", default=None, help="SHA-256 fingerprint of the terminal's client certificate.")
def terminals_add(name: str, cert_fingerprint: str | None) -> None:
    """Register a terminal and print its one-time enrollment code."""
    _terminal, code = _committed(lambda: terminal_service.add_terminal(db.session, name=name,
                                                                       cert_fingerprint=cert_fingerprint))
    click.echo(f"Terminal {name} registered. Enrollment code (valid {terminal_service.ENROLLMENT_HOURS} h): {code}")


@terminals_cli.command("revoke")
@click.argument("name")
def terminals_revoke(name: str) -> None:
    """Revoke a terminal."""
    _committed(lambda: terminal_service.revoke(db.session, name))
    click.echo(f"Revoked {name}.")


@click.command("seed")
@with_appcontext
@click.option("--residents", default=1000, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--seed", "seed_value", default=1, show_default=True, type=int)
def seed(residents: int, seed_value: int) -> None:
    """Load a deterministic synthetic ledger (idempotent for the same seed)."""
    from backoffice.demo.seed import seed_ledger

    started = time.perf_counter()
    cfg = current_app.config
    result = seed_ledger(db.session, residents=residents, seed=seed_value, municipality_code=cfg["MUNICIPALITY_CODE"],
                         field_key=cfg["FIELD_ENCRYPTION_KEY"], index_key=cfg["BLIND_INDEX_KEY"])
    audit.record("ledger.seed", detail={"residents": result.residents, "seed": seed_value, "created": result.created})
    db.session.commit()
    elapsed = time.perf_counter() - started
    total = db.session.execute(select(func.count(Resident.id))).scalar_one()
    if result.created:
        click.echo(f"Seeded {result.residents} residents in {result.households} households in {elapsed:.1f} s "
                   f"({total} records in the ledger).")
    else:
        click.echo(f"Already seeded with seed {seed_value}: nothing changed ({total} records in the ledger).")


DEMO_STAFF = [
    ("clerk1", "窓口 一郎", ["clerk"]),
    ("clerk2", "窓口 二郎", ["clerk"]),
    ("approver1", "審査 花子", ["approver", "clerk"]),
    # A second approver: one approver cannot approve a case they confirmed themselves.
    ("approver2", "審査 桜子", ["approver", "clerk"]),
    ("number1", "番号 利用", ["number_use", "clerk"]),
    ("admin1", "管理 太郎", ["admin"]),
    ("auditor1", "監査 次郎", ["auditor"]),
]


DEMO_CARD_PIN = "1234"
# Residents printed for a newcomer to issue more cards to.
DEMO_RESIDENTS_TO_TRY = 5


@click.command("demo")
@with_appcontext
@click.option("--residents", default=1000, show_default=True, type=int)
@click.option("--url", "url", default=None,
              help="Where this back office is served (default: COUNTER_ORIGIN/backoffice, as `make run` serves it).")
def demo(residents: int, url: str | None) -> None:
    """When the database is empty: seed a demo ledger, staff of every role, one terminal code and a ready card."""
    if db.session.execute(select(func.count(Staff.id))).scalar_one():
        click.echo("Demo data already present; nothing changed.")
        return
    from backoffice.demo.seed import seed_ledger

    cfg = current_app.config
    seed_ledger(db.session, residents=residents, seed=1, municipality_code=cfg["MUNICIPALITY_CODE"],
                field_key=cfg["FIELD_ENCRYPTION_KEY"], index_key=cfg["BLIND_INDEX_KEY"])
    lines = []
    for login_id, name, roles in DEMO_STAFF:
        password = secrets.token_urlsafe(12)
        _staff, secret = staff_service.add_staff(db.session, login_id=login_id, name=name, password=password,
                                                 roles=roles)
        lines.append(f"  {login_id:<10} password {password:<24} TOTP secret {secret}  roles {','.join(roles)}")
    _terminal, code = terminal_service.add_terminal(db.session, name="demo-terminal")
    card_lines, card_file = _demo_card(cfg)
    db.session.commit()
    if card_file is not None:  # after the commit: a file for a card the ledger does not know could never be revoked
        card_file[0].unlink(missing_ok=True)  # a card of an earlier demo database is of no use
        card_file[0].parent.mkdir(parents=True, exist_ok=True)
        write_new_file(*card_file)
    city = f"{cfg['MUNICIPALITY_NAME']} ({cfg['MUNICIPALITY_CODE']})"
    base = (url or f"{cfg['COUNTER_ORIGIN']}/backoffice").rstrip("/")
    click.echo(f"Demo ledger of {city}: {residents} residents. Demo staff "
               "(TOTP: any authenticator app, or `oathtool --totp -b SECRET`):")
    click.echo("\n".join(lines))
    click.echo(f"Demo terminal of {city}, enrollment code: {code}  (enter it at {base}/terminal/enroll)")
    click.echo("\n".join(card_lines))


def _demo_card(cfg: Any) -> tuple[list[str], tuple[Path, bytes] | None]:
    """Issue a card to the first adult demo resident; the lines saying how to use it, and its file to write.

    Also names a few more residents (synthetic, like the whole demo ledger) a newcomer can issue cards to.
    """
    from backoffice.models import RecordStatus
    from backoffice.services import cards as card_service
    from core import clock

    today = clock.today_jst()
    adult = dt.date(today.year - 20, today.month, 1)
    residents = db.session.execute(
        select(Resident).where(Resident.status == RecordStatus.CURRENT, Resident.birth_date < adult)
        .order_by(Resident.id).limit(DEMO_RESIDENTS_TO_TRY + 1)).scalars().all()
    if not residents:
        return ["No adult demo resident to issue a demo card to."], None
    holder, others = residents[0], residents[1:]
    path = Path(cfg["INSTANCE_PATH"]) / f"demo-card-{cfg['MUNICIPALITY_CODE']}.json"
    password = f"DEMO{secrets.randbelow(10_000):04d}"
    card, data = card_service.issue_card(db.session, resident_code=holder.juminhyo_code, pin=DEMO_CARD_PIN,
                                         password=password, issued_by=CLI_ACTOR)
    lines = [f"Demo card of {holder.name} (住民票コード {holder.juminhyo_code}, card {card.card_number}): {path}",
             f"  PIN {DEMO_CARD_PIN}  signature password {password}  "
             "(sign in at the portal's /auth/sign-in, or docs/examples/reference_client.py)",
             "More demo residents to try (.venv/bin/flask --app wsgi:backoffice_app cards issue CODE "
             "--pin 1234 --password ABC123 --out card.json):"]
    lines += [f"  {r.juminhyo_code}  {r.name}  born {r.birth_date.isoformat()}" for r in others]
    return lines, (path, data)


def register(app: Flask) -> None:
    """Attach the command groups to the app."""
    from core.backup_cli import backup_commands

    backups = backup_commands(lambda: f"backoffice:{current_app.config['MUNICIPALITY_CODE']}",
                              "BACKOFFICE_DATABASE_URL", audit.chain, lambda: db.session)
    from backoffice.services import retention
    from core.retention_cli import retention_group

    retention_cli = retention_group(retention.rules, audit.chain, lambda: db.session,
                                    lambda: f"backoffice:{current_app.config['MUNICIPALITY_CODE']}")
    from backoffice.watch_cli import watch_cli

    for command in (staff_cli, terminals_cli, audit_cli, seed, demo, cards_cli, *backups, retention_cli, watch_cli):
        app.cli.add_command(command)
    register_grants_command()
