"""The shared application factory: config, CSRF, languages, request ids, headers, errors, logging, the proxy."""

from __future__ import annotations

import io
import logging
import re
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Flask, abort, g, render_template, request, url_for
from flask.json.provider import DefaultJSONProvider
from flask_babel import Babel, get_locale
from flask_wtf.csrf import CSRFError, CSRFProtect
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import BuildError, IntegerConverter, Map

from core import config as config_module
from core.i18n import LANGUAGES, format_moment, select_locale
from core.redirects import safe_path

ROOT = Path(__file__).resolve().parent.parent
csrf = CSRFProtect()
babel = Babel()
PEER_ADDR = "juki.peer_addr"
# C0 control characters but tab, line feed and carriage return (a textarea's line ends): PostgreSQL refuses NUL
# in text, and none of the others is anything a person types.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


class DatabaseIntConverter(IntegerConverter):
    """``<int:…>`` in either app: only a number a PostgreSQL INTEGER id can hold, so a larger one is no page (404).

    Werkzeug's own converter takes any length of digits, and the database answers a number past 2**31-1 with
    an error (a 500) instead of no row. ``<int(max=…):…>`` still sets another bound.
    """

    default_max = 2**31 - 1

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = None,  # werkzeug's names
                 max: int | None = None, signed: bool = False) -> None:
        super().__init__(map, fixed_digits, min, self.default_max if max is None else max, signed)


class DatabaseBigIntConverter(DatabaseIntConverter):
    """``<bigint:…>``: the ids of BIGINT columns (bridge alerts, dead letters), up to 2**63-1."""

    default_max = 2**63 - 1


class TrustedProxyFix:
    """Believe ``X-Forwarded-For`` only when the immediate peer is one of ``TRUSTED_PROXIES``.

    Werkzeug's ProxyFix trusts a number of hops whoever sent them; here it is applied only to requests
    whose TCP peer is the configured TLS proxy, and takes the one address that proxy appended (the
    rightmost), so a client can neither pick its address directly nor by prefixing the header. The
    peer's own address is kept in the environ (``peer_address``) for checks that are about the proxy
    itself, such as the terminals' client-certificate header. Only the address is taken: the scheme
    and host stay as the proxy connected, as SITE_ORIGIN never comes from a request anyway.
    """

    def __init__(self, app: Flask, wsgi_app: Any) -> None:
        self.flask_app = app
        self.plain = wsgi_app
        self.forwarded = ProxyFix(wsgi_app, x_for=1, x_proto=0, x_host=0, x_port=0, x_prefix=0)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        peer = environ.get("REMOTE_ADDR")
        environ[PEER_ADDR] = peer
        if peer and peer in self.flask_app.config["TRUSTED_PROXIES"]:
            return self.forwarded(environ, start_response)  # type: ignore[no-any-return,unused-ignore]
        return self.plain(environ, start_response)  # type: ignore[no-any-return,unused-ignore]


