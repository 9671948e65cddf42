"""What the application log may hold of a failed statement: the SQL and the error, never the values it was given."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

# A name and birth date as a clerk would search them; unregistered with the leak scan, so only this test looks.
SEARCHED = "宮沢　賢治朗"
BORN = "1990-08-27"


def _log_of_a_failed_statement(app: Any, caplog: Any, wrap: Callable[[Any], Any] = lambda view: view) -> str:
    """Serve a view whose statement fails with the searched values bound, request it, and return the log."""
    database = app.extensions["database"]

    def failing() -> str:
        # Fails at run time with an error PostgreSQL words without the values ("division by zero").
        database.session.execute(text("SELECT 1 / (length(:name) - length(:name)) WHERE :born <> ''"),
                                 {"name": SEARCHED, "born": BORN})
        return "unreachable"

    app.add_url_rule("/failing-statement", "failing_statement", wrap(failing))
    caplog.set_level(logging.INFO)
    response = app.test_client().get("/failing-statement")
    assert response.status_code == 500 and SEARCHED not in response.text
    assert "division by zero" in caplog.text  # the error itself is logged, SQL and all
    return str(caplog.text)


def test_a_statement_that_fails_in_a_back_office_request_is_logged_without_its_parameter_values(bo_app, caplog):
    from backoffice.security import access

    logged = _log_of_a_failed_statement(bo_app, caplog, access(public=True, terminal=False))
    assert SEARCHED not in logged and BORN not in logged


def test_a_statement_that_fails_in_a_portal_request_is_logged_without_its_parameter_values(portal_app, caplog):
    logged = _log_of_a_failed_statement(portal_app, caplog)
    assert SEARCHED not in logged and BORN not in logged
