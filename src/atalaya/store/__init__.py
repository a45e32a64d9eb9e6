"""Database engine, tables and migrations (SQLite by default, PostgreSQL supported)."""

from atalaya.store.engine import begin_write, create_store_engine, redact_url
from atalaya.store.migrate import upgrade

__all__ = ["begin_write", "create_store_engine", "redact_url", "upgrade"]
