"""Request tests share one seeded store per engine (tests/cases/requests/helpers.py)."""

from __future__ import annotations

import pytest

from tests.cases.requests.helpers import SEED
from tests.support.seeds import Seed


@pytest.fixture
def db_seed() -> Seed | None:
    return SEED
