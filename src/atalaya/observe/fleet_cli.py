"""`atalaya fleet status`: the observers sharing a watch list, and what each holds."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from atalaya.console import out, print_json, store_engine
from atalaya.observe.bittorrent.network import BITTORRENT
from atalaya.observe.leases import fleet_status

fleet_app = typer.Typer(
    help="A fleet of observers sharing one watch list on PostgreSQL.", no_args_is_help=True
)


@fleet_app.command("status")
def status(
    ctx: typer.Context,
    network: Annotated[
        str, typer.Option("--network", help="The network whose fleet to show.")
    ] = BITTORRENT.name,
    hours: Annotated[
        float,
        typer.Option("--hours", min=0.0, help="Show the observers heard from in this many hours."),
    ] = 24.0,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Who holds how many targets, their last heartbeat, and their sightings in the last hour."""
    now = datetime.now(UTC)
    fleet = fleet_status(store_engine(ctx), network, now, since=timedelta(hours=hours))
    if json_out:
        print_json({"network": fleet.network, "targets": fleet.targets, "held": fleet.held})
        for observer in fleet.observers:
            print_json(
                {
                    **asdict(observer),
                    "heartbeat_age_s": round((now - observer.heartbeat_at).total_seconds(), 1),
                }
            )
        return
    out.print(
        f"{fleet.network}: {fleet.targets} targets, {fleet.held} leased, "
        f"{fleet.targets - fleet.held} free or expired",
        markup=False,
    )
    table = Table(
        "observer",
        "host",
        "pid",
        "state",
        "leases",
        "last heartbeat",
        "sightings/h",
        "DHT node id",
        show_edge=False,
        pad_edge=False,
    )
    for o in fleet.observers:
        age = (now - o.heartbeat_at).total_seconds()
        table.add_row(
            o.run_id[:8],
            Text(o.host),
            str(o.pid),
            o.state,
            str(o.leases),
            f"{age:.0f} s ago",
            str(o.sightings_last_hour),
            (o.node_id or "")[:12],
        )
    out.print(table)
