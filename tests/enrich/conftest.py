"""Fixtures of the enrichment tests: the installed npm data and made-up databases.

The npm data (DB-IP, ip-location-db ASN, es-atlas, world-atlas) comes from
scripts/setup.sh. Without it, tests that need it are skipped locally and
fail under CI, where it is required.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from atalaya.enrich.atlas import Jurisdictions
from atalaya.enrich.enricher import load_jurisdictions
from atalaya.enrich.settings import SPAIN_ATLAS_FILE, WORLD_ATLAS_FILE
from tests.enrich.geo_data import require_geo_data


@pytest.fixture(scope="session")
def geo_data() -> Path:
    return require_geo_data()


@pytest.fixture(scope="session")
def jurisdictions(geo_data: Path) -> Jurisdictions:
    """The real atlases (es-atlas, world-atlas), loaded once."""
    found, _, _ = load_jurisdictions(
        geo_data / SPAIN_ATLAS_FILE, geo_data / WORLD_ATLAS_FILE, coast_km=5.0
    )
    return found
