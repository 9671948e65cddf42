"""``make bench``: every figure of the speed issue next to its baseline measured in the same run, as one table.

The machine is shared and its load varies, so an absolute figure says little; each figure is
divided by a baseline measured in the same run, alternately with it, on the same machine, and the
goal is set on that ratio where there is one. Each figure and its baseline are measured
``--runs`` times (3) and the medians are shown. All traffic goes to 127.0.0.1; every process a
module needs (gunicorn, redis-server, workers) is started and stopped by the module, and every
scratch database is dropped.

The contract of a bench module (``bench/<name>.py``, listed in ``MODULES``)::

    def run(args: argparse.Namespace) -> list[dict]      # required
    def add_arguments(parser: argparse.ArgumentParser)   # optional: the module's own options

``args.runs`` is the number of repetitions; a module repeats its measurement (alternating with its
baseline) that many times and returns, per figure, one row::

    {"figure": str,                    # what is measured, e.g. "intake: cases/s, 1 worker"
     "value": float,                   # median over the repetitions
     "unit": str,                      # e.g. "req/s", "ms", "jobs/s"
     "baseline_unit": str,             # optional: the baseline's, when it differs (cases/s against jobs/s)
     "baseline": str | None,           # the baseline's name (None: an absolute figure)
     "baseline_value": float | None,   # its median, measured in the same run
     "goal": str}                      # "ratio >= 0.3", "value <= 20", "value >= 30", or free text

and may add ``"values"``/``"baseline_values"`` (each repetition's figure) and ``"holds"`` (a bool,
for a goal the harness cannot read). The harness computes ``ratio = value / baseline_value`` and
whether the goal holds. A module that is absent is skipped and the output says so; a module that
fails is reported as a row saying so, and the others still run.

Baselines are in ``bench/baselines.py`` (``echo_rate``; ``rq_noop_rate`` on its own row) and, for the
intake figures, in ``bench/intake.py`` (no-op jobs with as many workers).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.util
import os
import platform
import re
import sys
import time
import traceback
from typing import Any

# The figure modules, in the order of the table.
MODULES = ("bench.portal", "bench.baselines", "bench.intake", "bench.e2e", "bench.certificates", "bench.search")
_GOAL = re.compile(r"^\s*(ratio|value)\s*(>=|<=)\s*([0-9.]+)")


def goal_holds(row: dict[str, Any]) -> bool | None:
    """Whether the row's goal holds: from ``holds`` if given, else read from ``goal``; None when unknown."""
    if isinstance(row.get("holds"), bool):
        return bool(row["holds"])
    match = _GOAL.match(str(row.get("goal", "")))
    if not match:
        return None
    subject, op, bound = match.group(1), match.group(2), float(match.group(3))
    measured = ratio(row) if subject == "ratio" else row.get("value")
    if measured is None:
        return None
    return measured >= bound if op == ">=" else measured <= bound


def ratio(row: dict[str, Any]) -> float | None:
    """value / baseline_value, or None without a baseline."""
    base = row.get("baseline_value")
    if not base or row.get("value") is None:
        return None
    return float(row["value"]) / float(base)


def _number(value: Any) -> str:
    if value is None:
        return "–"
    value = float(value)
    return f"{value:.3g}" if abs(value) < 10 else f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"


def table(rows: list[dict[str, Any]]) -> str:
    """The one markdown table of the run."""
    lines = ["| figure | median | baseline (median) | ratio | goal | holds |", "|---|---|---|---|---|---|"]
    for row in rows:
        unit = row.get("unit", "")
        value = f"{_number(row.get('value'))} {unit}".strip() if row.get("value") is not None else "–"
        if row.get("baseline"):
            baseline_unit = row.get("baseline_unit", unit)
            baseline = f"{row['baseline']}: {_number(row.get('baseline_value'))} {baseline_unit}".strip()
        else:
            baseline = "–"
        r = ratio(row)
        holds = goal_holds(row)
        mark = "yes" if holds else "**no**" if holds is False else "–"
        lines.append(f"| {row['figure']} | {value} | {baseline} | {'–' if r is None else f'{r:.2f}'} | "
                     f"{row.get('goal', '')} | {mark} |")
    return "\n".join(lines)


def machine() -> str:
    """The machine and its load, for the record next to the table."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{platform.node()}: {model}, {len(os.sched_getaffinity(0))} cores usable, Python "
            f"{platform.python_version()}; load average {load}")


def _available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def main(argv: list[str] | None = None) -> int:
    """Run every present module and print the table; exit 1 only if a module failed (a goal not met is a row)."""
    parser = argparse.ArgumentParser(prog="make bench", description="Speed against same-run baselines.")
    parser.add_argument("--runs", type=int, default=3, help="repetitions of each figure and baseline (median)")
    parser.add_argument("--only", action="append", default=[],
                        help="run only this module (e.g. portal); may be repeated")
    present = [m for m in MODULES if _available(m)]
    modules = {m: importlib.import_module(m) for m in present}
    for module in modules.values():
        if hasattr(module, "add_arguments"):
            module.add_arguments(parser)
    args = parser.parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    print(f"make bench, {started:%Y-%m-%d %H:%M} UTC, median of {args.runs}", flush=True)
    print(f"before: {machine()}", flush=True)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for name in MODULES:
        short = name.rsplit(".", 1)[1]
        if args.only and short not in args.only:
            continue
        if name not in modules:
            notes.append(f"{name} is absent: its figures are skipped")
            continue
        clock = time.monotonic()
        print(f"{name} ...", flush=True)
        try:
            rows.extend(modules[name].run(args))
        except Exception as exc:  # one failing module does not hide the others' figures
            traceback.print_exc()
            rows.append({"figure": f"{short}: failed ({type(exc).__name__})", "value": None, "unit": "",
                         "baseline": None, "baseline_value": None, "goal": "runs", "holds": False})
        print(f"{name}: {time.monotonic() - clock:.0f} s", flush=True)
    print(f"after: {machine()}\n")
    print(table(rows))
    for note in notes:
        print(f"\n{note}")
    return 1 if any(row.get("value") is None for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
