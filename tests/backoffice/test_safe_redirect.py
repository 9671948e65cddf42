"""The screen unlock sends the clerk back only to a path of this site (R15): never to another host."""

from __future__ import annotations

import pytest

from tests.conftest import csrf_from

ATTACKS = ["/\t/evil.example/x", "//evil.example", "/\\evil.example", "https://evil.example", "/%09/evil.example",
           "/%2F/evil.example", "/%5Cevil.example", " //evil.example", "/\n/evil.example", "javascript:alert(1)",
           "\\\\evil.example"]


def _unlock(backoffice, client, target):
    return client.post("/screen/unlock", data={"csrf_token": csrf_from(client, "/"), "totp": backoffice.totp("clerk1"),
                                        "next": target})


@pytest.mark.parametrize("target", ATTACKS)
def test_an_unlock_with_a_foreign_target_ends_on_the_start_page(backoffice, target):
    client = backoffice.client_for("clerk1", "clerk")
    response = _unlock(backoffice, client, target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/", f"next={target!r} sent the browser to {response.headers['Location']!r}"


def test_an_unlock_returns_to_the_page_of_this_site_it_was_locked_on(backoffice):
    client = backoffice.client_for("clerk1", "clerk")
    response = _unlock(backoffice, client, "/ledger/search?lang=ja")
    assert response.headers["Location"] == "/ledger/search?lang=ja"
    assert client.get("/").status_code == 200  # still signed in


@pytest.mark.parametrize("target", ["/", "/cases/12", "/ledger/search?page=2"])
def test_same_site_paths_are_accepted(target):
    from core.redirects import safe_path

    assert safe_path(target, default="/home") == target


@pytest.mark.parametrize("target", [*ATTACKS, "", None, "ledger/search", "/a\u3000b", "/a\x7fb", "/ok#\\x"])
def test_anything_else_gives_the_default(target):
    from core.redirects import safe_path

    assert safe_path(target, default="/home") == "/home"
