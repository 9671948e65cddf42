"""The zones of DESIGN.md hold in the code: the portal never imports the back office."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_portal_never_imports_the_back_office():
    code = ("import sys, portal\n"
            "app = portal.create_app({'APP_ENV': 'test', 'PORTAL_DATABASE_URL': 'sqlite://'})\n"
            "with app.test_request_context('/'): app.test_client().get('/')\n"
            "bad = sorted(m for m in sys.modules if m == 'backoffice' or m.startswith('backoffice.'))\n"
            "print(','.join(bad)); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_core_imports_neither_zone():
    code = ("import sys, pkgutil, importlib, core\n"
            "for m in pkgutil.walk_packages(core.__path__, 'core.'): importlib.import_module(m.name)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('portal', 'backoffice'))\n"
            "print(','.join(bad)); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
