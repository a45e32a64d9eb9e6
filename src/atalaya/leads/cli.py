"""`atalaya leads build|list|show|export|override`."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import Engine

from atalaya.audit.log import Action, local_details, log_event
from atalaya.audit.purpose_cli import (
    PurposeOption,
    RecipientOption,
    disclosure_details,
    read_details,
    require_named_case,
)
from atalaya.audit.shown import shown_details
from atalaya.console import err, out, parse_instant, print_json, store_engine
from atalaya.leads.build import build_leads
from atalaya.leads.config import CONFIG_ENV, load_config
from atalaya.leads.enrichment import EnrichmentFacts
from atalaya.leads.export import write_csv, write_geojson, write_jsonl
from atalaya.leads.query import (
    LeadFilter,
    LeadMovedError,
    iter_leads,
    lead_detail,
    override_score,
)
from atalaya.leads.scoring import check_override_score
from atalaya.out_file import write_out_file

app = typer.Typer(
    help="Leads: sightings grouped by device, scored by factors that explain themselves.",
    no_args_is_help=True,
)

# What later stages add to `leads show` (atalaya.cases adds the retention
# clock): each takes the engine, the lead's id and its record, and returns
# fields for --json and lines for the terminal.
ShowExtra = Callable[[Engine, int, dict[str, Any]], tuple[dict[str, Any], list[str]]]
SHOW_EXTRAS: list[ShowExtra] = []


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", help=f"TOML file with grouping settings and weights (env {CONFIG_ENV})."
    ),
]


@app.command("build")
def build_command(
    ctx: typer.Context,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Regroup every sighting instead of only new ones.")
    ] = False,
    config: ConfigOption = None,
    data_version: Annotated[
        str | None,
        typer.Option(
            "--data-version",
            help="Enrichment data version to place addresses with [default: each "
            "address's latest].",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Group new sightings into leads and score them (everything with --rebuild)."""
    engine = store_engine(ctx)
    settings = load_config(config)
    facts = EnrichmentFacts(engine, data_version)
    with err.status("building leads") as status:
        report = build_leads(
            engine,
            facts,
            settings,
            now=datetime.now(UTC),
            rebuild=rebuild,
            on_stage=status.update,
        )
    if as_json:
        print_json(report.as_dict())
        return
    how = f"{report.mode} build" + (f" ({report.reason})" if report.reason else "")
    out.print(
        f"{how}: {report.sightings} sightings read, {report.presences_written} presences "
        f"written, {report.presences_removed} replaced, {report.links_written} links, "
        f"{report.leads_written} leads written, {report.leads_removed} replaced, "
        f"{report.leads_rescored} rescored; {report.leads_total} leads in all "
        f"({report.seconds:.1f} s)"
    )
    if report.merges or report.splits or report.jurisdiction_changes:
        out.print(
            f"build {report.build_id}: {report.merges} leads merged into others, "
            f"{report.splits} split off, {report.jurisdiction_changes} changed provinces "
            "('atalaya leads show ID' shows a lead's history)"
        )
    if report.pending_ids:
        err.print(
            f"note: {report.pending_ids} sighting ids not yet visible; the next build looks again"
        )


def _filter(
    province: str | None,
    since: str | None,
    until: str | None,
    min_score: float | None,
    limit: int | None,
) -> LeadFilter:
    return LeadFilter(
        province=province,
        since=parse_instant(since, "--since"),
        until=parse_instant(until, "--until"),
        min_score=min_score,
        limit=limit,
    )


ProvinceOption = Annotated[
    str | None, typer.Option("--province", help="INE province code or name, e.g. 28 or Madrid.")
]
SinceOption = Annotated[
    str | None, typer.Option("--since", help="Only leads active at or after this UTC instant.")
]
UntilOption = Annotated[
    str | None, typer.Option("--until", help="Only leads active before this UTC instant.")
]
MinScoreOption = Annotated[
    float | None,
    typer.Option("--min-score", help="Only leads whose score in force is at least this."),
]


def _noting_ids(records: Iterable[dict[str, Any]], ids: list[int]) -> Iterator[dict[str, Any]]:
    """`records`, appending each one's id to `ids` as it goes by (for the audit record)."""
    for record in records:
        ids.append(int(record["id"]))
        yield record


