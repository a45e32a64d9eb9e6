"""What a test's database holds beyond the schema, when many tests share it.

A folder's conftest overrides the `db_seed` fixture (tests/conftest.py) with
a `Seed`: its store is then built once per engine and session, and each test
gets a copy, as cheap as an empty database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine


@dataclass(frozen=True)
class Seed:
    """`build(engine, folder)` fills the store; `folder` is its own scratch
    directory. It must give the same store every time it runs: the tests
    that ask for this seed share one build. `name` tells seeds apart.
    """

    name: str
    build: Callable[[Engine, Path], None]
