"""The README's screenshots: the map and a lead page, taken in Chromium on a seeded store."""

from __future__ import annotations

import struct
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from atalaya.errors import AtalayaError
from atalaya.web.screenshot import take
from tests.web.seed import NOW, PASSWORD

pytestmark = [pytest.mark.web, pytest.mark.slow]

WINDOW = (NOW.date() - timedelta(days=60), NOW.date())


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_the_top_lead_and_the_map_are_saved_as_pictures(world: Engine, tmp_path: Path) -> None:
    lead_png = tmp_path / "lead.png"
    take(world, lead_png, "ana", PASSWORD, WINDOW, width=1200, height=1000, lead="top")
    assert _png_size(lead_png) == (1200, 1000)
    map_png = tmp_path / "map.png"
    take(world, map_png, "ana", PASSWORD, WINDOW, width=1000, height=700)
    assert _png_size(map_png) == (1000, 700)


def test_a_lead_the_unit_does_not_hold_is_refused(world: Engine, tmp_path: Path) -> None:
    with pytest.raises(AtalayaError, match="not one this user's unit holds"):
        take(world, tmp_path / "x.png", "ana", PASSWORD, WINDOW, lead="999999")
    assert not (tmp_path / "x.png").exists()
