"""The language switch of every portal page (R19): the same page in the other language, and never another site."""

from __future__ import annotations

import re

import pytest
from bs4 import BeautifulSoup

# A same-site relative path: one slash, then neither a slash nor a backslash; no whitespace or backslash anywhere
# (browsers drop a tab or newline inside a URL and read a backslash as a slash: "/\t/evil.example" is "//evil.example").
SAME_SITE = re.compile(r"/[^/\\\s][^\\\s]*")


def _language_links(page) -> list[str]:
    return [a["href"] for a in BeautifulSoup(page.text, "html.parser").select("nav.lang a")]


@pytest.mark.parametrize("path", ["/%5Cevil.example/x", "/%09/evil.example/x", "//evil.example/x",
                                  "/%2F/evil.example/x", "/%0A/evil.example/x"])
def test_the_language_link_of_a_not_found_page_stays_on_this_site(portal_app, path):
    page = portal_app.test_client().get(path)
    links = _language_links(page)
    assert page.status_code == 404 and links, links
    for href in links:
        assert SAME_SITE.fullmatch(href), href


def test_the_language_link_leads_to_the_same_page_and_query_in_the_other_language(portal_app):
    client = portal_app.test_client()
    assert _language_links(client.get("/services?q=move-out")) == ["/services?q=move-out&lang=en"]
    assert _language_links(client.get("/services?q=move-out&lang=en")) == ["/services?q=move-out&lang=ja"]
