"""The API against its own OpenAPI 3.1 document: schemathesis finds no server error and no schema mismatch."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bridge.peers.jlis.cardclient import build_auth_token, build_signed_application
from tests.portal_fixtures import PASSWORD, PIN

ORIGIN = "http://127.0.0.1:5000"


@pytest.fixture
def bearer(portal_app, cards):
    """A linked account's bearer token, made with the test's own card, as a real app would."""
    card = cards.issue()
    client = portal_app.test_client()
    nonce = client.post("/api/v1/auth/challenge").json["nonce"]
    token = build_auth_token(card, PIN, origin=ORIGIN, nonce=nonce)
    access = client.post("/api/v1/auth/token", json={"authToken": token, "nonce": nonce}).json["access_token"]
    headers = {"Authorization": f"Bearer {access}"}
    challenge = client.post("/api/v1/identity/challenge", headers=headers).json
    jws = build_signed_application(card, PASSWORD, aud=challenge["aud"], nonce=challenge["nonce"],
                                   application=challenge["application"])
    assert client.post("/api/v1/identity", headers=headers, json={"signedApplication": jws,
                                                                  "nonce": challenge["nonce"]}).status_code == 200
    portal_app.config["CARD_CHALLENGE_LIMIT"] = 10_000  # the fuzzer asks for many challenges
    return headers


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_the_api_matches_its_document_and_never_fails_with_a_server_error(portal_app, bearer):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", portal_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case):
            case.call_and_validate(headers=bearer, checks=CHECKS)

        fuzz()


def test_the_document_describes_every_api_endpoint(portal_app):
    document = portal_app.test_client().get("/api/v1/openapi.json").json
    assert document["openapi"].startswith("3.1")
    described = {path for path in document["paths"]}
    served = {str(rule.rule).replace("<receipt>", "{receipt}") for rule in portal_app.url_map.iter_rules()
              if str(rule.rule).startswith("/api/v1/") and not str(rule.rule).endswith("openapi.json")}
    assert served <= described, served - described
    assert {"MoveApplication", "CertificateApplication", "Withdrawal"} <= set(document["components"]["schemas"])
