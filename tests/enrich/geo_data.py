"""Where the npm enrichment data is, for tests that need it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from atalaya.enrich.settings import SPAIN_ATLAS_FILE, WORLD_ATLAS_FILE, default_data_dir


def require_geo_data() -> Path:
    data = default_data_dir()
    if not (data / SPAIN_ATLAS_FILE).is_file() or not (data / WORLD_ATLAS_FILE).is_file():
        if os.environ.get("CI"):
            pytest.fail(f"enrichment data missing under CI at {data}: scripts/setup.sh installs it")
        pytest.skip(f"no enrichment data at {data}; run scripts/setup.sh")
    return data
