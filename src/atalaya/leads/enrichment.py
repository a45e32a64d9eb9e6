"""Address facts for lead building, read from the enrichment table."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Engine, func, select

from atalaya.enrich.record import Enrichment
from atalaya.enrich.store import enrichment_for_ips, enrichment_for_prefixes
from atalaya.leads.facts import IpFacts
from atalaya.store.tables import enrichment


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
        return f"enrichment:{self.data_version or '*'}:{count}:{latest}"
