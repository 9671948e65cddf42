"""Holding messages back: an app may keep a message it cannot act on yet (e.g. a paused intake) instead of applying it.

A zone registers one hold check. The delivery job asks it after the envelope opened and its payload
was checked against its schema (a payload the schema refuses is dead-lettered, never held), and before
anything is applied: a check that keeps the message stores it itself (ciphertext only, in the
caller's transaction) and returns True; the job then commits and ends normally, so the message is
neither failed nor dead-lettered, and it is applied when its holder puts it back on its queue.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from core.envelope import Opened

Hold = Callable[[Session, Opened, str, str], bool]  # (session, opened, envelope, queue) -> kept
_holds: dict[str, Hold] = {}


def register_hold(zone: str, check: Hold) -> None:
    """The hold check of ``zone`` (one per zone; the same again changes nothing)."""
    if _holds.get(zone, check) is not check:
        raise ValueError(f"{zone} already has another hold check")
    _holds[zone] = check


def held(binding: Any, session: Session, opened: Opened, envelope: str, queue: str) -> bool:
    """True if the zone's hold check kept the message (then nothing else may happen to it in this job)."""
    check = _holds.get(binding.zone)
    return check is not None and check(session, opened, envelope, queue)
