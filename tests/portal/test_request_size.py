"""Bodies over MAX_CONTENT_LENGTH are refused with 413 before anything reads them; large legitimate ones pass."""

from __future__ import annotations

import json

from bridge.peers.jlis.cardclient import sign_challenge
from tests.portal.test_applications import Resident, _bearer, _move
from tests.portal_fixtures import PASSWORD

LIMIT = 1024 * 1024


def test_a_body_just_over_the_limit_gets_413_as_json_on_the_api(portal_app, cards):
    resident = Resident(portal_app, cards)
    client, headers = _bearer(portal_app, resident.card)
    body = json.dumps({"signed_application": "x" * LIMIT, "nonce": "n"})
    response = client.post("/api/v1/applications", headers=headers, data=body, content_type="application/json")
    assert response.status_code == 413, f"{response.status_code} {response.get_json(silent=True)}"
    assert response.json == {"error": "request_too_large", "max_bytes": LIMIT}


def test_a_twenty_megabyte_body_gets_413_even_before_sign_in(portal_app):
    client = portal_app.test_client()
    body = b"{" + b" " * (20 * LIMIT) + b"}"
    response = client.post("/api/v1/auth/token", data=body, content_type="application/json")
    assert response.status_code == 413 and response.json["error"] == "request_too_large"


def test_a_page_post_just_over_the_limit_gets_the_413_page(portal_app):
    client = portal_app.test_client()
    response = client.post("/auth/sign-out", data={"csrf_token": "x", "pad": "y" * LIMIT})
    assert response.status_code == 413
    assert "text/html" in response.content_type and "413" in response.text


def test_a_signed_application_padded_close_to_the_limit_still_passes(portal_app, cards):
    resident = Resident(portal_app, cards)
    client, headers = _bearer(portal_app, resident.card)
    challenge = client.post("/api/v1/applications/challenge", headers=headers, json={"application": _move()}).json
    jws = sign_challenge(resident.card, PASSWORD, challenge, _move())
    body = json.dumps({"signed_application": jws, "nonce": challenge["nonce"]})
    body += " " * (LIMIT - len(body.encode()) - 64)  # JSON allows trailing white space
    response = client.post("/api/v1/applications", headers=headers, data=body, content_type="application/json")
    assert response.status_code == 202, response.json


def test_a_chunked_body_without_content_length_is_cut_at_the_limit_with_413(portal_app):
    import io

    from werkzeug.test import EnvironBuilder, run_wsgi_app

    def send(size: int) -> tuple[str, bytes]:
        environ = EnvironBuilder(path="/api/v1/auth/challenge", method="POST",
                                 content_type="application/json").get_environ()
        environ.pop("CONTENT_LENGTH", None)  # Transfer-Encoding: chunked, as a server hands it on
        environ.update({"wsgi.input": io.BytesIO(b"{" + b" " * size + b"}"), "wsgi.input_terminated": True})
        body, status, _headers = run_wsgi_app(portal_app, environ)
        return status, b"".join(body)

    status, body = send(LIMIT + 10)
    assert status.startswith("413") and json.loads(body)["error"] == "request_too_large"
    status, _body = send(1000)
    assert status.startswith("200")
