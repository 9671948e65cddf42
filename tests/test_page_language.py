"""Every page of both apps, in Japanese and in English: every word a person reads comes from the catalogue.

A page fails when it shows a source message id untranslated on a Japanese page, a Japanese catalogue
entry on an English page, or a stored value (an enum's value, a finding or step code) instead of its label.
Every GET page of each app is visited; one this test cannot reach must be named in NOT_PAGES with why.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po
from bs4 import BeautifulSoup

import backoffice.models
import portal.models
from core import clock
from tests.backoffice.case_fixtures import deliver
from tests.backoffice.test_certificates import _confirm_and_approve, _deliver, _request, city  # noqa: F401
from tests.portal.test_applications import Resident, _move_to_kitakami

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = ("ja", "en")
# Endpoints that answer GET but are no page a person reads (data, files, redirects to a page visited anyway).
NOT_PAGES = {
    "static": "files",
    "ledger.record_json": "JSON for the ledger page's script",
    "api.list_applications": "JSON API", "api.get_application": "JSON API", "api.me": "JSON API",
    "api.openapi": "JSON API", "api_procedures.services": "JSON API",
    "apply.sign": "redirects to the journey's check page",
    "apply.move_start": "redirects to the first question",
    "mypage.withdraw": "the withdrawal page of a submitted application: visited as withdraw_page below",
}


def _catalogue() -> tuple[set[str], set[str]]:
    with open(ROOT / "translations/ja/LC_MESSAGES/messages.po", "rb") as fh:
        catalog = read_po(fh)
    ids, translations = set(), set()
    for message in catalog:
        if message.id and isinstance(message.id, str) and message.string and message.string != message.id:
            ids.add(message.id)
            translations.add(message.string)
    return ids, translations


MESSAGE_IDS, JAPANESE = _catalogue()
RAW_VALUES = {member.value for module in (backoffice.models, portal.models) for item in vars(module).values()
              if isinstance(item, type) and issubclass(item, enum.Enum)
              for member in item if isinstance(member.value, str) and re.fullmatch(r"[a-z][a-z_]{2,}", member.value)}
# Codes stored for case steps and intake findings (raw when a label is missing).
RAW_VALUES |= {"moveout_certificate_matched", "awaiting_moveout_certificate", "counter_prepared",
               "certificate_issued", "certificate_revoked", "householder_needed", "movein_notice",
               "moveout_cancelled", "reservation_cancelled", "card_use_lapsed", "notification_late",
               "paper_moveout_certificate"}


def problems(html: str, lang: str, where: str) -> list[str]:
    """What a reader of ``html`` in ``lang`` would see that does not belong there."""
    soup = BeautifulSoup(html, "html.parser")
    # Not words of the page: code (the operation log's stored details), and, on an English page, what is marked
    # as Japanese content (a certificate's preview, a 続柄 as the ledger records it).
    for hidden in soup(["script", "style", "template", "code"]) + (soup.select("[lang=ja]") if lang == "en" else []):
        hidden.decompose()
    found = []
    for text in {t.strip() for t in soup.stripped_strings}:
        if lang == "ja" and text in MESSAGE_IDS:
            found.append(f"{where} [ja]: untranslated {text!r}")
        if lang == "en" and text in JAPANESE and text not in MESSAGE_IDS:
            found.append(f"{where} [en]: Japanese catalogue text {text!r}")
        if re.search(r"[\u3040-\u30ff\u4e00-\u9fff。] / [A-Za-z]", text):
            found.append(f"{where} [{lang}]: Japanese and English joined in {text!r}")
        words = set(re.findall(r"[a-z][a-z_]{2,}", text))
        raw = {w for w in words & RAW_VALUES if "_" in w} | ({text} & RAW_VALUES)
        if raw:
            found.append(f"{where} [{lang}]: raw value(s) {sorted(raw)} in {text!r}")
    return found


def visit(client: Any, app: Any, fill: dict[str, list[str]], prefix: str = "") -> tuple[list[str], set[str]]:
    """GET every page of ``app`` in both languages; the problems, and the endpoints that showed a page."""
    found, seen = [], set()
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint in NOT_PAGES:
            continue
        values = {arg: fill.get(arg) for arg in rule.arguments}
        assert all(values.values()), f"{rule.rule}: no value for {rule.arguments}; add one, or list it in NOT_PAGES"
        for choice in zip(*values.values(), strict=False) if values else [()]:
            path = rule.rule
            for arg, value in zip(values, choice, strict=True):
                path = re.sub(rf"<(?:\w+:)?{arg}>", str(value), path)
            for lang in LANGUAGES:
                response = client.get(f"{prefix}{path}?lang={lang}")
                assert response.status_code in (200, 302, 400, 404), (path, response.status_code)
                if response.status_code in (200, 400):  # 404: a value of another kind (a certificate case's id)
                    found += problems(response.text, lang, path)
                    seen.add(rule.endpoint)
    return found, seen


@pytest.fixture
def office(bo_app, backoffice, city):  # noqa: F811
    """Cases in several states (received, confirmed, completed certificate) and the people behind them."""
    from backoffice.extensions import db
    from backoffice.models import CardRecord, IssuedCertificate

    issued = _confirm_and_approve(bo_app, backoffice, _deliver(bo_app, city["card"], _request()))
    waiting = _deliver(bo_app, city["card"], _request(persons="self"))
    moving = deliver(bo_app, city, "move_in_reservation")
    with bo_app.app_context():
        cert = db.session.get(IssuedCertificate, issued)
        cases = [cert.case_id, waiting, moving]
        cards = [db.session.query(CardRecord.id).first()[0]]
    return {"case_id": cases, "resident_id": [city["head"], city["wife"]], "card_id": cards, "letter_id": [],
            "measure_id": [_support_measure(bo_app, backoffice, city)]}


def _support_measure(bo_app, backoffice, city) -> int:  # noqa: F811
    """A measure in force on the wife, extended once, with a change of the members covered waiting."""
    import datetime as dt

    from backoffice.extensions import db
    from backoffice.services import support
    from tests.backoffice.case_fixtures import staff

    backoffice.add_staff("measure_clerk", "clerk")
    backoffice.add_staff("measure_approver", "approver")
    today = clock.today_jst()
    steps = [lambda by: support.request(db.session, resident_id=city["wife"], covered_ids=[], starts_on=today,
                                        ends_on=today + dt.timedelta(days=300), hide_from_household=True, by=by),
             lambda by: support.approve(db.session, measure_id, by=by),
             lambda by: support.request_extension(db.session, measure_id, ends_on=today + dt.timedelta(days=600),
                                                  reason="警察署の意見", by=by),
             lambda by: support.approve_extension(db.session, measure_id, by=by),
             lambda by: support.request_covered(db.session, measure_id, covered_ids=[city["head"]], by=by)]
    measure_id = 0
    for i, step in enumerate(steps):
        with bo_app.test_request_context("/"):
            done = step(staff(db.session, "measure_approver" if i % 2 else "measure_clerk"))
            db.session.commit()
            measure_id = done.id
    return measure_id


def test_every_back_office_page_speaks_the_pages_language_and_shows_no_raw_value(bo_app, backoffice, office):
    client = backoffice.client_for("everyone", "clerk", "approver", "number_use", "admin", "auditor")
    from backoffice.extensions import db
    from backoffice.models import DeadLetter

    with bo_app.app_context():
        db.session.add(DeadLetter(queue="intake:032051", message_id="m-1", message_type="application.submitted",
                                  sender="portal", reason="unknown_sender", envelope="sealed",
                                  created_at=clock.utcnow()))
        db.session.commit()
        office["letter_id"] = [db.session.query(DeadLetter.id).scalar()]
    found, seen = visit(client, bo_app, office)
    signed_out = visit(backoffice.enrolled_client("signed-out"), bo_app, office)  # the sign-in page
    found, seen = found + signed_out[0], seen | signed_out[1]
    assert seen == {r.endpoint for r in bo_app.url_map.iter_rules() if "GET" in r.methods} - set(NOT_PAGES)
    assert found == [], "\n".join(sorted(set(found)))


def test_every_portal_page_speaks_the_pages_language_and_shows_no_raw_value(portal_app, cards):
    from portal.services.catalog import all_services

    fill: dict[str, list[str]] = {"service_id": [s.id for s in all_services()][:3], "receipt": ["0" * 18]}
    found, seen = visit(portal_app.test_client(), portal_app, fill)  # signed out
    more = visit(Resident(portal_app, cards, link=False).client, portal_app, fill)  # signed in, to be linked
    found, seen = found + more[0], seen | more[1]
    resident = Resident(portal_app, cards)
    _move_to_kitakami(resident)
    more = visit(resident.client, portal_app, fill)  # every question of the move answered
    found, seen = found + more[0], seen | more[1]
    sent = resident.sign("/apply/move/sign/challenge", "/apply/move/submit")
    assert sent.status_code == 200, sent.json
    fill["receipt"] = [sent.json["redirect"].rsplit("/", 1)[-1]]
    more = visit(resident.client, portal_app, fill)  # the application sent
    found, seen = found + more[0], seen | more[1]
    receipt = fill["receipt"][0]
    for lang in LANGUAGES:  # the withdrawal page of the submitted application
        page = resident.client.get(f"/mypage/applications/{receipt}/withdraw?lang={lang}")
        found += problems(page.text, lang, "withdraw_page")
    assert seen == {r.endpoint for r in portal_app.url_map.iter_rules() if "GET" in r.methods} - set(NOT_PAGES)
    assert found == [], "\n".join(sorted(set(found)))