def _filters_detail(
    province: str | None, since: str | None, until: str | None, min_score: float | None
) -> dict[str, Any]:
    return {"province": province, "since": since, "until": until, "min_score": min_score}


def _audit_shown(
    engine: Engine, action: str, base: dict[str, Any], details: dict[str, Any], ids: list[int]
) -> None:
    """Record what a command showed: who, for what, its filters and, compactly, which leads."""
    log_event(
        engine,
        action,
        object_type="leads",
        details={**base, **details, **shown_details(ids)},
    )


def _short(value: str | None) -> str:
    return value[:16].replace("T", " ") if value else ""


@app.command("list")
def list_command(
    ctx: typer.Context,
    province: ProvinceOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    min_score: MinScoreOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per lead.")] = False,
    purpose: PurposeOption = None,
) -> None:
    """Leads, highest score in force first."""
    base = read_details(purpose)
    engine = store_engine(ctx)
    require_named_case(engine, base)
    shown: list[int] = []
    records = _noting_ids(
        iter_leads(engine, _filter(province, since, until, min_score, limit)), shown
    )
    filters = _filters_detail(province, since, until, min_score)
    if as_json:
        count = 0
        for record in records:
            print_json(record)
            count += 1
        _audit_shown(engine, Action.SEARCH, base, {"filters": filters, "results": count}, shown)
        err.print(f"{count} leads" + (" (--limit reached)" if count == limit else ""))
        return
    table = Table(show_edge=False, pad_edge=False)
    for name in (
        "lead",
        "score",
        "computed",
        "last seen (UTC)",
        "place",
        "ISP",
        "sightings",
        "files",
        "flags",
    ):
        table.add_column(name, justify="right" if name in ("score", "computed") else "left")
    attributions: set[str] = set()
    count = overridden = 0
    for r in records:
        place = ", ".join(x for x in (r["municipality_name"], r["province_name"]) if x)
        isp = r["isp"] or (f"AS{r['asn']}" if r["asn"] is not None else "")
        score = f"{r['score']:.1f}" + ("*" if r["override"] else "")
        table.add_row(
            str(r["id"]),
            score,
            f"{r['computed_score']:.1f}",
            _short(r["last_seen"]),
            place or (r["country"] or "?"),
            isp,
            str(r["sightings"]),
            str(r["known_files"]),
            " ".join(r["flags"]),
        )
        if r["attribution"]:
            attributions.add(r["attribution"])
        count += 1
        overridden += bool(r["override"])
    out.print(table)
    _audit_shown(engine, Action.SEARCH, base, {"filters": filters, "results": count}, shown)
    err.print(
        f"{count} leads"
        + (" (--limit reached)" if count == limit else "")
        + ("; * score overridden by an analyst" if overridden else "")
    )
    for text in sorted(attributions):
        err.print(text)