class ChunkedBodyLimit:
    """Give a body without Content-Length (chunked) a length, reading at most MAX_CONTENT_LENGTH + 1 bytes.

    Werkzeug stops such a stream at the limit without an error, so a view would see a cut body (and
    ``get_json(silent=True)`` would call it malformed); with its length known, the size check answers
    413 like for any other body over the limit. Only servers that end the stream themselves
    (``wsgi.input_terminated``) hand on such bodies at all.
    """

    def __init__(self, app: Flask, wsgi_app: Any) -> None:
        self.flask_app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        limit = self.flask_app.config["MAX_CONTENT_LENGTH"]
        if limit is not None and not environ.get("CONTENT_LENGTH") and environ.get("wsgi.input_terminated"):
            body = environ["wsgi.input"].read(limit + 1)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.wsgi_app(environ, start_response)  # type: ignore[no-any-return]


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, but a body nested deeper than the parser can recurse is malformed JSON (ValueError).

    ``json.loads`` raises RecursionError for ``[[[[...]]]]`` a few kilobytes long; ``request.get_json``
    handles only ValueError, so without this a client could turn any JSON endpoint into a server error.
    """

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError as exc:
            raise ValueError("JSON nested too deeply") from exc


def language_url(code: str) -> str:
    """This page in language ``code``: a path of this site only, whatever path the request named.

    The path is rebuilt from the matched route, not copied from the request, so a request for
    ``/%5Cevil.example/x`` (a 404) cannot turn the language link into ``/\\evil.example/x``, which
    browsers follow to another host. Without a route the link is the app's home page.
    """
    home = request.script_root + "/"
    path = home
    if request.url_rule is not None and request.endpoint:
        try:
            path = url_for(request.endpoint, **(request.view_args or {}))
        except (BuildError, ValueError):
            path = home
    query = [(name, value) for name, value in request.args.items(multi=True) if name != "lang"]
    return safe_path(path, default=home) + "?" + urlencode([*query, ("lang", code)])


def peer_address(req: Any = None) -> str | None:
    """The address of the immediate TCP peer (the proxy, when there is one), whatever X-Forwarded-For said."""
    req = req or request
    return req.environ.get(PEER_ADDR, req.remote_addr)  # type: ignore[no-any-return]


def build_app(
    name: str,
    *,
    config: dict[str, Any] | None,
    secret_key_name: str,
    cookie_name: str,
) -> Flask:
    """Create a Flask app with the settings and safeguards both zones share."""
    cfg = config_module.load(config)
    app = Flask(
        name,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=cfg["INSTANCE_PATH"],
    )
    app.json = BoundedJSONProvider(app)
    # Before any route is added: every blueprint's <int:…> is bounded to what the database can hold.
    app.url_map.converters["int"] = DatabaseIntConverter
    app.url_map.converters["bigint"] = DatabaseBigIntConverter
    app.config.update(cfg)
    app.config["SECRET_KEY"] = cfg[secret_key_name]
    app.config["SESSION_COOKIE_NAME"] = cookie_name
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(ROOT / "translations")
    app.wsgi_app = TrustedProxyFix(app, ChunkedBodyLimit(app, app.wsgi_app))  # type: ignore[method-assign]

    @app.before_request
    def _body_size() -> None:
        # First of all, before CSRF or a view reads the body: a size over the limit is refused unread
        # (a chunked body has been given its length by ChunkedBodyLimit).
        limit = app.config["MAX_CONTENT_LENGTH"]
        if limit is not None and request.content_length is not None and request.content_length > limit:
            abort(413)

    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    _configure_logging(app)

    @app.before_request
    def _request_id() -> None:
        g.request_id = secrets.token_hex(8)
        if request.args.get("lang") in LANGUAGES:
            # Remembered even when this response is a redirect that renders nothing.
            g.lang_to_set = request.args["lang"]

    @app.before_request
    def _control_characters() -> Any:
        # Before any view, access check or database work: a field holding a control character is refused whole,
        # naming the field and never echoing its value, so no view can pass a NUL on to PostgreSQL (a 500).
        field = control_character_field()
        if field is None:
            return None
        shown = CONTROL_CHARACTERS.sub("?", field)[:80]
        app.logger.info("control character refused field=%r request_id=%s", shown, g.get("request_id"))
        if request.path.startswith("/api/") or request.is_json:
            return {"error": "invalid_parameter", "field": shown}, 400  # as the API names any refused parameter
        return render_template("errors/error.html", code=400, error="control_character", field=shown), 400

    @app.after_request
    def _headers(response: Any) -> Any:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        )
        if app.config["APP_ENV"] != "development":
            response.headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
        if request.endpoint != "static":
            # Any page may carry personal data; none may be kept by a browser or proxy.
            response.headers["Cache-Control"] = "no-store"
        if request.cookies.get("lang") != getattr(g, "lang_to_set", None) and getattr(g, "lang_to_set", None):
            response.set_cookie("lang", g.lang_to_set, max_age=31536000, samesite="Lax", httponly=True,
                                secure=app.config["SESSION_COOKIE_SECURE"])
        return response

    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError) -> Any:
        return render_template("errors/error.html", code=400, error="csrf"), 400

    @app.errorhandler(RedisConnectionError)
    @app.errorhandler(RedisTimeoutError)
    def _redis_down(exc: Exception) -> Any:
        # Redis is only the doorbell and the nonce store: say "try again shortly", never a server error.
        app.logger.warning("redis unavailable request_id=%s: %s", g.get("request_id"), type(exc).__name__)
        if request.path.startswith("/api/") or request.is_json:
            return {"error": "temporarily_unavailable"}, 503, {"Retry-After": "30"}
        return render_template("errors/error.html", code=503, error=None), 503, {"Retry-After": "30"}

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge) -> Any:
        if request.path.startswith("/api/") or request.is_json:
            return {"error": "request_too_large", "max_bytes": app.config["MAX_CONTENT_LENGTH"]}, 413
        return render_template("errors/error.html", code=413, error=None), 413

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        return render_template("errors/error.html", code=exc.code, error=None), exc.code or 500

    @app.errorhandler(Exception)
    def _server_error(exc: Exception) -> Any:
        # The traceback goes to the log only; the page says nothing about the internals.
        app.logger.exception("unhandled error request_id=%s", g.get("request_id"))
        return render_template("errors/error.html", code=500, error=None), 500

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {"languages": LANGUAGES, "app_env": app.config["APP_ENV"], "get_locale": get_locale,
                "jst": format_moment, "language_url": language_url}

    return app


def control_character_field() -> str | None:
    """The name of the first query or form field whose name or value holds a C0 control character (but tab or a
    line end)."""
    for source in (request.args, request.form):
        for name, value in source.items(multi=True):
            if CONTROL_CHARACTERS.search(name) or CONTROL_CHARACTERS.search(value):
                return str(name)
    return None


def _configure_logging(app: Flask) -> None:
    """One line per record; personal data is never passed to the logger in the first place."""
    if not app.logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        app.logger.addHandler(handler)
    app.logger.setLevel(logging.INFO)
