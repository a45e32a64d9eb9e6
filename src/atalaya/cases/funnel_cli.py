"""`atalaya funnel`: where the unit's cases die, in figures, per period and place."""

from __future__ import annotations

import csv
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import Connection

from atalaya.accounts import Permission, require
from atalaya.audit.log import local_details
from atalaya.cases.cli import AsOption, acting_user
from atalaya.cases.funnel import LABELS, Funnel, funnel, resolve_scope
from atalaya.cases.service import CaseAction, audited
from atalaya.console import err, out, parse_instant, print_json, store_engine
from atalaya.errors import AtalayaError


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _days(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _print_table(result: Funnel) -> None:
    scope = result.scope
    where = f"province {scope.province}" if scope.province else "every province"
    out.print(
        f"funnel {scope.since:%Y-%m-%d %H:%M} to {scope.until:%Y-%m-%d %H:%M} UTC, "
        f"{result.unit or 'every unit'}, {where}"
    )
    table = Table(show_edge=False, pad_edge=False)
    for name in ("step", "count", "conversion", "from", "median days"):
        table.add_column(name, justify="left" if name in ("step", "from") else "right")
    for s in result.steps:
        table.add_row(
            LABELS[s.name],
            str(s.count),
            _percent(s.conversion),
            LABELS[s.base] if s.base else "",
            _days(s.median_days),
        )
    out.print(table)
    out.print(f"leads lost to the retention clock: {result.lost_to_retention}")
    weeks = Table(show_edge=False, pad_edge=False)
    for name in ("week of (UTC)", "addresses", "change"):
        weeks.add_column(name, justify="left" if name.startswith("week") else "right")
    for w in result.weeks:
        mark = " (partial)" if w.partial else ""
        weeks.add_row(f"{w.start:%Y-%m-%d}{mark}", str(w.addresses), _signed(w.change))
    out.print(weeks)


def _signed(value: float | None) -> str:
    return "" if value is None else f"{value:+.1%}"


def funnel_command(
    ctx: typer.Context,
    as_user: AsOption,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="From this UTC date or time (default: 13 weeks ago).",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            help="Up to this UTC date or time, excluded (default: now).",
            show_default=False,
        ),
    ] = None,
    province: Annotated[
        str | None,
        typer.Option(
            "--province", help="Only this province (INE code, like 28).", show_default=False
        ),
    ] = None,
    unit: Annotated[
        str | None,
        typer.Option(
            "--unit", help='This unit\'s figures (default: yours), or "all".', show_default=False
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print as CSV.")] = False,
) -> None:
    """From addresses detected to accusations: counts, conversion and median days at
    each step, leads lost to the retention clock, and the weekly detection trend."""
    if as_json and as_csv:
        raise AtalayaError("choose one of --json and --csv")
    engine = store_engine(ctx)
    user = acting_user(engine, as_user)
    now = datetime.now(UTC)
    start = parse_instant(since, "--since")
    end = parse_instant(until, "--until")

    def work(conn: Connection) -> tuple[Funnel, dict[str, Any]]:
        require(user.role, Permission.VIEW_LEADS)
        scope, name = resolve_scope(
            conn,
            (user.unit_id, user.unit_name),
            since=start,
            until=end,
            province=province,
            unit=unit,
            now=now,
        )
        result = funnel(conn, scope, now, unit_name=name)
        return result, {
            "since": scope.since.isoformat(),
            "until": scope.until.isoformat(),
            "province": scope.province,
            "unit": name,
        }

    result = audited(
        engine, user, CaseAction.FUNNEL, work, object_type="funnel", details=local_details()
    )
    if as_json:
        print_json(result.as_dict())
    elif as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerows(result.csv_rows())
    else:
        _print_table(result)
        err.print(f"{len(result.weeks)} weeks")
