"""Deployment settings: the tile server, the asset folders, the headers they give."""

from __future__ import annotations

from pathlib import Path

import pytest

from atalaya.errors import AtalayaError
from atalaya.web.security import content_security_policy
from atalaya.web.settings import TILE_URL_ENV, WebSettings, tile_origin


def test_a_tile_url_needs_its_placeholders_and_gives_its_origin() -> None:
    assert tile_origin("https://tiles.example:8443/{z}/{x}/{y}.png") == "https://tiles.example:8443"
    for bad in (
        "ftp://tiles.example/{z}/{x}/{y}.png",
        "https://tiles.example/{z}/{x}.png",
        "tiles.example/{z}/{x}/{y}.png",
        "https://tiles.example/{z}/{x}/{y}.png' unsafe-inline",
    ):
        with pytest.raises(AtalayaError, match="tile URL"):
            tile_origin(bad)


def test_the_tile_server_is_the_only_other_image_origin() -> None:
    assert "img-src 'self' data:;" in content_security_policy(None)
    policy = content_security_policy("https://tiles.example")
    assert "img-src 'self' data: https://tiles.example;" in policy
    assert "connect-src 'self'" in policy and "script-src 'self';" in policy


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TILE_URL_ENV, "http://127.0.0.1:8080/{z}/{x}/{y}.png")
    assert WebSettings.load().tile_url == "http://127.0.0.1:8080/{z}/{x}/{y}.png"
    monkeypatch.setenv(TILE_URL_ENV, "http://127.0.0.1:8080/tiles")
    with pytest.raises(AtalayaError, match="must contain"):
        WebSettings.load()


def test_missing_assets_name_the_install_step(tmp_path: Path) -> None:
    settings = WebSettings.load(assets_dir=tmp_path / "none", geo_dir=tmp_path / "none")
    with pytest.raises(AtalayaError, match=r"web assets missing .*scripts/setup.sh"):
        settings.check()
