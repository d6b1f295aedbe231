"""Alembic migration scripts (a package so the bot can find them when installed)."""
