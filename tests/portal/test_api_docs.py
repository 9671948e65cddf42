"""docs/api.md as an app developer reads it: its tables are the OpenAPI document's, its examples are valid."""

from __future__ import annotations

import json
import re

from scripts import api_docs


def test_the_endpoint_and_schema_tables_of_docs_api_md_are_those_of_the_openapi_document(monkeypatch):
    page = api_docs.PAGE.read_text(encoding="utf-8")
    assert api_docs.render(page) == page, "docs/api.md drifted: run python -m scripts.api_docs"
    for path in ("/api/v1/applications", "/api/v1/applications/{receipt}/withdraw", "/api/v1/identity"):
        assert f"{path}` |" in page
    assert "`/movers/0/birthDate`" in page and "`signed_application` (deprecated)" in page
    # A change to the document shows as drift.
    from portal.api import openapi

    original = openapi.document

    def changed(server_url):
        document = original(server_url)
        document["paths"]["/api/v1/me"]["get"]["summary"] = "Something else"
        return document

    monkeypatch.setattr(openapi, "document", changed)
    assert api_docs.render(page) != page
    assert api_docs.main(["--check"]) == 1


def test_the_documented_move_and_certificate_request_are_valid_applications():
    from portal.services.applications import _schema_errors

    page = api_docs.PAGE.read_text(encoding="utf-8")
    for kind in ("move", "certificate", "correction_request"):
        example = re.search(rf"<!-- example:{kind} -->\n```json\n(.*?)\n```", page, re.DOTALL)
        assert example is not None, kind
        assert _schema_errors(kind, json.loads(example.group(1))) == [], kind
