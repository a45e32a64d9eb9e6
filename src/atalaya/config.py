"""Settings from the environment (and, later, a settings file).

The embedded default is a SQLite file in the working directory, so that a
unit with one laptop can start without any server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATABASE_FILE = "atalaya.db"
DATABASE_URL_ENV = "ATALAYA_DATABASE_URL"


def default_database_url(cwd: Path | None = None) -> str:
    base = cwd if cwd is not None else Path.cwd()
    return f"sqlite:///{(base / DEFAULT_DATABASE_FILE).resolve()}"


@dataclass(frozen=True)
class Settings:
    database_url: str

    @classmethod
    def load(cls, database_url: str | None = None) -> Settings:
        """Resolve settings: explicit argument, then environment, then default."""
        url = database_url or os.environ.get(DATABASE_URL_ENV) or default_database_url()
        return cls(database_url=url)
