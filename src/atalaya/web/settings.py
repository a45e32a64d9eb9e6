"""Where the web application finds its assets, and what a deployment may set.

Front-end libraries are installed from the npm registry into
`data/web/node_modules` by scripts/setup.sh and served from there; the base
map's boundaries come from the enrichment's `data/geo/node_modules`
(es-atlas, world-atlas). A deployment with a tile server names it with
--tile-url or ATALAYA_TILE_URL; without one the map is drawn from the
boundaries alone and needs no internet.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from atalaya.accounts.policy import DEFAULT_POLICY, AccountPolicy
from atalaya.enrich.settings import SPAIN_ATLAS_FILE, default_data_dir
from atalaya.errors import AtalayaError
from atalaya.web.security import Network, parse_trusted_proxies

ASSETS_ENV = "ATALAYA_WEB_ASSETS"
TILE_URL_ENV = "ATALAYA_TILE_URL"
TILE_ATTRIBUTION_ENV = "ATALAYA_TILE_ATTRIBUTION"
FORWARDED_ALLOW_IPS_ENV = "ATALAYA_FORWARDED_ALLOW_IPS"
DEFAULT_QUERY_TIMEOUT = 10.0
ASSETS_SUBDIR = Path("data") / "web" / "node_modules"
_CHECKOUT = Path(__file__).resolve().parents[3]
WORLD_ATLAS_MAP_FILE = "world-atlas/countries-50m.json"

# URL prefix -> folder under node_modules: only these are served.
LIBRARIES = {
    "leaflet": "leaflet/dist",
    "geoman": "@geoman-io/leaflet-geoman-free/dist",
    "supercluster": "supercluster/dist",
    "topojson": "topojson-client/dist",
    "chartjs": "chart.js/dist",
}
# One file of each that pages load: present means installed.
_PROBES = (
    "leaflet/dist/leaflet.js",
    "@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.js",
    "supercluster/dist/supercluster.min.js",
    "topojson-client/dist/topojson-client.min.js",
    "chart.js/dist/chart.umd.min.js",
)
_TILE_PLACEHOLDERS = re.compile(r"\{[zxy]\}")


def default_assets_dir() -> Path:
    """$ATALAYA_WEB_ASSETS, else data/web/node_modules here, else in the checkout."""
    configured = os.environ.get(ASSETS_ENV)
    if configured:
        return Path(configured)
    here = Path.cwd() / ASSETS_SUBDIR
    return here if here.is_dir() else _CHECKOUT / ASSETS_SUBDIR


def tile_origin(url: str) -> str:
    """scheme://host[:port] of a tile URL template; AtalayaError if it is not one."""
    parts = urlsplit(url)
    placeholders = set(_TILE_PLACEHOLDERS.findall(url))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AtalayaError(f"tile URL {url!r} must start with http:// or https://")
    if placeholders != {"{z}", "{x}", "{y}"}:
        raise AtalayaError(
            f"tile URL {url!r} must contain {{z}}, {{x}} and {{y}}, "
            "e.g. https://tiles.example/{z}/{x}/{y}.png"
        )
    if any(c in url for c in "'\"<> ;"):
        raise AtalayaError(f"tile URL {url!r} contains characters a URL cannot hold")
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class WebSettings:
    assets_dir: Path
    geo_dir: Path
    tile_url: str | None = None
    tile_attribution: str | None = None
    # Set behind TLS: the session cookie then travels over HTTPS only, and
    # browsers are told to use HTTPS only (HSTS).
    secure_cookies: bool = False
    policy: AccountPolicy = field(default=DEFAULT_POLICY)
    # The reverse proxies whose X-Forwarded-For names the client; none by default.
    trusted_proxies: tuple[Network, ...] = ()
    # Seconds any one database statement of a request may run.
    query_timeout: float = DEFAULT_QUERY_TIMEOUT

    @classmethod
    def load(
        cls,
        *,
        assets_dir: Path | None = None,
        geo_dir: Path | None = None,
        tile_url: str | None = None,
        tile_attribution: str | None = None,
        secure_cookies: bool = False,
        policy: AccountPolicy = DEFAULT_POLICY,
        forwarded_allow_ips: str | None = None,
        query_timeout: float = DEFAULT_QUERY_TIMEOUT,
    ) -> WebSettings:
        """Arguments, then environment, then the installed defaults."""
        url = tile_url or os.environ.get(TILE_URL_ENV) or None
        if url is not None:
            tile_origin(url)
        proxies_text = forwarded_allow_ips or os.environ.get(FORWARDED_ALLOW_IPS_ENV) or None
        proxies: tuple[Network, ...] = ()
        if proxies_text is not None:
            try:
                proxies = parse_trusted_proxies(proxies_text)
            except ValueError as exc:
                raise AtalayaError(f"--forwarded-allow-ips: {exc}") from None
        return cls(
            assets_dir=assets_dir or default_assets_dir(),
            geo_dir=geo_dir or default_data_dir(),
            tile_url=url,
            tile_attribution=tile_attribution or os.environ.get(TILE_ATTRIBUTION_ENV) or None,
            secure_cookies=secure_cookies,
            policy=policy,
            trusted_proxies=proxies,
            query_timeout=query_timeout,
        )

    @property
    def spain_atlas(self) -> Path:
        return self.geo_dir / SPAIN_ATLAS_FILE

    @property
    def world_atlas(self) -> Path:
        return self.geo_dir / WORLD_ATLAS_MAP_FILE

    def check(self) -> None:
        """AtalayaError naming what is missing and how to install it, or a bad setting."""
        if not 0 < self.query_timeout <= 3600:
            raise AtalayaError("--query-timeout must be between 0 and 3600 seconds")
        for probe in _PROBES:
            if not (self.assets_dir / probe).is_file():
                raise AtalayaError(
                    f"web assets missing ({self.assets_dir / probe}): run scripts/setup.sh, "
                    f"or point {ASSETS_ENV} at an installed data/web/node_modules"
                )
        for atlas in (self.spain_atlas, self.world_atlas):
            if not atlas.is_file():
                raise AtalayaError(
                    f"map boundaries missing ({atlas}): run scripts/setup.sh, "
                    "or point ATALAYA_GEO_DATA at an installed data/geo/node_modules"
                )
