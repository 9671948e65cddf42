"""Service search (F1): the municipality registry, the catalog data file, the search pages and the search API."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from bs4 import BeautifulSoup

from core.addressmaster import load_municipalities
from core.checkdigits import is_valid_local_government_code
from portal.api.procedures import OPENAPI_PATHS
from portal.services import catalog, municipalities
from portal.services.catalog import CatalogError

HIRAGANA = re.compile(r"[\u3041-\u3096]")
PORTAL_FORMS = {"/apply/move", "/apply/certificate"}


def _page(client: Any, url: str) -> tuple[int, BeautifulSoup]:
    response = client.get(url)
    return response.status_code, BeautifulSoup(response.text, "html.parser")


def _result_titles(page: BeautifulSoup) -> list[str]:
    return [a.text.strip() for a in page.select("#results li h3 a")]


def _api(client: Any, **params: str) -> Any:
    return client.get("/api/v1/services", query_string=params)


# --- municipality registry ---------------------------------------------------------------------------------------


def test_every_municipality_of_the_registry_has_a_valid_check_digit(portal_app):
    with portal_app.app_context():
        listed = municipalities.all_municipalities()
    assert len(listed) == 33  # every municipality of Iwate
    assert all(is_valid_local_government_code(m.code) for m in listed)
    assert [m.code for m in listed] == [m.code for m in load_municipalities()]


def test_hanamaki_and_kitakami_are_connected_with_their_intake_queues_and_the_others_are_not(portal_app):
    with portal_app.app_context():
        hanamaki, kitakami, morioka = (municipalities.get(code) for code in ("032051", "032069", "032018"))
        assert (hanamaki.name, hanamaki.prefecture, hanamaki.kana) == ("花巻市", "岩手県", "ハナマキシ")
        assert hanamaki.connected and hanamaki.intake_queue == "intake:032051"
        assert kitakami.connected and kitakami.intake_queue == "intake:032069"
        assert not morioka.connected and morioka.intake_queue is None
        assert municipalities.is_connected("032069") and not municipalities.is_connected("032018")
        assert municipalities.get("131016") is None  # Chiyoda, Tokyo: not in the registry
        assert not municipalities.is_connected("131016")


def test_the_connected_municipalities_come_from_configuration(portal_app):
    portal_app.config["CONNECTED_MUNICIPALITIES"] = "032018, 032051"
    with portal_app.app_context():
        assert [m.code for m in municipalities.all_municipalities() if m.connected] == ["032018", "032051"]
        assert not municipalities.is_connected("032069")


def test_a_connected_municipality_the_registry_does_not_list_stops_with_a_clear_error(portal_app):
    portal_app.config["CONNECTED_MUNICIPALITIES"] = ("032051", "131016")
    with portal_app.app_context(), pytest.raises(municipalities.MunicipalityRegistryError, match="131016"):
        municipalities.is_connected("032051")


@pytest.mark.parametrize("prefix", ["花巻", "はなまき", "ハナマキ", "ﾊﾅﾏｷ", "岩手県花巻", "  はなまき "])
def test_municipality_search_matches_a_folded_kana_or_kanji_prefix(portal_app, prefix):
    with portal_app.app_context():
        assert [m.code for m in municipalities.search(prefix)] == ["032051"]


def test_municipality_search_lists_every_match_and_an_empty_prefix_lists_all(portal_app):
    with portal_app.app_context():
        assert [m.name for m in municipalities.search("いちの")] == ["一関市", "一戸町"]
        assert municipalities.search("巻") == []  # a prefix, not a substring: 花巻 and 葛巻 do not start with it
        assert len(municipalities.search("")) == 33


# --- the catalog data file ---------------------------------------------------------------------------------------


def test_every_entry_of_the_catalog_data_file_is_valid():
    raw = json.loads(catalog.CATALOG_PATH.read_text(encoding="utf-8"))["services"]
    loaded = catalog.load_catalog(catalog.CATALOG_PATH)
    assert [s.id for s in loaded.services] == [entry["id"] for entry in raw]
    for service in loaded.services:
        assert service.title.ja and service.title.en and service.summary.ja and service.summary.en, service.id
        assert service.legal_basis.ja and service.legal_basis.en, service.id
        assert any(HIRAGANA.search(k) for k in service.keywords), f"{service.id} has no hiragana reading"
        assert service.form in PORTAL_FORMS if service.online else service.form is None, service.id
        assert not (service.sensitive and service.online), service.id


def test_the_catalog_holds_the_procedures_a_mover_needs():
    titles = {s.title.ja for s in catalog.all_services()}
    for title in ("転出届", "転入届", "転居届", "世帯変更届", "住民票の写しの請求", "住民票記載事項証明書の請求",
                  "印鑑登録", "国民健康保険の加入・脱退", "国民年金の住所変更", "児童手当の手続", "介護保険の住所変更",
                  "後期高齢者医療の住所変更", "学校の転校手続", "マイナンバーカードの住所変更（券面記載事項の変更）",
                  "出生届", "婚姻届", "住民票の写し等の交付制限（DV等支援措置）", "水道の使用開始・中止",
                  "犬の登録事項変更"):
        assert title in titles
    online = {s.title.ja: s.form for s in catalog.all_services() if s.online}
    assert online["転出届"] == "/apply/move"
    assert online["転入予約"] == "/apply/move" and online["転居予約"] == "/apply/move"
    assert online["住民票の写しの請求"] == online["住民票記載事項証明書の請求"] == "/apply/certificate"
    assert "転入届" not in online and "転居届" not in online  # completed at the counter, in person
    assert {s.fee_yen for s in catalog.all_services() if s.form == "/apply/certificate"} == {300}


def test_sensitive_procedures_are_never_offered_online(portal_app):
    sensitive = [s for s in catalog.all_services() if s.sensitive]
    assert [s.id for s in sensitive] == ["dv-support-measures"]
    assert not any(s.online or s.form for s in sensitive)
    status, page = _page(portal_app.test_client(), "/services/dv-support-measures")
    assert status == 200
    assert page.select_one("#start") is None and page.select_one("#counter-only") is not None
    assert _api(portal_app.test_client(), q="支援措置").json["services"][0]["online"] is False


def _entry(**changes: Any) -> dict[str, Any]:
    entry = {
        "id": "test-procedure", "title": {"ja": "試験", "en": "Test"}, "summary": {"ja": "概要", "en": "Summary"},
        "category": "resident_register", "life_events": ["moving"], "who_may_apply": {"ja": "本人", "en": "You"},
        "what_to_bring": {"ja": "カード", "en": "Card"}, "fee_yen": 0, "legal_basis": {"ja": "法", "en": "Act"},
        "online": False, "form": None, "sensitive": False, "keywords": ["しけん"],
    }
    entry.update(changes)
    return {key: value for key, value in entry.items() if value is not ...}


@pytest.mark.parametrize(("entry", "field", "problem"), [
    (_entry(fee_yen="300"), "fee_yen", "whole number"),
    (_entry(fee_yen=True), "fee_yen", "whole number"),
    (_entry(fee_yen=-1), "fee_yen", "whole number"),
    (_entry(category="garbage"), "category", "must be one of"),
    (_entry(life_events=["moving", "holiday"]), "life_events", "holiday"),
    (_entry(title={"ja": "試験"}), "title", '"ja" and "en"'),
    (_entry(summary={"ja": "概要", "en": " "}), "summary", "non-empty 'en'"),
    (_entry(online="yes"), "online", "true or false"),
    (_entry(online=True, form=None), "form", "must name the online form"),
    (_entry(online=False, form="/apply/move"), "form", "must be null"),
    (_entry(online=True, form="https://example.com/apply"), "form", "path on the portal"),
    (_entry(sensitive=True, online=True, form="/apply/move"), "online", "sensitive"),
    (_entry(keywords="てんしゅつ"), "keywords", "list of non-empty texts"),
    (_entry(id="Move Out"), "id", "slug"),
    (_entry(legal_basis=...), "legal_basis", "is missing"),
    (_entry(onlin=True), "onlin", "not a catalog field"),
])
def test_a_malformed_catalog_entry_is_refused_naming_the_entry_and_the_field(tmp_path, entry, field, problem):
    path = tmp_path / "services.json"
    path.write_text(json.dumps({"services": [_entry(id="good-one"), entry]}, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(CatalogError) as raised:
        catalog.load_catalog(path)
    message = str(raised.value)
    assert "services[1]" in message and f"field '{field}'" in message and problem in message


@pytest.mark.parametrize(("text", "problem"), [
    ('{"services": [', "not valid JSON at line 1"),
    ('{"services": []}', "lists no services"),
    ('[]', 'one key, "services"'),
    ('{"services": [{"id": "a", "id": "b"}]}', "'id' appears twice"),
])
def test_a_malformed_catalog_file_is_refused_with_a_clear_error(tmp_path, text, problem):
    path = tmp_path / "services.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError, match=re.escape(problem)):
        catalog.load_catalog(path)


def test_a_service_id_used_twice_is_refused(tmp_path):
    path = tmp_path / "services.json"
    path.write_text(json.dumps({"services": [_entry(), _entry()]}), encoding="utf-8")
    with pytest.raises(CatalogError, match=r"services\[1\]: field 'id' 'test-procedure' is used twice"):
        catalog.load_catalog(path)


def test_a_missing_catalog_file_is_refused_with_its_path(tmp_path: Path):
    with pytest.raises(CatalogError, match="cannot read the service catalog"):
        catalog.load_catalog(tmp_path / "nothing.json")


def test_categories_and_life_events_have_labels_in_both_languages():
    for label in (*catalog.categories(), *catalog.life_events()):
        assert label.label.ja and label.label.en
    assert catalog.life_event("moving").label.ja == "引越し"
    assert {s.category for s in catalog.all_services()} <= {c.code for c in catalog.categories()}


# --- search ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["てんしゅつ", "テンシュツ", "ﾃﾝｼｭﾂ", "転出", "転出届", "てんしゅつ　"])
def test_the_move_out_notification_is_found_in_hiragana_katakana_half_width_and_kanji_on_the_page(portal_app, query):
    status, page = _page(portal_app.test_client(), f"/services?q={query}")
    assert status == 200
    assert _result_titles(page)[0] == "転出届"
    first = page.select_one("#results li")
    assert first.select_one("a")["href"] == "/services/move-out"
    assert first.select_one(".tag") is not None  # online here
    assert page.select_one("#results-heading").text.strip().startswith(str(len(_result_titles(page))))


@pytest.mark.parametrize("query", ["てんしゅつ", "テンシュツ", "ﾃﾝｼｭﾂ", "転出"])
def test_the_move_out_notification_is_found_in_hiragana_katakana_half_width_and_kanji_by_the_api(portal_app, query):
    response = _api(portal_app.test_client(), q=query)
    assert response.status_code == 200
    body = response.json
    assert body["count"] == len(body["services"])
    assert body["services"][0] == {
        "id": "move-out", "title": "転出届", "summary": catalog.get("move-out").summary.ja,
        "category": "resident_register", "life_events": ["moving"], "online": True, "form": "/apply/move",
        "fee_yen": 0, "legal_basis": "住民基本台帳法第24条、第24条の2",
    }


def test_the_moving_life_event_lists_the_resident_register_procedures_and_the_related_ones(portal_app):
    status, page = _page(portal_app.test_client(), "/services?life_event=moving")
    assert status == 200
    titles = _result_titles(page)
    for title in ("転出届", "転入届", "転入予約", "転居届", "転居予約", "国民健康保険の加入・脱退",
                  "国民年金の住所変更", "児童手当の手続", "介護保険の住所変更", "学校の転校手続",
                  "マイナンバーカードの住所変更（券面記載事項の変更）", "印鑑登録"):
        assert title in titles
    assert "婚姻届" not in titles and "出生届" not in titles
    body = _api(portal_app.test_client(), life_event="moving").json
    assert {s["title"] for s in body["services"]} == set(titles)
    assert all("moving" in s["life_events"] for s in body["services"])


def test_the_word_hikkoshi_finds_the_moving_procedures_in_kanji_and_hiragana(portal_app):
    client = portal_app.test_client()
    moving = {s["id"] for s in _api(client, life_event="moving").json["services"]}
    for word in ("引越し", "ひっこし", "引っ越し"):
        found = {s["id"] for s in _api(client, q=word).json["services"]}
        assert moving <= found, word


def test_the_category_filter_lists_only_that_category(portal_app):
    client = portal_app.test_client()
    status, page = _page(client, "/services?category=health_insurance")
    assert status == 200
    assert set(_result_titles(page)) == {"国民健康保険の加入・脱退", "後期高齢者医療の住所変更"}
    assert page.select_one("#category option[selected]")["value"] == "health_insurance"
    body = _api(client, category="resident_register", q="ひっこし").json
    assert body["count"] > 0 and {s["category"] for s in body["services"]} == {"resident_register"}
    assert "児童手当の手続" not in {s["title"] for s in body["services"]}


def test_english_words_find_the_same_procedure_and_the_english_page_shows_english_titles(portal_app):
    client = portal_app.test_client()
    status, page = _page(client, "/services?q=move-out&lang=en")
    assert status == 200
    assert page.html["lang"] == "en"
    assert _result_titles(page)[0] == "Move-out notification"
    assert page.select_one("#results-heading").text.strip().endswith("found")
    assert not any(re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", title) for title in _result_titles(page))
    body = _api(client, q="move-out", lang="en").json
    assert body["services"][0]["id"] == "move-out"
    assert body["services"][0]["title"] == "Move-out notification"
    assert body["services"][0]["legal_basis"] == "Basic Resident Registration Act, Articles 24 and 24-2"
    # English words find the procedure from a Japanese page too, which shows it in Japanese.
    assert _api(client, q="move-out").json["services"][0]["title"] == "転出届"


def test_every_word_of_a_query_must_match(portal_app):
    client = portal_app.test_client()
    one_word = {s["id"] for s in _api(client, q="住民票").json["services"]}
    assert {"resident-record-copy", "resident-record-items-certificate"} <= one_word
    for query in ("住民票 写し", "住民票　うつし", "じゅうみんひょう ｳﾂｼ"):
        ids = [s["id"] for s in _api(client, q=query).json["services"]]
        assert ids[0] == "resident-record-copy", query
        assert "resident-record-items-certificate" not in ids, query
    assert _api(client, q="転出 結婚").json == {"services": [], "count": 0}


def test_a_search_that_finds_nothing_says_so_and_suggests_what_to_try(portal_app):
    status, page = _page(portal_app.test_client(), "/services?q=宇宙旅行")
    assert status == 200
    assert page.select_one("#results") is None
    assert page.select_one("#results-heading").text.strip().startswith("0")
    suggestions = page.select("#no-results ul li")
    assert len(suggestions) >= 3
    assert suggestions[-1].select_one("a")["href"] == "/services"


def test_the_search_page_with_nothing_asked_lists_every_procedure(portal_app):
    status, page = _page(portal_app.test_client(), "/services")
    assert status == 200
    assert len(page.select("h1")) == 1
    assert len(_result_titles(page)) == len(catalog.all_services())
    form = page.select_one("form[role=search]")
    assert form["method"] == "get" and form.select_one("input[name=csrf_token]") is None
    for name in ("q", "category", "life_event"):
        control = form.select_one(f"[name={name}]")
        assert form.select_one(f"label[for={control['id']}]") is not None, name


@pytest.mark.parametrize(("params", "field"), [
    ({"category": "garbage"}, "category"),
    ({"life_event": "holiday"}, "life_event"),
    ({"lang": "fr"}, "lang"),
    ({"q": "あ" * 101}, "q"),
    ({"q": "転出\x00"}, "q"),  # a control character: refused before any view, as the document says
])
def test_an_unknown_filter_gives_400_naming_the_field_on_the_api(portal_app, params, field):
    response = _api(portal_app.test_client(), **params)
    assert response.status_code == 400
    assert response.json == {"error": "invalid_parameter", "field": field}


@pytest.mark.parametrize(("query", "field"), [
    ("category=garbage", "category"),
    ("life_event=holiday", "life_event"),
    ("q=" + "あ" * 101, "q"),
])
def test_an_unknown_filter_on_the_page_shows_the_error_summary_and_no_server_error(portal_app, query, field):
    status, page = _page(portal_app.test_client(), f"/services?{query}&lang=en")
    assert status == 400
    assert page.select_one(".error-summary a")["href"] == f"#{field}"
    assert page.select_one(f"#{field}")["aria-invalid"] == "true"
    assert page.select_one(f"#{field}-error") is not None
    assert page.select_one("#results-heading") is None


@pytest.mark.parametrize("params", [{}, {"q": "てんしゅつ"}, {"life_event": "moving", "lang": "en"},
                                    {"category": "", "q": "宇宙"}, {"category": "garbage"}, {"lang": "fr"}])
def test_the_api_answers_as_its_openapi_description_says(portal_app, params):
    operation = OPENAPI_PATHS["/api/v1/services"]["get"]
    response = _api(portal_app.test_client(), **params)
    schema = operation["responses"][str(response.status_code)]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator(schema).validate(response.json)


# --- the procedure page ------------------------------------------------------------------------------------------


def test_the_page_of_an_online_procedure_shows_the_fee_the_legal_basis_and_a_start_link(portal_app):
    client = portal_app.test_client()
    status, page = _page(client, "/services/resident-record-copy")
    assert status == 200
    assert page.select_one("h1").text == "住民票の写しの請求" and len(page.select("h1")) == 1
    assert page.select_one("#fee").text == "300円"
    assert page.select_one("#legal-basis").text.startswith("住民基本台帳法第12条")
    assert page.select_one("#start")["href"] == "/apply/certificate"
    _, english = _page(client, "/services/resident-record-copy?lang=en")
    assert english.select_one("h1").text == "Request a copy of the resident record"
    assert english.select_one("#fee").text == "¥300"
    assert english.select_one("#legal-basis").text.startswith("Basic Resident Registration Act, Article 12")
    _, move_out = _page(client, "/services/move-out")
    assert move_out.select_one("#start")["href"] == "/apply/move"


@pytest.mark.parametrize("service_id", ["move-in", "in-city-move", "seal-registration", "national-health-insurance"])
def test_the_page_of_a_counter_only_procedure_has_no_start_link(portal_app, service_id):
    status, page = _page(portal_app.test_client(), f"/services/{service_id}")
    assert status == 200
    assert page.select_one("#start") is None
    assert page.select_one("#counter-only") is not None
    assert page.select_one("#legal-basis").text == catalog.get(service_id).legal_basis.ja


def test_the_certificate_fee_follows_the_configuration_per_municipality(portal_app):
    service = catalog.get("resident-record-copy")
    with portal_app.app_context():
        assert catalog.fee_for(service, "032051") == 300
        portal_app.config["CERTIFICATE_FEE_YEN"] = {"032069": 350}
        assert catalog.fee_for(service, "032069") == 350
        assert catalog.fee_for(service, "032051") == 300
        assert catalog.fee_for(catalog.get("move-out"), "032069") == 0  # not a certificate
        portal_app.config["CERTIFICATE_FEE_YEN"] = 200
        assert catalog.fee_for(service, "032051") == 200
    assert _page(portal_app.test_client(), "/services/resident-record-copy")[1].select_one("#fee").text == "200円"
    assert _api(portal_app.test_client(), q="じゅうみんひょうのうつし").json["services"][0]["fee_yen"] == 200


def test_an_unknown_procedure_is_not_found(portal_app):
    assert portal_app.test_client().get("/services/no-such-thing").status_code == 404


def test_no_search_needs_sign_in_and_the_home_page_links_to_it(portal_app):
    client = portal_app.test_client()
    for url in ("/services", "/services?q=てんしゅつ", "/services/move-out", "/api/v1/services?q=転出"):
        response = client.get(url)
        assert response.status_code == 200, url
    _, home = _page(client, "/")
    assert home.select_one("#service-search a")["href"] == "/services"
