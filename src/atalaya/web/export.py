"""A selection of leads as the web application exports it: CSV or GeoJSON, streamed.

The columns are the list's (score in force, computed score, whether an
analyst overrode it, place, ISP, flags…); GeoJSON carries the location
data's attribution as a foreign member, as `atalaya leads export` does.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from typing import Any

from atalaya.csv_cells import neutralise_row
from atalaya.leads.export import geojson_feature
from atalaya.web.selection import LeadRow


def row_record(r: LeadRow) -> dict[str, Any]:
    return {
        "id": r.id,
        "score": r.score,
        "computed_score": r.computed_score,
        "overridden": r.overridden,
        "first_seen": r.first_seen.isoformat(),
        "last_seen": r.last_seen.isoformat(),
        "sightings": r.sightings,
        "known_files": r.known_files,
        "verified_items": r.verified_items,
        "highest_category": r.category_label,
        "networks": list(r.networks),
        "ip": r.ip,
        "country": r.country,
        "province_code": r.province_code,
        "province_name": r.province_name,
        "municipality_code": r.municipality_code,
        "municipality_name": r.municipality_name,
        "lat": r.lat,
        "lon": r.lon,
        "isp": r.isp,
        "asn": r.asn,
        "flags": list(r.flags),
        "time_zone": r.time_zone,
    }


CSV_FIELDS = (
    "id",
    "score",
    "computed_score",
    "overridden",
    "first_seen",
    "last_seen",
    "sightings",
    "known_files",
    "verified_items",
    "highest_category",
    "networks",
    "ip",
    "country",
    "province_code",
    "province_name",
    "municipality_code",
    "municipality_name",
    "lat",
    "lon",
    "isp",
    "asn",
    "flags",
    "time_zone",
)


def csv_lines(records: Sequence[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(
            neutralise_row(
                {
                    **record,
                    "networks": " ".join(record["networks"]),
                    "flags": " ".join(record["flags"]),
                }
            )
        )
        if buffer.tell() > 65_536:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def geojson_parts(records: Sequence[dict[str, Any]], attributions: list[str]) -> Iterator[str]:
    yield '{"type": "FeatureCollection", "features": ['
    for i, record in enumerate(records):
        yield ("," if i else "") + "\n" + json.dumps(geojson_feature(record), ensure_ascii=False)
    yield "\n], " + json.dumps({"attribution": attributions})[1:] + "\n"
