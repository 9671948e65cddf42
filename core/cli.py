"""Helpers for the commands of both apps: refusals name the field, exit 2, and leave nothing written."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy.orm import Session


def fail(message: str) -> None:
    """Print the error and stop with exit status 2."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


@contextmanager
def refusals(session: Session, *errors: type[Exception]) -> Iterator[None]:
    """Turn a service's refusal (an error with ``field`` and ``message``) into a message, rolling back."""
    try:
        yield
    except errors as exc:
        session.rollback()
        fail(f"{getattr(exc, 'field', '-')}: {getattr(exc, 'message', str(exc))}")
