"""A small TopoJSON encoder for tests: made-up polygons as a topology.

Each ring becomes its own arc (no shared arcs); with `quantization` the arcs
are quantized and delta-encoded under a transform, as real files are.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

Ring = list[tuple[float, float]]


def encode(
    objects: dict[str, list[tuple[str, str, list[list[Ring]]]]],
    *,
    quantization: int | None = None,
) -> bytes:
    """`objects`: name -> [(id, name, polygons)], each polygon [exterior, holes…]."""
    rings = [
        ring
        for features in objects.values()
        for _, _, polygons in features
        for polygon in polygons
        for ring in polygon
    ]
    xs = [p[0] for r in rings for p in r] or [0.0]
    ys = [p[1] for r in rings for p in r] or [0.0]
    transform = None
    if quantization is not None:
        kx = (max(xs) - min(xs)) / (quantization - 1) or 1.0
        ky = (max(ys) - min(ys)) / (quantization - 1) or 1.0
        transform = {"scale": [kx, ky], "translate": [min(xs), min(ys)]}
    arcs: list[list[list[float]]] = []

    def arc_of(ring: Ring) -> int:
        if transform is None:
            arcs.append([[x, y] for x, y in ring])
        else:
            (kx, ky), (dx, dy) = transform["scale"], transform["translate"]
            q = [(round((x - dx) / kx), round((y - dy) / ky)) for x, y in ring]
            deltas = [list(q[0])] + [[b[0] - a[0], b[1] - a[1]] for a, b in itertools.pairwise(q)]
            arcs.append(deltas)
        return len(arcs) - 1

    out_objects: dict[str, Any] = {}
    for name, features in objects.items():
        geometries = []
        for gid, label, polygons in features:
            arc_polys = [[[arc_of(ring)] for ring in polygon] for polygon in polygons]
            geometries.append(
                {
                    "type": "MultiPolygon",
                    "id": gid,
                    "properties": {"name": label},
                    "arcs": arc_polys,
                }
            )
        out_objects[name] = {"type": "GeometryCollection", "geometries": geometries}
    topology: dict[str, Any] = {"type": "Topology", "objects": out_objects, "arcs": arcs}
    if transform is not None:
        topology["transform"] = transform
    return json.dumps(topology).encode()


def square(x: float, y: float, size: float) -> Ring:
    """A closed counter-clockwise square ring with its lower left corner at (x, y)."""
    return [(x, y), (x + size, y), (x + size, y + size), (x, y + size), (x, y)]
