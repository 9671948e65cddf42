"""Alembic environment: migrates the database of the Flask app that runs the command."""

from core.migrations import run

run()
