"""The jobs docs/operations.md schedules (systemd timers, cron) run commands the back office has, in Japan time."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
OPERATIONS = ROOT / "docs" / "operations.md"


def _scheduled_commands() -> list[list[str]]:
    """The back-office flask commands of every ExecStart= and cron line of the operations guide."""
    found = []
    for line in OPERATIONS.read_text(encoding="utf-8").splitlines():
        if not (line.startswith("ExecStart=") or re.match(r"^[0-9*/,-]+ [0-9*/,-]+ \S+ \S+ \S+ ", line)):
            continue
        words = shlex.split(line.removeprefix("ExecStart="))
        for index, word in enumerate(words):
            if word.endswith("flask") and words[index + 1:index + 3] == ["--app", "wsgi:backoffice_app"]:
                found.append(words[index + 3:])
    return found


def test_the_daily_card_renewal_marks_are_scheduled_in_japan_time_and_run_a_real_command(bo_app: Any) -> None:
    scheduled = _scheduled_commands()
    assert ["cards", "mark-renewals"] in scheduled
    text = OPERATIONS.read_text(encoding="utf-8")
    assert re.search(r"^OnCalendar=\*-\*-\* 00:10:00 Asia/Tokyo$", text, re.MULTILINE)
    assert re.search(r"^CRON_TZ=Asia/Tokyo$", text, re.MULTILINE)
    for command in scheduled:
        result = bo_app.test_cli_runner().invoke(args=command)
        assert result.exit_code == 0, (command, result.output)
    assert "Marked 0 card(s) for renewal" in bo_app.test_cli_runner().invoke(args=["cards", "mark-renewals"]).output
