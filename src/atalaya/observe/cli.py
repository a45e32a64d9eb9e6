"""`atalaya sightings …`, and `atalaya watch <network>` for every registered network."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from atalaya.audit.log import Action, log_event
from atalaya.audit.purpose_cli import (
    PurposeOption,
    RecipientOption,
    disclosure_details,
    require_named_case,
)
from atalaya.console import err, parse_instant, store_engine
from atalaya.observe.registry import Network
from atalaya.observe.sightings import iter_export_rows, write_csv, write_jsonl
from atalaya.out_file import write_out_file

sightings_app = typer.Typer(help="Sightings: what the observers recorded.", no_args_is_help=True)


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


@sightings_app.command("export")
def export(
    ctx: typer.Context,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="Output format.")] = (
        ExportFormat.jsonl
    ),
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file instead of stdout.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only sightings at or after this UTC instant.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Only sightings before this UTC instant.")
    ] = None,
    purpose: PurposeOption = None,
    recipient: RecipientOption = None,
) -> None:
    """Export sightings, oldest first, with times in UTC (audited: purpose and recipient)."""
    base = disclosure_details(purpose, recipient)
    engine = store_engine(ctx)
    require_named_case(engine, base)
    rows = iter_export_rows(
        engine, since=parse_instant(since, "--since"), until=parse_instant(until, "--until")
    )
    writer = write_csv if fmt is ExportFormat.csv else write_jsonl
    if out is None:
        count = writer(rows, sys.stdout)
    else:
        count = write_out_file(out, lambda stream: writer(rows, stream))
    log_event(
        engine,
        Action.EXPORT,
        object_type="sightings",
        details={
            **base,
            "format": fmt.value,
            "out": str(out) if out is not None else "-",
            "filters": {"since": since, "until": until},
            "sightings": count,
        },
    )
    err.print(f"{count} sightings exported")


def build_watch_app(networks: Iterable[Network]) -> typer.Typer:
    """`atalaya watch`, with one sub-command per network: `atalaya watch <name>`."""
    watch_app = typer.Typer(help="Observe networks for watched items.", no_args_is_help=True)
    for network in networks:
        watch_app.command(network.name)(network.watch_command())
    return watch_app
