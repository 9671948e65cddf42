"""The back office refuses request bodies over MAX_CONTENT_LENGTH with 413; a large legitimate form still passes."""

from __future__ import annotations

from tests.conftest import csrf_from

LIMIT = 1024 * 1024


def test_a_form_post_just_over_the_limit_gets_the_413_page(backoffice):
    client = backoffice.enrolled_client()
    token = csrf_from(client, "/sign-in")
    response = client.post("/sign-in", data={"login_id": "x", "password": "y", "totp": "000000",
                                             "csrf_token": token, "pad": "z" * LIMIT})
    assert response.status_code == 413, response.status_code
    assert "text/html" in response.content_type and "413" in response.text


def test_a_json_post_just_over_the_limit_gets_413_as_json(backoffice):
    client = backoffice.client_for("clerk2", "clerk")
    response = client.post("/counter/1/card", data=b"{" + b" " * LIMIT + b"}", content_type="application/json")
    assert response.status_code == 413 and response.json["error"] == "request_too_large"


def test_a_sign_in_form_padded_close_to_the_limit_still_signs_in(backoffice):
    backoffice.add_staff("clerk1", "clerk")
    client = backoffice.enrolled_client()
    token = csrf_from(client, "/sign-in")
    response = client.post("/sign-in", data={"login_id": "clerk1", "password": "correct horse battery",
                                             "totp": backoffice.totp("clerk1"), "csrf_token": token,
                                             "pad": "z" * (LIMIT - 4096)})
    assert response.status_code == 302 and response.location.endswith("/")
