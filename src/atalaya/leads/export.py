"""Leads out of Atalaya: GeoJSON for maps, JSON lines and CSV for everything else.

Every format carries the computed score, the score in force (an analyst's
override where there is one) and the factors that made the computed score,
and the attribution of the location data where a lead has a place. The
command line and the web application both export through this module, with
the records `atalaya.leads.query` makes: one column list for every export.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
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
CSV_HEADER = CSV_FIELDS + tuple(f"factor_{name}" for name in FACTOR_COLUMNS)
# Streamed parts are cut at about this many characters.
_PART = 65_536


def write_jsonl(records: Iterable[dict[str, Any]], stream: IO[str]) -> int:
    count = 0
    for record in records:
        stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count


def csv_row(record: dict[str, Any]) -> dict[str, Any]:
    """A record as one CSV row: lists joined, factors spread, cells neutralised."""
    row = dict(record)
    override = record.get("override") or {}
    row["override_score"] = override.get("score")
    row["override_reason"] = override.get("reason")
    row["networks"] = " ".join(record["networks"])
    row["flags"] = " ".join(record["flags"])
    for factor in record.get("factors", []):
        row[f"factor_{factor['name']}"] = factor["contribution"]
    return neutralise_row(row)


def csv_parts(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The CSV text (header first) in parts of about 64 KiB, for streaming."""
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=CSV_HEADER, lineterminator="\n", extrasaction="ignore"
    )
    writer.writeheader()
    for record in records:
        writer.writerow(csv_row(record))
        if buffer.tell() > _PART:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def write_csv(records: Iterable[dict[str, Any]], stream: IO[str]) -> int:
    count = 0

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal count
        for record in records:
            count += 1
            yield record

    for part in csv_parts(counted()):
        stream.write(part)
    return count


# A lead's sightings (atalaya.leads.dossier.sighting_record), one row each:
# what a request for subscriber data needs, in this order.
SIGHTING_FIELDS = (
    "id",
    "seen_at",
    "local",
    "time_zone",
    "ip",
    "port",
    "network",
    "item_kind",
    "item_value",
    "advertised_name",
    "found_by",
    "client",
    "peer_id",
    "file_key",
    "category",
    "hash_set",
    "hash_set_source",
    "hash_set_sha256",
    "source_label",
    "proof",
    "proof_kind",
    "pieces_verified",
    "pieces_failed",
    "piece_indices",
    "bytes_downloaded",
    "clock_offset_s",
    "observer",
)


def sighting_csv_parts(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A lead's sightings as CSV (header first), in parts; cells neutralised."""
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=SIGHTING_FIELDS, lineterminator="\n", extrasaction="ignore"
    )
    writer.writeheader()
    for record in records:
        row = dict(record)
        if row.get("piece_indices") is not None:
            row["piece_indices"] = " ".join(str(i) for i in row["piece_indices"])
        writer.writerow(neutralise_row(row))
        if buffer.tell() > _PART:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def sighting_json_parts(lead: dict[str, Any], records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """One JSON document: the lead's record, then its sightings, streamed."""
    yield '{"lead": ' + json.dumps(lead, ensure_ascii=False) + ', "sightings": ['
    for count, record in enumerate(records):
        yield (
            ("," if count else "")
            + "\n"
            + json.dumps({k: record.get(k) for k in SIGHTING_FIELDS}, ensure_ascii=False)
        )
    yield "\n]}\n"


def geojson_feature(record: dict[str, Any]) -> dict[str, Any]:
    """One lead as a GeoJSON Feature: a Point at its place (else null), the rest as properties."""
    geometry = None
    if record["lat"] is not None and record["lon"] is not None:
        geometry = {"type": "Point", "coordinates": [record["lon"], record["lat"]]}
    properties = {k: v for k, v in record.items() if k not in ("lat", "lon")}
    return {"type": "Feature", "id": record["id"], "geometry": geometry, "properties": properties}


def geojson_parts(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A FeatureCollection (RFC 7946) in parts, one Point per lead; no place,
    null geometry; the records' attributions as a foreign member at the end."""
    yield '{"type": "FeatureCollection", "features": ['
    attributions: set[str] = set()
    for count, record in enumerate(records):
        if record.get("attribution"):
            attributions.add(record["attribution"])
        feature = geojson_feature(record)
        yield ("," if count else "") + "\n" + json.dumps(feature, ensure_ascii=False)
    # A foreign member (RFC 7946 section 6.1): whose location data this is.
    yield "\n], " + json.dumps({"attribution": sorted(attributions)})[1:] + "\n"


def write_geojson(records: Iterable[dict[str, Any]], stream: IO[str]) -> int:
    count = 0

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal count
        for record in records:
            count += 1
            yield record

    for part in geojson_parts(counted()):
        stream.write(part)
    return count
