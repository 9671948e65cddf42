"""The card file works in a real browser: headless Chromium unwraps a key with WebCrypto and signs in.

Runs the JavaScript documented in docs/virtual-card.md, so the documentation cannot drift from what
the file format needs. Uses the system Chromium (see shared/ci-services.md); skipped without it.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.peers.jlis import virtualcard
from bridge.peers.jlis.simulator import IssuedCard
from bridge.peers.jlis.testkit import SimulatedPki
from core.jpki import ConsumedNonce, verify_auth_token

pytestmark = pytest.mark.browser

DOC = Path(__file__).resolve().parents[2] / "docs" / "virtual-card.md"
PIN, PASSWORD = "2468", "SIM2CARD"


def documented_snippet() -> str:
    """The unwrap-and-sign function between the webcrypto markers of docs/virtual-card.md."""
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"<!-- webcrypto:begin -->\s*```js\n(.*?)```\s*<!-- webcrypto:end -->", text, re.S)
    assert match, "docs/virtual-card.md lost its webcrypto snippet"
    return match.group(1)


@pytest.fixture(scope="module")
def pki_generations() -> int:
    """One CA generation is enough here (tests/pki_fixtures.py gives pki, card and trust)."""
    return 1


@pytest.fixture(scope="module")
def page(pki: SimulatedPki, browser: Any) -> Iterator[Any]:
    """A Chromium page at the portal's origin (served by a route, no network)."""
    context = browser.new_context()
    context.route(
        f"{pki.origin}/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>t</title>"),
    )
    page = context.new_page()
    page.goto(pki.origin + "/auth/card")
    yield page
    context.close()


def run_snippet(page: Any, slot: dict[str, Any], secret: str, nonce: str) -> dict[str, Any]:
    wrapper = (
        "async (args) => { const f = " + documented_snippet() + ";"
        " try { const r = await f(args); let exported = true;"
        " try { await crypto.subtle.exportKey('pkcs8', r.key); } catch (e) { exported = false; }"
        " return {token: r.token, extractable: r.key.extractable, exported}; }"
        " catch (e) { return {error: e.name}; } }"
    )
    return page.evaluate(wrapper, {"slot": slot, "secret": secret, "nonce": nonce})


def test_a_browser_unwraps_the_card_key_with_webcrypto_and_its_token_signs_in(
    page: Any, pki: SimulatedPki, card: IssuedCard
):
    document = virtualcard.card_document(card, PIN, PASSWORD, iterations=1_000)
    nonce = base64.b64encode(secrets.token_bytes(32)).decode()
    result = run_snippet(page, document["auth"], PIN, nonce)
    assert "error" not in result, result
    assert result["extractable"] is False and result["exported"] is False
    consumed = ConsumedNonce(nonce, pki.clock.now, pki.clock.now + dt.timedelta(seconds=300))
    verified = verify_auth_token(result["token"], nonce=consumed, trust=pki.trust())
    assert verified.serial == card.auth.serial


def test_a_browser_with_the_wrong_pin_fails_the_tag_check(page: Any, card: IssuedCard):
    document = virtualcard.card_document(card, PIN, PASSWORD, iterations=1_000)
    result = run_snippet(page, document["auth"], "1357", base64.b64encode(bytes(32)).decode())
    assert result == {"error": "OperationError"}


def test_a_browser_unwraps_the_sign_slot_with_the_password(page: Any, card: IssuedCard):
    document = virtualcard.card_document(card, PIN, PASSWORD, iterations=1_000)
    result = run_snippet(page, document["sign"], PASSWORD, base64.b64encode(bytes(32)).decode())
    assert "error" not in result and result["extractable"] is False
