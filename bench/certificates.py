"""Certificate PDFs per second in one process: the back office's renderer drawing real certificates of seeded residents.

Set up outside the clock: a scratch PostgreSQL database migrated as production does, a ledger seeded
with ``flask seed`` (the same command as ``bench/seed.sh`` and ``bench/search.py``), and, for the
first ``--pdf-count`` households, the printed content exactly as issuing builds it
(``backoffice.services.certificates._content``: ``person_rows`` of each person, the 和暦 dates, the
My Number decrypted, a fresh verification code and its URL). Alternately a 住民票の写し of the whole
household with every optional item (世帯主・続柄, 本籍・筆頭者, 住民票コード, 個人番号) and a
住民票記載事項証明書 of the head of household alone with 世帯主・続柄.

Timed: ``backoffice.services.certificate_pdf.certificate_pdf(content)`` for each, one after another in this
one process, stopping after ``--pdf-seconds`` (30 s) if not done: what a back-office worker does per
print or download, after its transaction has read and decrypted the issued content: the font
embedded (subset), the QR code drawn, the PDF written. Three untimed PDFs first. Reported: PDFs per
second of wall-clock time (the goal: ≥ 20 per core, and one process uses at most one), and PDFs per
CPU-second of the process, which a busy machine disturbs less.

``python -m bench.certificates --pdf-count 50`` prints the rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.baselines import median, module_main, scratch_database

GOAL = 20.0
ALL_ITEMS = ("householder", "honseki", "juminhyoCode", "myNumber")


def _contents(app: Any, count: int) -> list[dict[str, Any]]:
    """The printed content of ``count`` certificates of the seeded ledger's first households, as issuing builds it."""
    from sqlalchemy import select

    from backoffice.extensions import db
    from backoffice.models import RecordStatus, Resident
    from backoffice.services.certificates import CertificateRequest, Eligibility, _content
    from core import certcode

    code = app.config["MUNICIPALITY_CODE"]
    with app.app_context():
        people = db.session.execute(select(Resident).where(Resident.status == RecordStatus.CURRENT)
                                    .order_by(Resident.household_id, Resident.is_householder.desc(),
                                              Resident.birth_date, Resident.id)).scalars()
        households: list[list[Resident]] = []
        for person in people:
            if households and households[-1][0].household_id == person.household_id:
                households[-1].append(person)
            elif len(households) == count:
                break
            else:
                households.append([person])
        contents = []
        for n, members in enumerate(households):
            if n % 2 == 0:
                request = CertificateRequest(kind="juminhyo", persons="household", copies=1, purpose="bench",
                                             items=dict.fromkeys(ALL_ITEMS, True))
                eligibility = Eligibility(request, residents=members, items=ALL_ITEMS)
            else:
                request = CertificateRequest(kind="kisai_jiko", persons="self", copies=1, purpose="bench",
                                             items={k: k == "householder" for k in ALL_ITEMS})
                eligibility = Eligibility(request, residents=members[:1], items=("householder",))
            contents.append(_content(eligibility, issue_number=f"{code}-{dt.date.today().year}-{n + 1:07d}",
                                     code=certcode.new_code(), issued_on=dt.date.today(), show_my_number=True))
        db.session.rollback()
    if len(contents) < count:
        raise RuntimeError(f"the seeded ledger has {len(contents)} households, {count} asked for")
    return contents


def render_rate(contents: list[dict[str, Any]], budget: float = 3600) -> tuple[float, float, int]:
    """(PDFs per wall-clock second, PDFs per CPU-second of this process, bytes of the largest PDF).

    Renders ``contents`` in order, stopping early once ``budget`` seconds have passed (at least one PDF).
    """
    from backoffice.services.certificate_pdf import certificate_pdf

    wall, cpu = time.perf_counter(), time.process_time()
    largest = done = 0
    for content in contents:
        largest = max(largest, len(certificate_pdf(content)))
        done += 1
        if time.perf_counter() - wall > budget:
            break
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return done / wall, done / cpu if cpu > 0 else 0.0, largest


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Median PDFs/s (wall clock and CPU) over ``args.runs`` repetitions of ``--pdf-count`` PDFs."""
    from backoffice import create_app
    from tests.conftest import SECRETS, migrate, write_checkpoint_keys

    count = max(1, min(int(getattr(args, "pdf_count", 100)), 2000))
    residents = max(int(getattr(args, "pdf_residents", 2000)), count * 2)
    walls: list[float] = []
    cpus: list[float] = []
    with tempfile.TemporaryDirectory(prefix="juki-bench-pdf-") as tmp, scratch_database("bench_pdf") as url:
        directory = Path(tmp)
        write_checkpoint_keys(directory / "checkpoint-key.pem")
        config = {"APP_ENV": "test", "BACKOFFICE_DATABASE_URL": url, **SECRETS, "INSTANCE_PATH": str(directory),
                  "AUDIT_CHECKPOINT_KEY_PATH": str(directory / "checkpoint-key.pem"),
                  "AUDIT_CHECKPOINT_PATH": str(directory / "checkpoints.jsonl")}
        migrate(create_app, config)
        app = create_app(config)
        try:
            result = app.test_cli_runner().invoke(args=["seed", "--residents", str(residents), "--seed", "1"])
            if result.exit_code != 0:
                raise RuntimeError(f"flask seed failed: {result.output}")
            contents = _contents(app, count)
            render_rate(contents[:3])  # the font file read and parsed once by the OS cache and fpdf2's imports
            for _ in range(int(getattr(args, "runs", 3))):
                wall, cpu, largest = render_rate(contents, float(getattr(args, "pdf_seconds", 30.0)))
                walls.append(wall)
                cpus.append(cpu)
        finally:
            app.extensions["engine"].dispose()
    return [{"figure": "certificate PDFs/s, one process (wall clock), real certificates of seeded residents",
             "value": median(walls),
             "unit": "PDFs/s", "baseline": None, "baseline_value": None, "goal": f"value >= {GOAL:g}",
             "values": walls},
            {"figure": f"certificate PDFs per CPU-second of that process (largest PDF {largest:,} bytes)",
             "value": median(cpus), "unit": "PDFs/s", "baseline": None, "baseline_value": None,
             "goal": "informative (the goal is on the wall clock)", "values": cpus}]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This module's options under ``make bench``."""
    group = parser.add_argument_group("certificates")
    group.add_argument("--pdf-count", type=int, default=100, help="certificates rendered per repetition (at most 2000)")
    group.add_argument("--pdf-seconds", type=float, default=30.0,
                       help="most seconds per repetition (fewer PDFs if they take longer)")
    group.add_argument("--pdf-residents", type=int, default=2000, help="residents seeded for the certificates")


if __name__ == "__main__":
    module_main(sys.modules[__name__], sys.argv[1:], runs=3)
