"""Prove the models and the migrations agree (``alembic check``) for both databases.

Runs on a scratch SQLite file, and on a scratch PostgreSQL database when one is reachable.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_ADMIN_URL = os.environ.get("TEST_PG_URL", "postgresql+psycopg://127.0.0.1:5432/postgres")


def _check(factory_path: str, url_key: str, url: str) -> None:
    from flask_migrate import check, upgrade

    module = __import__(factory_path, fromlist=["create_app"])
    app = module.create_app({"APP_ENV": "test", url_key: url})
    with app.app_context():
        upgrade()
        check()  # raises when autogenerate finds a difference
    app.extensions["engine"].dispose()


def main() -> int:
    """Upgrade scratch databases and fail if the models have drifted from the migrations."""
    os.environ.setdefault("INSTANCE_PATH", tempfile.mkdtemp(prefix="instance-"))
    targets = [("portal", "PORTAL_DATABASE_URL"), ("backoffice", "BACKOFFICE_DATABASE_URL")]
    with tempfile.TemporaryDirectory() as d:
        for name, key in targets:
            _check(name, key, f"sqlite:///{d}/{name}.db")
            print(f"{name}: SQLite migrations match the models")
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        admin.connect().close()
    except Exception as exc:
        print(f"PostgreSQL not reachable ({type(exc).__name__}); checked SQLite only")
        return 0
    for name, key in targets:
        db_name = f"migcheck_{name}_{secrets.token_hex(4)}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{db_name}"'))
        try:
            _check(name, key, make_url(PG_ADMIN_URL).set(database=db_name).render_as_string(hide_password=False))
            print(f"{name}: PostgreSQL migrations match the models")
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
    return 0


if __name__ == "__main__":
    sys.exit(main())
