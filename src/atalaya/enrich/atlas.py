"""Jurisdiction of a point: the Spanish municipality and province, or the country.

Spain's municipalities come from `es-atlas` (IGN boundaries, INE codes; the
province is the first two digits), every other country from `world-atlas`
(Natural Earth, ISO 3166-1 numeric ids). Both are held as shapely polygons
under an STRtree.

Rules, in order (each tested):
- A point covered by municipalities (boundary included) gets the one with the
  lowest INE code; if the covering municipalities lie in different provinces
  the place is flagged `province_border` (and gets the lowest province code),
  otherwise `municipality_border`. Land held in common by municipalities
  (INE 53xxx) counts only where no municipality proper covers the point; its
  province is the province polygon's.
- Otherwise, a point on another country's land (world-atlas) belongs to it.
- Otherwise (sea, or a gap between the two atlases' coastlines, which are
  simplified differently) the nearest municipality or country within
  `coast_km` takes it, flagged `offshore`. Distances are great-circle
  kilometres to the nearest point of the polygon; 5 km by default, well
  above the atlases' simplification (es-atlas is quantized to about 200 m)
  and well below the distance between two coasts.
- Otherwise the place has no jurisdiction (`unplaced`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import iso3166
import numpy as np
import shapely
import shapely.ops
from numpy.typing import NDArray

from atalaya.enrich.record import (
    FLAG_COUNTRY_BORDER,
    FLAG_MUNICIPALITY_BORDER,
    FLAG_OFFSHORE,
    FLAG_PROVINCE_BORDER,
    FLAG_UNPLACED,
)
from atalaya.enrich.topojson import Geometry, Topology, members

SPAIN = "ES"
# es-atlas includes Gibraltar under code 54 ("territory not associated with
# any province"): it is not Spain's jurisdiction.
_NOT_SPAIN_PROVINCES = {"54": "GI"}
DEFAULT_COAST_KM = 5.0
_EARTH_RADIUS_KM = 6371.0088
_KM_PER_DEGREE = math.pi * _EARTH_RADIUS_KM / 180.0


class AtlasError(ValueError):
    """An atlas decoded as TopoJSON but lacks what jurisdiction needs."""


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    geometry: shapely.Geometry


@dataclass(frozen=True)
class Place:
    """Where a point falls. `country` is ISO 3166-1 alpha-2 or None."""

    country: str | None
    province_code: str | None = None
    province_name: str | None = None
    municipality_code: str | None = None
    municipality_name: str | None = None
    flags: frozenset[str] = frozenset()


def haversine_km(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def _shape(geometry: Geometry) -> shapely.Geometry | None:
    polygons = []
    for rings in geometry.polygons:
        # Quantization collapses small rings to lines or points: they hold nothing.
        kept = [r for r in rings if len(set(r)) >= 3]
        if kept and kept[0] is rings[0]:
            shell, *holes = (np.array(r, dtype=float) for r in kept)
            polygons.append(shapely.Polygon(shell, holes))
    if not polygons:
        return None
    shape = polygons[0] if len(polygons) == 1 else shapely.MultiPolygon(polygons)
    if not shape.is_valid:
        # Quantized boundaries self-touch at a few points; buffer(0) repairs
        # that (several times faster than make_valid on world-atlas).
        shape = shapely.buffer(shape, 0)
    return shape


class AreaIndex:
    """Named polygons under an STRtree: which cover a point, which is nearest."""

    def __init__(self, areas: Sequence[Area]) -> None:
        self.areas = list(areas)
        self._geometries: NDArray[np.object_] = np.array(
            [a.geometry for a in self.areas], dtype=object
        )
        shapely.prepare(self._geometries)
        self.tree = shapely.STRtree(self._geometries)

    def __len__(self) -> int:
        return len(self.areas)

    def covering_many(
        self, points: NDArray[np.object_] | list[shapely.Geometry]
    ) -> list[list[int]]:
        """For each point, the indexes of the areas that cover it (boundary included)."""
        found: list[list[int]] = [[] for _ in range(len(points))]
        if len(points) and self.areas:
            points = np.asarray(points, dtype=object)
            # Bounding boxes first; then the exact test with the prepared areas
            # as the first argument (STRtree's own predicate would prepare the
            # points instead, and test big countries vertex by vertex).
            candidates = self.tree.query(points)
            if candidates.shape[1]:
                inside = shapely.intersects(self._geometries[candidates[1]], points[candidates[0]])
                hits = candidates[:, inside]
                for point_index, area_index in zip(hits[0].tolist(), hits[1].tolist(), strict=True):
                    found[point_index].append(area_index)
        return found

    def nearest_within(self, lon: float, lat: float, km: float) -> tuple[int, float] | None:
        """The area nearest to the point and its distance, if within `km` great-circle km."""
        if not self.areas or km <= 0:
            return None
        point = shapely.Point(lon, lat)
        # A longitude degree shrinks towards the poles: search wide enough.
        shrink = max(math.cos(math.radians(lat)), 0.01)
        degrees = km / (_KM_PER_DEGREE * shrink)
        candidates = self.tree.query(point, predicate="dwithin", distance=degrees)
        best: tuple[float, int] | None = None
        for index in sorted(candidates.tolist()):
            near = shapely.ops.nearest_points(self.areas[index].geometry, point)[0]
            distance = haversine_km(lon, lat, near.x, near.y)
            if distance <= km and (best is None or distance < best[0]):
                best = (distance, index)
        return (best[1], best[0]) if best is not None else None


def _name(geometry: Geometry) -> str:
    name = geometry.properties.get("name")
    return str(name)[:200] if name is not None else ""


def municipality_areas(topology: Topology, object_name: str = "municipalities") -> list[Area]:
    """es-atlas municipalities: 5-digit INE code ids and names."""
    if object_name not in topology.objects:
        raise AtlasError(f"the Spanish atlas has no {object_name!r} object")
    areas = []
    for geometry in members(topology.objects[object_name]):
        code = geometry.id
        if code is None or len(code) != 5 or not code.isdigit():
            raise AtlasError(f"municipality id {str(code)[:20]!r} is not a 5-digit INE code")
        shape = _shape(geometry)
        if shape is not None:
            areas.append(Area(code, _name(geometry), shape))
    if not areas:
        raise AtlasError("the Spanish atlas has no municipality polygons")
    return areas


def province_areas(topology: Topology, object_name: str = "provinces") -> list[Area]:
    """es-atlas provinces: 2-digit INE code ids and names."""
    if object_name not in topology.objects:
        raise AtlasError(f"the Spanish atlas has no {object_name!r} object")
    areas = []
    for geometry in members(topology.objects[object_name]):
        code = geometry.id
        if code is None or len(code) != 2 or not code.isdigit():
            raise AtlasError(f"province id {str(code)[:20]!r} is not a 2-digit INE code")
        shape = _shape(geometry)
        if shape is not None:
            areas.append(Area(code, _name(geometry), shape))
    return areas


def country_areas(topology: Topology, object_name: str = "countries") -> list[Area]:
    """world-atlas countries, keyed by ISO alpha-2 (areas without a known code skipped)."""
    if object_name not in topology.objects:
        raise AtlasError(f"the world atlas has no {object_name!r} object")
    areas = []
    for geometry in members(topology.objects[object_name]):
        if geometry.id is None:
            continue  # disputed or unassigned areas (Natural Earth gives them no code)
        country = iso3166.countries_by_numeric.get(geometry.id.zfill(3))
        shape = _shape(geometry)
        if country is None or shape is None:
            continue
        areas.append(Area(country.alpha2, _name(geometry) or country.name, shape))
    if not areas:
        raise AtlasError("the world atlas has no country polygons with ISO codes")
    return areas


class Jurisdictions:
    """Locates points; see the module docstring for the rules."""

    def __init__(
        self,
        municipalities: Sequence[Area],
        provinces: Sequence[Area],
        countries: Sequence[Area],
        *,
        coast_km: float = DEFAULT_COAST_KM,
    ) -> None:
        self.municipalities = AreaIndex(municipalities)
        self.provinces = AreaIndex(provinces)
        self.province_names = {a.code: a.name for a in provinces}
        # Spain's own polygon in the world atlas is coarser than es-atlas:
        # es-atlas alone decides what is Spain.
        self.countries = AreaIndex([c for c in countries if c.code != SPAIN])
        self.coast_km = coast_km

    def locate(self, lon: float, lat: float) -> Place:
        return self.locate_many([(lon, lat)])[0]

    def locate_many(self, points: Iterable[tuple[float, float]]) -> list[Place]:
        """One Place per (lon, lat), in order."""
        coords = list(points)
        geoms: NDArray[np.object_] = np.asarray(
            shapely.points(np.array(coords, dtype=float).reshape(-1, 2)), dtype=object
        )
        in_spain = self.municipalities.covering_many(geoms)
        places: list[Place | None] = [None] * len(coords)
        rest = []
        for i, hits in enumerate(in_spain):
            if hits:
                places[i] = self._municipality_place(geoms[i], hits)
            else:
                rest.append(i)
        if rest:
            abroad = self.countries.covering_many(geoms[rest])
            for i, hits in zip(rest, abroad, strict=True):
                if hits:
                    places[i] = self._country_place(hits)
                else:
                    places[i] = self._offshore_place(*coords[i])
        return [p for p in places if p is not None]

    def _municipality_place(self, point: shapely.Geometry, hits: list[int]) -> Place:
        areas = [self.municipalities.areas[h] for h in hits]
        # Land held in common by several municipalities (INE code 53xxx)
        # yields to a municipality proper that also covers the point.
        proper = [a for a in areas if a.code[:2] in self.province_names]
        candidates = proper or areas
        area = min(candidates, key=lambda a: a.code)
        provinces = {a.code[:2] for a in proper}
        if not proper:
            provinces = {
                self.provinces.areas[h].code for h in self.provinces.covering_many([point])[0]
            }
        flags: set[str] = set()
        if len(provinces) > 1:
            flags.add(FLAG_PROVINCE_BORDER)
        elif len(candidates) > 1:
            flags.add(FLAG_MUNICIPALITY_BORDER)
        province = min(provinces) if provinces else None
        return self._spanish(area, province, frozenset(flags))

    def _spanish(self, area: Area, province: str | None, flags: frozenset[str]) -> Place:
        other = _NOT_SPAIN_PROVINCES.get(province or "")
        if other is not None:
            return Place(other, flags=flags)
        return Place(
            SPAIN,
            province_code=province,
            province_name=self.province_names.get(province or ""),
            municipality_code=area.code,
            municipality_name=area.name,
            flags=flags,
        )

    def _country_place(self, hits: list[int]) -> Place:
        codes = sorted({self.countries.areas[h].code for h in hits})
        flags = frozenset({FLAG_COUNTRY_BORDER}) if len(codes) > 1 else frozenset()
        return Place(codes[0], flags=flags)

    def _offshore_place(self, lon: float, lat: float) -> Place:
        offshore = frozenset({FLAG_OFFSHORE})
        spain = self.municipalities.nearest_within(lon, lat, self.coast_km)
        abroad = self.countries.nearest_within(lon, lat, self.coast_km)
        if spain is not None and (abroad is None or spain[1] <= abroad[1]):
            area = self.municipalities.areas[spain[0]]
            province: str | None = area.code[:2]
            if province not in self.province_names:
                near = self.provinces.nearest_within(lon, lat, self.coast_km)
                province = self.provinces.areas[near[0]].code if near is not None else None
            return self._spanish(area, province, offshore)
        if abroad is not None:
            return Place(self.countries.areas[abroad[0]].code, flags=offshore)
        return Place(None, flags=frozenset({FLAG_UNPLACED}))
