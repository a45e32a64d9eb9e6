"""Database engine, tables and migrations (SQLite by default, PostgreSQL supported)."""

from atalaya.store.engine import create_store_engine, redact_url
from atalaya.store.migrate import upgrade

__all__ = ["create_store_engine", "redact_url", "upgrade"]
