"""The card trust configuration of a running app, read once from its JPKI_* settings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from flask import Flask, current_app

from core import clock
from core.jpki.trust import TrustConfig

# A signature certificate is issued only from 15 (公的個人認証法); below it a card proves nobody's presence.
MINIMUM_SIGNER_AGE = 15


def trust_for_app(app: Flask | None = None) -> TrustConfig:
    """Anchors from the configured files, fixed at first use; CRLs are read fresh on every check."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    cached: TrustConfig | None = app.extensions.get("jpki_trust")
    if cached is None:
        cfg = app.config
        cached = TrustConfig.from_files(
            origin=cfg["SITE_ORIGIN"], app_env=cfg["APP_ENV"], auth_anchors_pem=Path(cfg["JPKI_AUTH_ANCHORS"]),
            sign_anchors_pem=Path(cfg["JPKI_SIGN_ANCHORS"]), crl_directory=Path(cfg["JPKI_CRL_DIRECTORY"]),
            clock=clock.utcnow,
        )
        app.extensions["jpki_trust"] = cached
    return cached


def max_signature_age(app: Flask | None = None) -> dt.timedelta:
    """How old a signing time may be when a signed application or withdrawal arrives, at the portal or a city."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    return dt.timedelta(minutes=int(app.config["SIGNED_APPLICATION_MAX_AGE_MINUTES"]))
