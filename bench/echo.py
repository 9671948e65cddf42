"""Baseline A of ``make bench``: a bare Flask app that returns the JSON it is sent (``POST /echo``).

Served by the same gunicorn config as the apps and hit by the same client, it is what the portal's
signed submissions per second are divided by: the cost of HTTP, gunicorn and Flask alone.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request

app = Flask(__name__)


@app.get("/")
def ready() -> Any:
    """Answers once a worker is up."""
    return {"ok": True}


@app.post("/echo")
def echo() -> Any:
    """The JSON body, parsed and sent back."""
    return request.get_json(force=True)
