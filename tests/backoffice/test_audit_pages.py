"""The security officer's pages (R6, R14): browse, filter, export (escaped, logged), verify."""

from __future__ import annotations

import csv
import io

from bs4 import BeautifulSoup
from sqlalchemy import select

from backoffice.models import AuditLog
from tests.conftest import csrf_from


def _actions(bo_app):
    from backoffice.extensions import db

    with bo_app.app_context():
        return [(r.actor, r.action, r.outcome) for r in db.session.execute(
            select(AuditLog).order_by(AuditLog.seq)).scalars()]


def test_the_auditor_browses_and_filters_the_log(backoffice):
    backoffice.add_staff("clerk1", "clerk")
    client = backoffice.enrolled_client()
    backoffice.sign_in(client, "clerk1", password="wrong password here")
    auditor = backoffice.client_for("auditor1", "auditor")
    page = BeautifulSoup(auditor.get("/audit/?outcome=failure").text, "html.parser")
    rows = page.select("table.log tbody tr")
    assert len(rows) == 1 and "staff.sign_in" in rows[0].text and "clerk1" in rows[0].text
    assert ("auditor1", "audit.browse", "success") in _actions(backoffice.app)


def test_the_csv_export_escapes_formulas_and_is_itself_logged(backoffice):
    backoffice.add_staff("clerk1", "clerk")
    client = backoffice.enrolled_client()
    # A login ID typed as a formula lands in the log as the actor of a failed sign-in.
    backoffice.sign_in(client, "=HYPERLINK(\"http://x\")", totp="123456")
    auditor = backoffice.client_for("auditor1", "auditor")
    response = auditor.post("/audit/export?action=staff.sign_in", data={"csrf_token": csrf_from(auditor, "/audit/")})
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    actors = [r[2] for r in rows[1:]]
    assert "'=HYPERLINK(\"http://x\")" in actors
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    assert ("auditor1", "audit.export", "success") in _actions(backoffice.app)


def test_the_auditor_can_verify_the_chain_from_the_page(backoffice):
    auditor = backoffice.client_for("auditor1", "auditor")
    response = auditor.post("/audit/verify", data={"csrf_token": csrf_from(auditor, "/audit/")})
    result = BeautifulSoup(response.text, "html.parser").select_one("#verify-result")
    assert result is not None and "notice-info" in result["class"]
    # The last row a signed checkpoint proves: every row before the check (each commit is checkpointed).
    rows_before = len(_actions(backoffice.app)) - 1  # the check itself is the last row
    checkpoint = result.select_one("#verify-checkpoint").get_text(" ", strip=True)
    assert f"{rows_before} 行目" in checkpoint and "日本時間" in checkpoint, checkpoint


def test_the_page_shows_a_cut_tail_as_broken(backoffice):
    from sqlalchemy import text

    auditor = backoffice.client_for("auditor1", "auditor")
    token = csrf_from(auditor, "/audit/")
    engine = backoffice.app.extensions["engine"]
    with engine.begin() as conn:  # as the owner of the tables, around the append-only trigger
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        last = conn.execute(text("SELECT max(seq) FROM audit_log")).scalar_one()
        kept = conn.execute(text("SELECT row_hash FROM audit_log WHERE seq = :s"), {"s": last - 2}).scalar_one()
        conn.execute(text("DELETE FROM audit_log WHERE seq > :s"), {"s": last - 2})
        conn.execute(text("UPDATE audit_head SET seq = :s, head_hash = :h"), {"s": last - 2, "h": kept})
    response = auditor.post("/audit/verify", data={"csrf_token": token})
    result = BeautifulSoup(response.text, "html.parser").select_one("#verify-result")
    assert result is not None and "notice-error" in result["class"]
    assert f"rows after {last - 2} were cut off" in result.get_text()


def test_each_audited_action_writes_one_row(backoffice):
    from backoffice.extensions import db
    from tests.factories import make_resident

    with backoffice.app.app_context():
        rid = make_resident(db.session, backoffice.app.config).id
        db.session.commit()
    backoffice.add_staff("clerk1", "clerk", "number_use")
    client = backoffice.enrolled_client()
    backoffice.sign_in(client, "clerk1", password="wrong password here")
    backoffice.sign_in(client, "clerk1")
    client.post("/ledger/search", data={"csrf_token": csrf_from(client, "/ledger/search"), "name": "花巻",
                                        "birth_date": "1980-04-01"})
    client.post("/ledger/search", data={"csrf_token": csrf_from(client, "/ledger/search"), "name": "花巻",
                                        "birth_date": "1980-04-01", "export": "csv"})
    client.get(f"/ledger/residents/{rid}")
    client.post(f"/ledger/residents/{rid}/my-number", data={"csrf_token": csrf_from(client, "/")})
    client.post("/sign-out", data={"csrf_token": csrf_from(client, "/")})
    clerk_rows = [(a, o) for actor, a, o in _actions(backoffice.app) if actor == "clerk1"]
    assert clerk_rows == [
        ("staff.sign_in", "failure"),
        ("staff.sign_in", "success"),
        ("ledger.search", "success"),
        ("ledger.export", "success"),
        ("ledger.view", "success"),
        ("ledger.view", "success"),
        ("ledger.unmask", "success"),
        ("staff.sign_out", "success"),
    ]


def test_every_row_names_the_terminal_request_and_client_address(backoffice):
    client = backoffice.client_for("clerk1", "clerk")
    client.get("/ledger/search")
    from backoffice.extensions import db

    with backoffice.app.app_context():
        row = db.session.execute(select(AuditLog).where(AuditLog.action == "staff.sign_in")).scalar_one()
    assert row.terminal_id is not None and row.request_id and row.client_addr == "127.0.0.1"


def test_the_older_rows_link_keeps_the_filter(backoffice):
    # The officer filters the log to one person; the next page of rows must still be that person's only.
    from backoffice.extensions import db
    from backoffice.services import audit

    with backoffice.app.test_request_context("/"):
        for n in range(120):  # 60 of the watched person's: more than one page of 50
            audit.record("test.action", actor="watched" if n % 2 else "other", detail={"n": n})
        db.session.commit()
    auditor = backoffice.client_for("auditor1", "auditor")
    page = BeautifulSoup(auditor.get("/audit/?actor=watched").text, "html.parser")
    older = next(a for a in page.select("a") if "page=2" in a.get("href", ""))
    from urllib.parse import urljoin

    rows = BeautifulSoup(auditor.get(urljoin("/audit/?actor=watched", older["href"])).text,
                         "html.parser").select("table.log tbody tr")
    assert rows and all("watched" in row.text for row in rows)