@app.command("show")
def show_command(
    ctx: typer.Context,
    lead_id: Annotated[int, typer.Argument(help="The lead id.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    purpose: PurposeOption = None,
) -> None:
    """One lead: its score factor by factor, presences, links, overrides, claims, history.

    A lead merged into another is shown as the lead it went into, saying so.
    """
    base = read_details(purpose)
    engine = store_engine(ctx)
    require_named_case(engine, base)
    try:
        record = lead_detail(engine, lead_id)
    except LeadMovedError as moved:
        err.print(f"{moved}: showing lead {moved.current}")
        record = lead_detail(engine, moved.current)
        record["asked_for"] = {"id": moved.asked, "merged_into": moved.into, "build": moved.build}
    log_event(engine, Action.VIEW, object_type="lead", object_id=lead_id, details=base)
    lines: list[str] = []
    for extra in SHOW_EXTRAS:
        fields, more = extra(engine, int(record["id"]), record)
        record.update(fields)
        lines.extend(more)
    if as_json:
        print_json(record)
        return
    _print_detail(record)
    for line in lines:
        out.print(line)


def _print_detail(r: dict[str, Any]) -> None:
    out.print(
        f"lead {r['id']}: score {r['score']:.2f} (computed {r['computed_score']:.2f}, "
        f"weights {r['weights_version']})"
    )
    out.print(
        f"  {r['first_seen']} .. {r['last_seen']}, {r['sightings']} sightings, "
        f"{r['addresses']} addresses, {r['items']} items, {r['known_files']} known files"
    )
    factors = Table("factor", "raw", "value", "weight", "contribution", show_edge=False)
    for f in r["factors"]:
        factors.add_row(
            f["name"],
            f"{f['raw']:g}",
            f"{f['value']:.3f}",
            f"{f['weight']:g}",
            f"{f['contribution']:.2f}",
        )
    out.print(factors)
    for p in r["presences"]:
        out.print(
            f"  presence {p['id']}: {p['ip']} ports {p['ports']} {_short(p['first_seen'])} .. "
            f"{_short(p['last_seen'])}, {p['sightings']} sightings, opened by {p['opened_by']}"
        )
    for k in r["links"]:
        out.print(f"  link {k['presence_a']}-{k['presence_b']} {k['reason']}: {k['evidence']}")
    for o in r["overrides"]:
        on = f" on lead {o['lead_id']}" if o["lead_id"] != r["id"] else ""
        out.print(
            f"  override {o['score']:g}{on} by {o['analyst']} at {o['at']} "
            f"(computed then {o['computed_score']}): {o['reason']}"
        )
    for c in r["claims"]:
        on = f" on lead {c['made_on']}" if c["made_on"] != r["id"] else ""
        carried = (
            f", carried from lead {c['carried_from']} when it split"
            if c["carried_from"] is not None
            else ""
        )
        out.print(f"  claimed{on} by {c['unit']} ({c['claimed_by']}) at {c['claimed_at']}{carried}")
    for h in r["history"]:
        out.print(f"  build {h['build']} at {h['at']}: {h['text']}")
    if r["attribution"]:
        err.print(r["attribution"])


class ExportFormat(StrEnum):
    geojson = "geojson"
    jsonl = "jsonl"
    csv = "csv"


@app.command("export")
def export_command(
    ctx: typer.Context,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="Output format.")] = (
        ExportFormat.geojson
    ),
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write to this file instead of stdout.")
    ] = None,
    province: ProvinceOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    min_score: MinScoreOption = None,
    purpose: PurposeOption = None,
    recipient: RecipientOption = None,
) -> None:
    """Export leads with their factors: GeoJSON for a map, JSON lines or CSV."""
    base = disclosure_details(purpose, recipient)
    engine = store_engine(ctx)
    require_named_case(engine, base)
    shown: list[int] = []
    records = _noting_ids(
        iter_leads(engine, _filter(province, since, until, min_score, None), factors=True), shown
    )
    writer = {
        ExportFormat.geojson: write_geojson,
        ExportFormat.jsonl: write_jsonl,
        ExportFormat.csv: write_csv,
    }[fmt]
    if out_path is None:
        count = writer(records, sys.stdout)
    else:
        count = write_out_file(out_path, lambda stream: writer(records, stream))
    _audit_shown(
        engine,
        Action.EXPORT,
        base,
        {
            "format": fmt.value,
            "out": str(out_path) if out_path is not None else "-",
            "filters": _filters_detail(province, since, until, min_score),
            "leads": count,
        },
        shown,
    )
    err.print(f"{count} leads exported")


@app.command("override")
def override_command(
    ctx: typer.Context,
    lead_id: Annotated[int, typer.Argument(help="The lead id.", show_default=False)],
    score: Annotated[
        float, typer.Option("--score", help="The score to put in force, from 0 to 100.")
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why; kept with the override.")],
    analyst: Annotated[
        str | None,
        typer.Option(
            "--analyst", help="Who decides [default: the login name].", show_default=False
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the override as JSON.")] = False,
) -> None:
    """Put an analyst's score in force for a lead; the computed score stays on record."""
    engine = store_engine(ctx)
    who = analyst if analyst is not None else getpass.getuser()
    check_override_score(score)
    record = override_score(engine, lead_id, score, reason, who, now=datetime.now(UTC))
    log_event(
        engine,
        Action.CHANGE,
        object_type="lead",
        object_id=lead_id,
        details={**local_details(), "override": {"score": score, "reason": reason, "by": who}},
    )
    if as_json:
        print_json({"lead_id": lead_id, **record})
        return
    out.print(
        f"lead {lead_id}: score {record['score']:g} in force "
        f"(computed {record['computed_score']}), by {record['analyst']}"
    )
