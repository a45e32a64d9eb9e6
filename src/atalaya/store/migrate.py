"""Create or upgrade the schema with Alembic, without an alembic.ini on disk."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine

from atalaya.errors import AtalayaError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # env.py takes the engine from here rather than from a URL in a file.
    config.attributes["engine"] = engine
    return config


class NewerSchemaError(AtalayaError):
    """The store was written by a newer Atalaya: this program must not touch it."""


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema of `engine` to `revision` (the newest by default)."""
    check_not_newer(engine)
    command.upgrade(alembic_config(engine), revision)


def check_not_newer(engine: Engine) -> None:
    """NewerSchemaError if the store's schema is one this program does not know.

    Revisions only ever get added, so an unknown one comes from a newer
    version of Atalaya (Alembic alone says "Can't locate revision").
    """
    current = current_revision(engine)
    if current is None:
        return
    scripts = ScriptDirectory.from_config(alembic_config(engine))
    try:
        known = scripts.get_revision(current) is not None
    except CommandError:
        known = False
    if not known:
        raise NewerSchemaError(
            f"this store is at schema {current}, newer than this program "
            f"({scripts.get_current_head()}): upgrade Atalaya"
        )


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
