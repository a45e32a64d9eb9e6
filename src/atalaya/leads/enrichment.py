"""Address facts for lead building, read from the enrichment table."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Engine, func, select

from atalaya.enrich.record import Enrichment
from atalaya.enrich.store import enrichment_for_ips, enrichment_for_prefixes
from atalaya.leads.facts import IpFacts
from atalaya.store.tables import enrichment
from atalaya.store.times import utc

_PREFIX = "enrichment"


def facts_of(item: Enrichment) -> IpFacts:
    return IpFacts(
        country=item.country,
        province_code=item.province_code,
        province_name=item.province_name,
        municipality_code=item.municipality_code,
        municipality_name=item.municipality_name,
        lat=item.latitude,
        lon=item.longitude,
        accuracy_km=item.accuracy_km,
        asn=item.asn,
        isp=item.isp,
        time_zone=item.time_zone,
        flags=frozenset(item.flags),
        version=item.data_version,
    )


class EnrichmentFacts:
    """Facts from `atalaya enrich` results: of `data_version`, else each
    address's most recent enrichment (as `enrichment_for_ips` chooses); an
    IPv6 prefix takes those of the lowest enriched address inside it."""

    def __init__(self, engine: Engine, data_version: str | None = None) -> None:
        self.engine = engine
        self.data_version = data_version

    def lookup(self, ips: Collection[str]) -> dict[str, IpFacts]:
        with self.engine.connect() as conn:
            found = enrichment_for_ips(conn, ips, data_version=self.data_version)
            found.update(enrichment_for_prefixes(conn, ips, data_version=self.data_version))
        return {ip: facts_of(item) for ip, item in found.items()}

    def fingerprint(self) -> str:
        """Changes when enrichment rows are added, removed or recomputed."""
        query = select(func.count(), func.max(enrichment.c.computed_at))
        if self.data_version is not None:
            query = query.where(enrichment.c.data_version == self.data_version)
        with self.engine.connect() as conn:
            count, latest = conn.execute(query).one()
        stamp = "" if latest is None else utc(latest).isoformat()
        return f"{_PREFIX}:{self.data_version or '*'}:{count}:{stamp}"

    def changed_since(self, fingerprint: str) -> set[str] | None:
        """The addresses enriched or re-enriched since `fingerprint` was taken.

        Rows are only added or recomputed (with a later `computed_at`) in the
        ordinary course, so the rows up to the old latest time must be exactly
        the old count: then only the later ones can differ. Anything else (a
        row removed, another data version, a fingerprint of another form)
        gives None, and the caller compares every address.
        """
        parts = fingerprint.split(":", 3)
        if len(parts) != 4 or parts[0] != _PREFIX or parts[1] != (self.data_version or "*"):
            return None
        try:
            old_count = int(parts[2])
            old_latest = utc(datetime.fromisoformat(parts[3])) if parts[3] else None
        except ValueError:
            return None
        if old_latest is None:
            return None if old_count else self._ips(None)
        scope = (
            [] if self.data_version is None else [enrichment.c.data_version == self.data_version]
        )
        with self.engine.connect() as conn:
            kept = conn.scalar(
                select(func.count()).where(enrichment.c.computed_at <= old_latest, *scope)
            )
        if kept != old_count:
            # A row removed or replaced, or a new one stamped no later than the
            # old latest time (a clock set back): what changed is unknown.
            return None
        return self._ips(old_latest)

    def _ips(self, since: datetime | None) -> set[str]:
        query = select(enrichment.c.ip).distinct()
        if since is not None:
            query = query.where(enrichment.c.computed_at > since)
        if self.data_version is not None:
            query = query.where(enrichment.c.data_version == self.data_version)
        with self.engine.connect() as conn:
            return set(conn.scalars(query))
