"""A point exactly on a real province border of es-atlas, found from its arcs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from atalaya.enrich.settings import SPAIN_ATLAS_FILE


def border_point(data: Path) -> tuple[tuple[float, float], tuple[str, str], float, float]:
    """A vertex in the middle of an arc that two municipalities of different
    provinces share, and the direction across the arc there."""
    raw: dict[str, Any] = json.loads((data / SPAIN_ATLAS_FILE).read_bytes())
    users: dict[int, set[str]] = {}
    for g in raw["objects"]["municipalities"]["geometries"]:
        polygons = g["arcs"] if g["type"] == "MultiPolygon" else [g["arcs"]]
        for polygon in polygons:
            for ring in polygon:
                for index in ring:
                    users.setdefault(index if index >= 0 else ~index, set()).add(g["id"])
    (kx, ky), (dx, dy) = raw["transform"]["scale"], raw["transform"]["translate"]
    for index in sorted(users):
        codes = sorted(users[index])
        provinces = {c[:2] for c in codes}
        if len(codes) != 2 or len(provinces) != 2 or provinces & {"53", "54"}:
            continue
        arc = raw["arcs"][index]
        if len(arc) < 5:
            continue
        x = y = 0
        points = []
        for qx, qy in arc:
            x, y = x + qx, y + qy
            points.append((x * kx + dx, y * ky + dy))
        mid = len(points) // 2
        (x0, y0), (x1, y1) = points[mid], points[mid + 1]
        length = math.hypot(x1 - x0, y1 - y0)
        return points[mid], (codes[0], codes[1]), (y0 - y1) / length, (x1 - x0) / length
    raise AssertionError("no province border arc found")
