"""The QR code's link in real Chromium: the code rides in the fragment, is checked, and leaves the address bar."""

from __future__ import annotations

import datetime as dt

from core import certcode, clock
from core.i18n import wareki


def test_opening_the_qr_link_checks_the_code_without_sending_it_in_any_url(live_portal, browser):
    from portal.extensions import db
    from portal.models import CertificateState, CertificateVerification

    code = certcode.new_code()
    with live_portal.app_context():
        db.session.add(CertificateVerification(code_hash=certcode.code_hash(code), municipality_code="032051",
                                               issued_on=dt.date(2026, 4, 1), status=CertificateState.VALID,
                                               updated_at=clock.utcnow()))
        db.session.commit()
    context = browser.new_context(locale="ja-JP")
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url + " " + (r.post_data or "")))
    origin = live_portal.config["LIVE_ORIGIN"]
    page.goto(f"{origin}/certificates/verify#{certcode.normalise(code)}")
    page.locator(".verdict-valid").wait_for()
    assert page.locator(".issued-on").inner_text() == wareki(dt.date(2026, 4, 1))
    assert "#" not in page.url
    # The code went only in the body of the form post, never in a request line a server or proxy logs.
    assert not any(certcode.normalise(code) in r.split(" ")[0] for r in requested)
    assert any(certcode.normalise(code) in r.split(" ", 1)[1] for r in requested)
    context.close()
