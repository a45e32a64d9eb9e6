"""Provinces and municipalities to pick from, named as the boundaries name them.

Read once from the es-atlas TopoJSON that also draws the base map, so the
names and INE codes in the filters are the ones the map outlines carry.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atalaya.errors import AtalayaError


@dataclass(frozen=True)
class Place:
    code: str
    name: str


def _sort_key(place: Place) -> str:
    decomposed = unicodedata.normalize("NFKD", place.name)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


class Places:
    def __init__(self, provinces: list[Place], municipalities: list[Place]) -> None:
        self.provinces = sorted(provinces, key=_sort_key)
        self._province_names = {p.code: p.name for p in provinces}
        self._by_province: dict[str, list[Place]] = {}
        for m in sorted(municipalities, key=_sort_key):
            self._by_province.setdefault(m.code[:2], []).append(m)
        self._municipality_names = {m.code: m.name for m in municipalities}

    @classmethod
    def load(cls, atlas: Path) -> Places:
        try:
            topology: Any = json.loads(atlas.read_bytes())
            objects = topology["objects"]
            provinces = [
                Place(str(g["id"]), str(g["properties"]["name"]))
                for g in objects["provinces"]["geometries"]
            ]
            municipalities = [
                Place(str(g["id"]), str(g["properties"]["name"]))
                for g in objects["municipalities"]["geometries"]
            ]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AtalayaError(
                f"cannot read provinces and municipalities from {atlas}: {exc} "
                "(run scripts/setup.sh)"
            ) from exc
        return cls(provinces, municipalities)

    def province_name(self, code: str | None) -> str | None:
        return self._province_names.get(code) if code else None

    def municipality_name(self, code: str | None) -> str | None:
        return self._municipality_names.get(code) if code else None

    def municipalities(self, province: str | None) -> list[Place]:
        return list(self._by_province.get(province, [])) if province else []
