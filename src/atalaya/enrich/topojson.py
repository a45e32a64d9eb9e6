"""TopoJSON decoding: a topology's objects as plain coordinate geometries.

Follows the TopoJSON specification 1.0 (the format of the `es-atlas` and
`world-atlas` packages): quantized, delta-encoded arcs under a transform;
geometries that refer to arcs by index, `~i` for arc `i` reversed. Decoding
is sans-I/O (bytes in, values out) and bounded: every count has a limit and
every failure is a `TopoJSONError`.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

Position = tuple[float, float]
Ring = list[Position]


class TopoJSONError(ValueError):
    """The input is not a TopoJSON topology this decoder accepts."""


@dataclass(frozen=True)
class TopoJSONLimits:
    max_bytes: int = 64 << 20
    max_arcs: int = 2_000_000
    max_positions: int = 20_000_000  # over all arcs and points
    max_geometries: int = 2_000_000
    max_collection_depth: int = 8
    max_arcs_per_ring: int = 1_000_000


DEFAULT_LIMITS = TopoJSONLimits()

# Beyond this a quantized delta takes the slow path (floats, huge integers).
_MAX_QUANTIZED = 1 << 31
_LINE_TYPES = ("LineString", "MultiLineString")
_AREA_TYPES = ("Polygon", "MultiPolygon")
_POINT_TYPES = ("Point", "MultiPoint")


@dataclass(frozen=True)
class Geometry:
    """A decoded geometry. `coordinates` nests like GeoJSON's for its `type`:
    Point: Position; MultiPoint and LineString: list of positions;
    MultiLineString and Polygon: list of those; MultiPolygon: list of polygons.
    A GeometryCollection has `geometries` instead; a null geometry has type None."""

    type: str | None
    coordinates: Any = None
    geometries: tuple[Geometry, ...] = ()
    id: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def polygons(self) -> list[list[Ring]]:
        """The polygons of a Polygon or MultiPolygon (each: exterior ring, then holes)."""
        if self.type == "Polygon":
            return [self.coordinates]
        if self.type == "MultiPolygon":
            return list(self.coordinates)
        return []


@dataclass(frozen=True)
class Topology:
    objects: dict[str, Geometry]
    bbox: tuple[float, ...] | None = None


def _reject_constant(name: str) -> float:
    raise TopoJSONError(f"non-finite number {name} in TopoJSON")


def _number(value: Any, what: str) -> float:
    # bool is an int to Python, never a coordinate.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TopoJSONError(f"{what} must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        raise TopoJSONError(f"{what} is too large") from None
    if not math.isfinite(number):
        raise TopoJSONError(f"{what} must be finite")
    return number


def _pair(value: Any, what: str) -> Position:
    if not isinstance(value, list) or len(value) < 2:
        raise TopoJSONError(f"{what} must be a list of at least two numbers")
    return _number(value[0], what), _number(value[1], what)


@dataclass
class _Decoder:
    limits: TopoJSONLimits
    raw_arcs: list[Any] = field(default_factory=list)
    arcs: list[list[Position]] = field(default_factory=list)
    transform: tuple[float, float, float, float] | None = None
    positions: int = 0
    geometries: int = 0

    def count_positions(self, n: int) -> None:
        self.positions += n
        if self.positions > self.limits.max_positions:
            raise TopoJSONError(f"more than {self.limits.max_positions} positions")

    def read_transform(self, raw: Any) -> None:
        if raw is None:
            return
        if not isinstance(raw, dict):
            raise TopoJSONError("transform must be an object")
        kx, ky = _pair(raw.get("scale"), "transform.scale")
        dx, dy = _pair(raw.get("translate"), "transform.translate")
        self.transform = (kx, ky, dx, dy)

    def read_arcs(self, raw: Any) -> None:
        if not isinstance(raw, list):
            raise TopoJSONError("arcs must be a list")
        if len(raw) > self.limits.max_arcs:
            raise TopoJSONError(f"more than {self.limits.max_arcs} arcs")
        for i, arc in enumerate(raw):
            if not isinstance(arc, list) or len(arc) < 2:
                raise TopoJSONError(f"arc {i} must be a list of at least two positions")
            self.count_positions(len(arc))
        # Decoded when first used: objects not asked for cost nothing.
        self.raw_arcs = raw
        self.arcs = [[] for _ in raw]

    def arc(self, i: int) -> list[Position]:
        decoded = self.arcs[i]
        if not decoded:
            decoded = self.arcs[i] = self._arc_positions(self.raw_arcs[i], i)
        return decoded

    def _arc_positions(self, arc: list[Any], i: int) -> list[Position]:
        what = f"arc {i} position"
        if self.transform is None:
            return [_pair(p, what) for p in arc]
        kx, ky, dx, dy = self.transform
        x = y = 0.0
        out: list[Position] = []
        for p in arc:
            # Fast path for what quantized files hold: pairs of small integers.
            if (
                type(p) is list
                and len(p) >= 2
                and type(p[0]) is int
                and type(p[1]) is int
                and -_MAX_QUANTIZED < p[0] < _MAX_QUANTIZED
                and -_MAX_QUANTIZED < p[1] < _MAX_QUANTIZED
            ):
                x += p[0]
                y += p[1]
            else:
                qx, qy = _pair(p, what)
                x += qx
                y += qy
            out.append((x * kx + dx, y * ky + dy))
        if not all(map(math.isfinite, itertools.chain.from_iterable(out))):
            raise TopoJSONError(f"arc {i} leaves the range of finite numbers")
        return out

    def point(self, raw: Any) -> Position:
        x, y = _pair(raw, "point")
        if self.transform is None:
            return x, y
        kx, ky, dx, dy = self.transform
        out = (x * kx + dx, y * ky + dy)
        if not (math.isfinite(out[0]) and math.isfinite(out[1])):
            raise TopoJSONError("point leaves the range of finite numbers")
        return out

    def line(self, indexes: Any) -> list[Position]:
        if not isinstance(indexes, list) or not indexes:
            raise TopoJSONError("a line or ring must be a non-empty list of arc indexes")
        if len(indexes) > self.limits.max_arcs_per_ring:
            raise TopoJSONError(f"more than {self.limits.max_arcs_per_ring} arcs in one ring")
        points: list[Position] = []
        for index in indexes:
            if isinstance(index, bool) or not isinstance(index, int):
                raise TopoJSONError("arc indexes must be integers")
            arc_index = ~index if index < 0 else index
            if arc_index >= len(self.arcs):
                raise TopoJSONError(f"arc index {index} out of range ({len(self.arcs)} arcs)")
            arc = self.arc(arc_index)
            # Consecutive arcs share their joining position: keep it once.
            if points:
                points.pop()
            points.extend(reversed(arc) if index < 0 else arc)
        self.count_positions(len(points))
        return points

    def ring(self, indexes: Any) -> Ring:
        points = self.line(indexes)
        if points[0] != points[-1]:
            raise TopoJSONError("a polygon ring must end where it starts")
        # A degenerate ring (as topojson-client pads it) keeps geometry libraries happy.
        while len(points) < 4:
            points.append(points[0])
        return points

    def list_of(self, raw: Any, what: str) -> list[Any]:
        if not isinstance(raw, list):
            raise TopoJSONError(f"{what} must be a list")
        return raw

    def geometry(self, raw: Any, depth: int) -> Geometry:
        if not isinstance(raw, dict):
            raise TopoJSONError("a geometry must be an object")
        self.geometries += 1
        if self.geometries > self.limits.max_geometries:
            raise TopoJSONError(f"more than {self.limits.max_geometries} geometries")
        kind = raw.get("type")
        raw_id = raw.get("id")
        if raw_id is not None and (isinstance(raw_id, bool) or not isinstance(raw_id, str | int)):
            raise TopoJSONError("a geometry id must be a string or an integer")
        properties = raw.get("properties", {})
        if properties is None:
            properties = {}
        if not isinstance(properties, dict):
            raise TopoJSONError("geometry properties must be an object")
        gid = str(raw_id) if raw_id is not None else None
        if kind is None:
            return Geometry(None, id=gid, properties=properties)
        if kind == "GeometryCollection":
            if depth >= self.limits.max_collection_depth:
                raise TopoJSONError(
                    f"geometry collections nested deeper than {self.limits.max_collection_depth}"
                )
            members = self.list_of(raw.get("geometries"), "geometries")
            children = tuple(self.geometry(g, depth + 1) for g in members)
            return Geometry(kind, geometries=children, id=gid, properties=properties)
        coordinates: Any
        if kind in _POINT_TYPES:
            raw_coords = raw.get("coordinates")
            if kind == "Point":
                coordinates = self.point(raw_coords)
                self.count_positions(1)
            else:
                items = self.list_of(raw_coords, "MultiPoint coordinates")
                self.count_positions(len(items))
                coordinates = [self.point(p) for p in items]
        elif kind in _LINE_TYPES:
            arcs = raw.get("arcs")
            if kind == "LineString":
                coordinates = self.line(arcs)
            else:
                coordinates = [self.line(a) for a in self.list_of(arcs, "MultiLineString arcs")]
        elif kind in _AREA_TYPES:
            arcs = raw.get("arcs")
            if kind == "Polygon":
                coordinates = self.polygon(arcs)
            else:
                coordinates = [self.polygon(p) for p in self.list_of(arcs, "MultiPolygon arcs")]
        else:
            raise TopoJSONError(f"unknown geometry type {str(kind)[:40]!r}")
        return Geometry(kind, coordinates, id=gid, properties=properties)

    def polygon(self, raw: Any) -> list[Ring]:
        rings = self.list_of(raw, "Polygon arcs")
        if not rings:
            raise TopoJSONError("a polygon needs at least one ring")
        return [self.ring(r) for r in rings]


def decode(
    data: bytes,
    limits: TopoJSONLimits = DEFAULT_LIMITS,
    *,
    only: Collection[str] | None = None,
) -> Topology:
    """Decode a TopoJSON document (its objects named in `only`, or all of them);
    TopoJSONError on anything else."""
    if len(data) > limits.max_bytes:
        raise TopoJSONError(f"TopoJSON larger than {limits.max_bytes} bytes")
    try:
        text = data.decode("utf-8")
        raw = json.loads(text, parse_constant=_reject_constant)
    except TopoJSONError:
        raise
    except (UnicodeDecodeError, ValueError) as exc:
        raise TopoJSONError(f"not JSON: {exc}") from None
    except RecursionError:
        raise TopoJSONError("JSON nested too deeply") from None
    return decode_object(raw, limits, only=only)


def decode_object(
    raw: Any,
    limits: TopoJSONLimits = DEFAULT_LIMITS,
    *,
    only: Collection[str] | None = None,
) -> Topology:
    """Decode an already parsed TopoJSON value (see `decode`)."""
    if not isinstance(raw, dict) or raw.get("type") != "Topology":
        raise TopoJSONError("not a TopoJSON topology (type must be 'Topology')")
    decoder = _Decoder(limits)
    decoder.read_transform(raw.get("transform"))
    decoder.read_arcs(raw.get("arcs", []))
    objects = raw.get("objects")
    if not isinstance(objects, dict):
        raise TopoJSONError("objects must be an object")
    bbox: tuple[float, ...] | None = None
    raw_bbox = raw.get("bbox")
    if raw_bbox is not None:
        if not isinstance(raw_bbox, list) or len(raw_bbox) not in (4, 6):
            raise TopoJSONError("bbox must be a list of 4 or 6 numbers")
        bbox = tuple(_number(v, "bbox") for v in raw_bbox)
    if only is not None:
        missing = sorted(set(only) - set(objects))
        if missing:
            raise TopoJSONError(f"topology has no object {missing[0][:80]!r}")
    decoded = {
        str(name): decoder.geometry(obj, 0)
        for name, obj in objects.items()
        if only is None or name in only
    }
    return Topology(decoded, bbox)


def members(geometry: Geometry) -> Sequence[Geometry]:
    """The geometries of a collection, or the geometry itself."""
    if geometry.type == "GeometryCollection":
        return geometry.geometries
    return (geometry,)
