"""`atalaya enrich [--refresh]`, `atalaya enrich lookup IP…`, `atalaya enrich referrals`.

The data options belong to `atalaya enrich` itself and apply to its
sub-commands: `atalaya enrich --city-db lab-run/geo.mmdb lookup 127.77.0.10`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from atalaya.audit.log import Action, log_event
from atalaya.audit.purpose_cli import PurposeOption, read_details, require_named_case
from atalaya.console import err, out, print_json, progress, store_engine
from atalaya.enrich.record import Enrichment
from atalaya.enrich.settings import (
    ASN_ENV,
    ASN_FLAGS_ENV,
    CITY_ENV,
    COAST_ENV,
    COUNTRY_ENV,
    DATA_ENV,
    RANGES_ENV,
    SPAIN_ATLAS_ENV,
    WORLD_ATLAS_ENV,
    EnrichSettings,
)
from atalaya.enrich.store import (
    DEFAULT_BATCH,
    Referral,
    attribution_of,
    enrich_pending,
    latest_data_version,
    referral_addresses,
    referrals,
)
from atalaya.enrich.timezones import local_time
from atalaya.errors import AtalayaError

if TYPE_CHECKING:
    from atalaya.enrich.enricher import Enricher

app = typer.Typer(help="Enrichment: place, ISP, jurisdiction and time zone of sighting addresses.")
_SETTINGS_KEY = "atalaya.enrich.settings"


@app.callback(invoke_without_command=True)
def enrich(
    ctx: typer.Context,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Recompute every address, not only new ones.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
    city_db: Annotated[
        list[Path] | None,
        typer.Option(
            "--city-db",
            help=f"Location database (MaxMind format); repeat for several (env {CITY_ENV}).",
        ),
    ] = None,
    asn_db: Annotated[
        list[Path] | None,
        typer.Option(
            "--asn-db", help=f"ASN/ISP database (.mmdb) or ASN table (.csv) (env {ASN_ENV})."
        ),
    ] = None,
    geo_data: Annotated[
        Path | None,
        typer.Option(
            "--geo-data", help=f"Folder of the npm data (data/geo/node_modules) (env {DATA_ENV})."
        ),
    ] = None,
    spain_atlas: Annotated[
        Path | None,
        typer.Option("--spain-atlas", help=f"es-atlas TopoJSON (env {SPAIN_ATLAS_ENV})."),
    ] = None,
    world_atlas: Annotated[
        Path | None,
        typer.Option("--world-atlas", help=f"world-atlas TopoJSON (env {WORLD_ATLAS_ENV})."),
    ] = None,
    country: Annotated[
        str | None,
        typer.Option(
            "--country", help=f"Home jurisdiction; others are referrals (env {COUNTRY_ENV})."
        ),
    ] = None,
    coast_km: Annotated[
        float | None,
        typer.Option(
            "--coast-km", help=f"Points this close off a coast belong to it (env {COAST_ENV})."
        ),
    ] = None,
    ranges: Annotated[
        list[str] | None,
        typer.Option(
            "--ranges", help=f"FLAG=FILE of CIDR blocks, e.g. hosting=dc.txt (env {RANGES_ENV})."
        ),
    ] = None,
    asn_flags: Annotated[
        list[str] | None,
        typer.Option(
            "--asn-flags",
            help=f"FLAG=FILE of AS numbers, e.g. vpn=vpn-asns.txt (env {ASN_FLAGS_ENV}).",
        ),
    ] = None,
    batch: Annotated[int, typer.Option("--batch", help="Addresses per transaction.")] = (
        DEFAULT_BATCH
    ),
) -> None:
    """Enrich every sighting address not yet enriched with the current data."""
    settings = EnrichSettings.load(
        data_dir=geo_data,
        city_dbs=city_db or (),
        asn_dbs=asn_db or (),
        spain_atlas=spain_atlas,
        world_atlas=world_atlas,
        country=country,
        coast_km=coast_km,
        range_lists=ranges or (),
        asn_lists=asn_flags or (),
    )
    ctx.meta[_SETTINGS_KEY] = settings
    if ctx.invoked_subcommand is not None:
        return
    if batch < 1:
        raise AtalayaError("--batch must be at least 1")
    engine = store_engine(ctx)
    if err.is_terminal:
        err.print("loading enrichment data…")
    with _open_enricher(settings) as enricher, progress(disable=not err.is_terminal) as bar:
        task = bar.add_task("enriching addresses", total=None)
        report = enrich_pending(
            engine,
            enricher,
            refresh=refresh,
            batch_size=batch,
            on_start=lambda n: bar.update(task, total=n),
            on_batch=lambda k: bar.advance(task, k),
        )
    if as_json:
        print_json(report.as_json())
        return
    home = settings.country
    abroad = sum(n for c, n in report.countries.items() if c != home)
    out.print(
        f"{report.addresses:,} sighting addresses: {report.enriched:,} enriched "
        f"({report.refreshed:,} recomputed), {report.up_to_date:,} already up to date",
        markup=False,
    )
    out.print(
        f"  {report.countries.get(home, 0):,} in {home}, {abroad:,} for referral abroad or "
        f"unplaced, {report.not_found:,} not in the location data",
        markup=False,
    )
    out.print(f"  data version {report.data_version[:16]}", markup=False)
    out.print(f"  {report.attribution}", markup=False)


def _settings(ctx: typer.Context) -> EnrichSettings:
    parent = ctx.parent
    settings = parent.meta.get(_SETTINGS_KEY) if parent is not None else None
    if not isinstance(settings, EnrichSettings):
        settings = EnrichSettings.load()
    return settings


def _place(item: Enrichment) -> str:
    parts = [item.municipality_name or item.city, item.province_name or item.region, item.country]
    return ", ".join(p for p in parts if p) or "-"


@app.command("lookup")
def lookup(
    ctx: typer.Context,
    ips: Annotated[list[str], typer.Argument(help="Addresses to look up.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """Enrich addresses now, without the store: what the current data says."""
    with _open_enricher(_settings(ctx)) as enricher:
        items = enricher.enrich_many(ips)
        attribution = enricher.attribution
    for item in items:
        if as_json:
            print_json({**item.as_json(), "attribution": attribution})
            continue
        network = f"AS{item.asn} {item.isp or ''}".strip() if item.asn else (item.isp or "-")
        point = (
            f"{item.latitude:.4f},{item.longitude:.4f}"
            if item.latitude is not None and item.longitude is not None
            else "-"
        )
        radius = f" ±{item.accuracy_km:g} km" if item.accuracy_km is not None else ""
        flags = f" [{', '.join(item.flags)}]" if item.flags else ""
        out.print(
            f"{item.ip}  {_place(item)}  {point}{radius}  {network}  "
            f"{item.time_zone or '-'}{flags}",
            markup=False,
        )
    if not as_json:
        out.print(attribution, markup=False)


def _open_enricher(settings: EnrichSettings) -> Enricher:
    # Imported here: the enricher brings shapely and the atlas code, which only
    # the commands that enrich need, not every `atalaya` start.
    from atalaya.enrich.enricher import Enricher  # noqa: PLC0415

    return Enricher.open(settings)


def _times(value: datetime, zone: str | None) -> dict[str, str | None]:
    local = local_time(value, zone)
    return {"utc": value.isoformat(), "local": local.isoformat() if local else None}


@app.command("referrals")
def referrals_command(
    ctx: typer.Context,
    country: Annotated[
        str | None,
        typer.Option("--country", help="List this country's addresses (XX: unknown jurisdiction)."),
    ] = None,
    data_version: Annotated[
        str | None,
        typer.Option("--data-version", help="Of this data version (default: the latest run)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
    purpose: PurposeOption = None,
) -> None:
    """Sighting addresses outside the home jurisdiction, per country, for referral.

    The per-country counts are figures; listing one country's addresses
    (--country) reads personal data and needs --purpose, audited.
    """
    home = _settings(ctx).country
    base = read_details(purpose) if country is not None else None
    engine = store_engine(ctx)
    if base is not None:
        require_named_case(engine, base)
    with engine.connect() as conn:
        version = data_version or latest_data_version(conn)
        if version is None:
            raise AtalayaError("nothing enriched yet: run 'atalaya enrich' first")
        attribution = attribution_of(conn, version) or ""
        if country is None:
            rows = referrals(conn, home_country=home, data_version=version)
            _print_referrals(rows, home, version, attribution, as_json)
            return
        wanted = None if country.upper() == "XX" else country.upper()
        addresses = referral_addresses(conn, country=wanted, data_version=version)
    log_event(
        engine,
        Action.SEARCH,
        object_type="referrals",
        details={
            **(base or {}),
            "country": wanted or "XX",
            "data_version": version,
            "results": len(addresses),
        },
    )
    for entry in addresses:
        item = entry.enrichment
        record: dict[str, Any] = {
            **item.as_json(),
            "sightings": entry.sightings,
            "first_seen": _times(entry.first_seen, item.time_zone),
            "last_seen": _times(entry.last_seen, item.time_zone),
        }
        if as_json:
            print_json({**record, "attribution": attribution})
            continue
        local = record["last_seen"]["local"] or "-"
        out.print(
            f"{item.ip}  {_place(item)}  AS{item.asn or '-'} {item.isp or ''}  "
            f"{entry.sightings:,} sightings, last {entry.last_seen:%Y-%m-%d %H:%M:%S}Z "
            f"(local {local[:19]} {item.time_zone or ''})",
            markup=False,
        )
    if not as_json:
        out.print(attribution, markup=False)


def _print_referrals(
    rows: list[Referral], home: str, version: str, attribution: str, as_json: bool
) -> None:
    if as_json:
        for r in rows:
            print_json(
                {
                    "country": r.country,
                    "addresses": r.addresses,
                    "sightings": r.sightings,
                    "first_seen": r.first_seen.isoformat(),
                    "last_seen": r.last_seen.isoformat(),
                    "data_version": version,
                    "attribution": attribution,
                }
            )
        return
    if not rows:
        err.print(f"no sighting addresses outside {home}")
        return
    out.print(f"referrals (outside {home}), data version {version[:16]}:", markup=False)
    for r in rows:
        out.print(
            f"  {r.country or 'XX (unknown)'}: {r.addresses:,} addresses, "
            f"{r.sightings:,} sightings, {r.first_seen:%Y-%m-%d}..{r.last_seen:%Y-%m-%d}",
            markup=False,
        )
    out.print(attribution, markup=False)
