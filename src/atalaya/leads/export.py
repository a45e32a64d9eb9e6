"""Leads out of Atalaya: GeoJSON for maps, JSON lines and CSV for everything else.

Every format carries the computed score, the score in force (an analyst's
override where there is one) and the factors that made the computed score,
and the attribution of the location data where a lead has a place.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import IO, Any

from atalaya.csv_cells import neutralise_row
from atalaya.leads.config import DEFAULT_FACTORS, DEFAULT_FLAGS

CSV_FIELDS = (
    "id",
    "score",
    "computed_score",
    "override_score",
    "override_reason",
    "weights_version",
    "first_seen",
    "last_seen",
    "sightings",
    "presences",
    "addresses",
    "items",
    "known_files",
    "verified_items",
    "highest_category",
    "networks",
    "ip",
    "client",
    "country",
    "province_code",
    "province_name",
    "municipality_code",
    "municipality_name",
    "lat",
    "lon",
    "accuracy_km",
    "asn",
    "isp",
    "time_zone",
    "flags",
    "attribution",
)
# One column per factor's contribution, in a fixed order.
FACTOR_COLUMNS = tuple(sorted(DEFAULT_FACTORS)) + tuple(f"flag_{f}" for f in sorted(DEFAULT_FLAGS))


def write_jsonl(records: Iterable[dict[str, Any]], stream: IO[str]) -> int:
    count = 0
    for record in records:
        stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count


def write_csv(records: Iterable[dict[str, Any]], stream: IO[str]) -> int:
    header = list(CSV_FIELDS) + [f"factor_{name}" for name in FACTOR_COLUMNS]
    writer = csv.DictWriter(stream, fieldnames=header, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    count = 0
    for record in records:
        row = dict(record)
        override = record.get("override") or {}
        row["override_score"] = override.get("score")
        row["override_reason"] = override.get("reason")
        row["networks"] = " ".join(record["networks"])
        row["flags"] = " ".join(record["flags"])
        for factor in record.get("factors", []):
            row[f"factor_{factor['name']}"] = factor["contribution"]
        writer.writerow(neutralise_row(row))
        count += 1
    return count


def geojson_feature(record: dict[str, Any]) -> dict[str, Any]:
    """One lead as a GeoJSON Feature: a Point at its place (else null), the rest as properties."""
    geometry = None
    if record["lat"] is not None and record["lon"] is not None:
        geometry = {"type": "Point", "coordinates": [record["lon"], record["lat"]]}
    properties = {k: v for k, v in record.items() if k not in ("lat", "lon")}
    return {"type": "Feature", "id": record["id"], "geometry": geometry, "properties": properties}


def write_geojson(records: Iterable[dict[str, Any]], stream: IO[str]) -> int:
    """A FeatureCollection (RFC 7946), one Point per lead; no place, null geometry."""
    stream.write('{"type": "FeatureCollection", "features": [')
    count = 0
    attributions: set[str] = set()
    for record in records:
        if record.get("attribution"):
            attributions.add(record["attribution"])
        feature = geojson_feature(record)
        stream.write(("," if count else "") + "\n" + json.dumps(feature, ensure_ascii=False))
        count += 1
    # A foreign member (RFC 7946 section 6.1): whose location data this is.
    stream.write("\n], " + json.dumps({"attribution": sorted(attributions)})[1:] + "\n")
    return count
