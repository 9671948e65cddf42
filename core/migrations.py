"""The Alembic environment both migration trees share: migrate the database of the running app."""

from __future__ import annotations

from alembic import context
from flask import current_app


def run() -> None:
    """Run the migrations (offline: emit SQL; online: in one transaction on the app's engine)."""
    database = current_app.extensions["database"]
    options = {"target_metadata": database.metadata, "render_as_batch": True, "compare_type": True}
    if context.is_offline_mode():
        context.configure(url=current_app.config[database.url_key], literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    with current_app.extensions["engine"].connect() as connection:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()
