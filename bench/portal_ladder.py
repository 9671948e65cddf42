"""What each stage of a signed submission costs against the echo: the portal's ratio, rung by rung.

Set up as the portal figure is (``portal_stack``: a scratch PostgreSQL database, a private
redis-server, simulated J-LIS cards, residents signed in and linked), but gunicorn serves this
module's ``app``: the portal with two more API routes, each doing the first stages of
``POST /api/v1/applications`` and answering 202 without storing anything:

- ``auth``: the bearer token checked and the account read (``api_login_required``), as every call of
  the API does before anything else;
- ``verify``: that, then the card signature verified (the nonce taken, the certificate path and CRL),
  the application checked against its rules and schema, the signed parts and move id compared;
- ``full``: the real ``POST /api/v1/applications`` (stored with its outbox row, the operation log's
  append and its signed checkpoint, committed).

The echo and each rung get the same signed bodies and headers from the same client, alternately,
``--runs`` times; printed: the median rate of each, its ratio to the echo, and the whole machine's CPU
per request. ``python -m bench.portal_ladder [--runs N] [--submissions N]``. Not a figure of ``make bench``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.baselines import CpuMeter, RedisServer, echo_rate, echo_server, median, metered, post_rate, scratch_database
from bench.portal import Resident, portal_stack

PATHS = {"auth": "/api/v1/ladder/auth", "verify": "/api/v1/ladder/verify", "full": "/api/v1/applications"}


def _ladder_app() -> Any:
    """The portal app with the ``auth`` and ``verify`` routes (built in the gunicorn worker that imports it)."""
    from flask import Blueprint, g, jsonify, request

    import wsgi
    from core import clock
    from core.app import csrf
    from portal.extensions import db
    from portal.security import api_login_required
    from portal.services import applications as apps

    routes = Blueprint("ladder", __name__)
    csrf.exempt(routes)

    @routes.post(PATHS["auth"])
    @api_login_required
    def auth() -> Any:
        request.get_json(silent=True)
        return jsonify({}), 202

    @routes.post(PATHS["verify"])
    @api_login_required
    def verify() -> Any:
        body = request.get_json(silent=True) or {}
        account = g.api_account
        verified = apps._verify(body["signed_application"], body["nonce"], account)
        data = verified.application
        errors = apps.check_certificate(data, account=account, today=clock.today_jst())
        errors += apps._signed_claims_errors(db.session, verified.claims, data, apps.home_municipality(account) or "")
        db.session.rollback()
        if errors:
            return jsonify({"errors": [e.field for e in errors]}), 422
        return jsonify({}), 202

    app = wsgi.portal_app
    app.register_blueprint(routes)
    return app


def __getattr__(name: str) -> Any:
    # ``bench.portal_ladder:app`` for gunicorn; built on first use, never by the command that measures.
    if name == "app":
        globals()["app"] = _ladder_app()
        return globals()["app"]
    raise AttributeError(name)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--submissions", type=int, default=300, help="requests per rung and repetition")
    args = parser.parse_args(argv)
    rates: dict[str, list[float]] = {name: [] for name in ("echo", *PATHS)}
    cpu: dict[str, list[float]] = {name: [] for name in rates}
    with tempfile.TemporaryDirectory(prefix="juki-bench-ladder-") as tmp, scratch_database("bench_portal") as url:
        directory = Path(tmp)
        redis_server = RedisServer(directory)
        redis_server.start()
        try:
            with portal_stack(directory, url, redis_server.url, app="bench.portal_ladder:app") as (server, _, cards):
                residents = [Resident(server.origin, card) for card in cards]
                warm = [residents[i % len(residents)].signed_request() for i in range(40)]
                post_rate(server.port, warm)
                with echo_server(directory) as echo:
                    post_rate(echo.port, [("/echo", b, h) for _, b, h in warm])
                    for _ in range(args.runs):
                        for name in rates:
                            bodies = [residents[i % len(residents)].signed_request() for i in range(args.submissions)]
                            meter = CpuMeter(lambda: [])
                            with metered(meter):
                                if name == "echo":
                                    rate = echo_rate(echo, bodies)
                                else:
                                    rate, statuses = post_rate(server.port, [(PATHS[name], b, h) for _, b, h in bodies])
                                    if set(statuses) != {202}:
                                        raise RuntimeError(f"{name} answered {statuses}; see {server.log}")
                            rates[name].append(rate)
                            cpu[name].append(1000 * meter.machine / args.submissions)
        finally:
            redis_server.stop()
    echo = median(rates["echo"])
    print(f"median of {args.runs}, {args.submissions} requests each")
    print("| rung | req/s | ratio to the echo | machine CPU per request |")
    print("|---|---|---|---|")
    for name in rates:
        rate = median(rates[name])
        print(f"| {name} | {rate:,.0f} | {rate / echo:.3f} | {median(cpu[name]):.2f} ms |")


if __name__ == "__main__":
    main(sys.argv[1:])
