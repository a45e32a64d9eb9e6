"""Enrichment: where an IP is, who serves it, which jurisdiction and time zone.

The read API other stages use; the modules stay importable on their own.
"""

from atalaya.enrich.record import Enrichment
from atalaya.enrich.store import (
    attribution_of,
    enrichment_for_ips,
    enrichment_for_prefixes,
    latest_data_version,
)
from atalaya.enrich.timezones import PlaceTimeZones, local_time

__all__ = [
    "Enrichment",
    "PlaceTimeZones",
    "attribution_of",
    "enrichment_for_ips",
    "enrichment_for_prefixes",
    "latest_data_version",
    "local_time",
]
