"""The one shape of a refusal: a step the rules do not allow, naming what to correct.

Every service's refusal (a card, a case, a certificate, a counter step, staff, terminals, …)
is a ``Refused``: ``field`` names the input or item to correct, ``message`` says why (a catalogue
entry that reads in the page's language, or a command's text), ``code`` names the rule (the field
when not given). Pages show ``message`` beside ``field``; commands print ``field: message``
(``core.cli.refusals``).
"""

from __future__ import annotations

from typing import Any


class Refused(Exception):
    """A step the rules refuse; ``field`` names what to correct, ``message`` says why, ``code`` the rule."""

    def __init__(self, field: str, message: Any, *, code: str = "") -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.code = code or field
