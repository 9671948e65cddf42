"""The back office speaks Japanese first, with complete English; errors in the page's language."""

from __future__ import annotations

from pathlib import Path

from babel.messages.pofile import read_po
from bs4 import BeautifulSoup

from tests.conftest import csrf_from

ROOT = Path(__file__).resolve().parent.parent.parent


def test_every_message_has_a_japanese_translation():
    with open(ROOT / "translations/ja/LC_MESSAGES/messages.po", "rb") as fh:
        catalog = read_po(fh)
    untranslated = [m.id for m in catalog if m.id and not m.string]
    assert untranslated == []


def test_pages_are_japanese_by_default_and_english_on_request(backoffice):
    client = backoffice.enrolled_client()
    ja = BeautifulSoup(client.get("/sign-in").text, "html.parser")
    assert ja.html["lang"] == "ja" and ja.select_one("h1").text == "サインイン"
    en = BeautifulSoup(client.get("/sign-in?lang=en").text, "html.parser")
    assert en.html["lang"] == "en" and en.select_one("h1").text == "Sign in"
    # The choice sticks for the next page.
    assert BeautifulSoup(client.get("/sign-in").text, "html.parser").select_one("h1").text == "Sign in"


def test_a_search_error_names_the_field_in_the_pages_language(backoffice):
    client = backoffice.client_for("clerk1", "clerk")
    ja = client.post("/ledger/search", data={"csrf_token": csrf_from(client, "/ledger/search"), "name": "佐藤"})
    summary = BeautifulSoup(ja.text, "html.parser").select_one(".error-summary").text
    assert "氏名・住所・生年月日のうち2つ以上" in summary
    client.get("/?lang=en")
    en = client.post("/ledger/search", data={"csrf_token": csrf_from(client, "/ledger/search"),
                                             "juminhyo_code": "12"})
    link = BeautifulSoup(en.text, "html.parser").select_one(".error-summary a[href='#juminhyo_code']")
    assert link is not None and "Resident record code: The resident record code is 11 digits" in link.text


def test_form_fields_carry_no_empty_attributes(backoffice):
    client = backoffice.client_for("clerk1", "clerk")
    page = BeautifulSoup(client.get("/ledger/search").text, "html.parser")
    for field in page.select("input, select"):
        assert field.get("type") != "None" and field.get("autocomplete") != "None", field
    assert page.select_one("#birth_date")["type"] == "date"


def test_the_english_link_stays_in_the_back_office_where_it_is_mounted_and_the_header_names_the_city(backoffice):
    client = backoffice.enrolled_client()
    # Served under /backoffice beside the portal (`make run`): the link must not lead to the portal's /.
    page = BeautifulSoup(client.get("/sign-in", base_url="http://localhost/backoffice").text, "html.parser")
    assert page.select_one("nav.lang a[hreflang='en']")["href"] == "/backoffice/sign-in?lang=en"
    assert "花巻市（032051）" in page.select_one(".service-name").text
