"""Helpers for the commands of both apps: refusals name the field, exit 2, and leave nothing written."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import click
from sqlalchemy.orm import Session

T = TypeVar("T")


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


def committed(session: Session, action: Callable[[], T], *errors: type[Exception]) -> T:
    """Run one service call as the command's transaction: committed, or on a refusal a message and nothing kept."""
    with refusals(session, *errors):
        result = action()
    session.commit()
    return result
