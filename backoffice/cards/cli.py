"""Card commands: issue, revoke, suspend, resume (thin wrappers over backoffice.services.cards)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click
from flask.cli import AppGroup

from backoffice.extensions import db
from backoffice.services import cards as card_service
from core.cli import committed, fail

cards_cli = AppGroup("cards", help="Issue My Number Cards and revoke, suspend or resume their certificates.")
# Commands have no signed-in account; the operation log names the command line as the actor.
CLI_ACTOR = "cli"


T = TypeVar("T")


def _committed(action: Callable[[], T]) -> T:
    return committed(db.session, action, card_service.CardError)


def write_new_file(path: Path, data: bytes) -> None:
    # O_EXCL: never overwrite another card's file; 0600: the file holds the holder's four basic items.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


@cards_cli.command("issue")
@click.argument("resident_code")
@click.option("--pin", prompt=True, hide_input=True, help="4-digit PIN of the authentication certificate.")
@click.option("--password", default="", help="6-16 of A-Z and 0-9, letters and digits mixed; needed from age 15.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the virtual card file (must not exist yet).")
def cards_issue(resident_code: str, pin: str, password: str, out: Path) -> None:
    """Issue a card to the resident with RESIDENT_CODE and write its virtual card file."""
    # Checked before issuing, so a bad path never leaves an issued card without its file.
    if out.exists():
        fail(f"out: {out} already exists")
    if not out.parent.is_dir():
        fail(f"out: the folder {out.parent} does not exist")
    # Committed before the file is written: a file for a card the ledger does not know could never be revoked.
    card, data = _committed(lambda: card_service.issue_card(db.session, resident_code=resident_code, pin=pin,
                                                            password=password or None, issued_by=CLI_ACTOR))
    try:
        write_new_file(out, data)
    except OSError as exc:
        click.echo(f"Error: out: card {card.card_number} was issued but its file could not be written ({exc}); "
                   "issue the card again, which supersedes this one.", err=True)
        sys.exit(1)
    sign = f"sign serial {card.sign_cert_serial}" if card.sign_cert_serial else "no signature certificate (under 15)"
    click.echo(f"Issued card {card.card_number}: auth serial {card.auth_cert_serial}, {sign}, "
               f"expires {card.expires_on.isoformat()}; card file {out}")


@cards_cli.command("revoke")
@click.argument("serial")
@click.option("--reason", required=True, help=f"One of {', '.join(card_service.REASONS)}.")
def cards_revoke(serial: str, reason: str) -> None:
    """Revoke the certificate with SERIAL (decimal) and republish the CRLs."""
    card = _committed(lambda: card_service.revoke_certificate(db.session, serial=serial, reason=reason, by=CLI_ACTOR))
    click.echo(f"Revoked certificate {serial.strip()} ({reason.strip()}); card {card.card_number} is "
               f"{card.status.value}.")


@cards_cli.command("suspend")
@click.argument("card_number")
def cards_suspend(card_number: str) -> None:
    """A lost card: put its certificates on hold and republish the CRLs."""
    card = _committed(lambda: card_service.suspend_card(db.session, card_number=card_number, by=CLI_ACTOR))
    click.echo(f"Suspended card {card.card_number}: its certificates are on hold.")


@cards_cli.command("resume")
@click.argument("card_number")
def cards_resume(card_number: str) -> None:
    """A lost card found again: release the holds and republish the CRLs."""
    card = _committed(lambda: card_service.resume_card(db.session, card_number=card_number, by=CLI_ACTOR))
    click.echo(f"Resumed card {card.card_number}: it is active again.")


@cards_cli.command("mark-renewals")
def cards_mark_renewals() -> None:
    """Mark for renewal every card taken over at a 転入 and not presented within the 90 days (継続利用)."""
    lapsed = _committed(lambda: card_service.mark_lapsed_continuations(db.session, by=CLI_ACTOR))
    click.echo(f"Marked {len(lapsed)} card(s) for renewal: {', '.join(c.card_number for c in lapsed) or '-'}.")
