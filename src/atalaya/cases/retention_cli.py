"""`atalaya retention rules set|show`, `hold`, `release`, `holds`, `run [--dry-run]`.

The rules and holds are the unit's configuration; each change is audited
with the OS account that made it (the CLI has no user). `run` prints what
it blocked, erased and listed for review, and `--dry-run` the same plan
without writing anything.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from atalaya.audit.log import local_details
from atalaya.cases.retention_rules import (
    RetentionRulesError,
    active_holds,
    current_rules,
    parse_rules,
    place_hold,
    release_hold,
    set_rules,
)
from atalaya.cases.retention_run import run_retention
from atalaya.console import err, out, parse_instant, print_json, store_engine

app = typer.Typer(
    help="Retention of personal data (LED art. 5): rules, legal holds, purges.",
    no_args_is_help=True,
)
rules_app = typer.Typer(help="The retention rules, versioned.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")

JsonOption = Annotated[bool, typer.Option("--json", help="Print as JSON.")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why; kept in the audit log.")]
TargetArgument = Annotated[
    str, typer.Argument(help="case:N or lead:N.", show_default=False, metavar="CASE|LEAD")
]


def _now(value: str | None = None) -> datetime:
    return parse_instant(value, "--now") or datetime.now(UTC)


@rules_app.command("set")
def rules_set_command(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The rules, TOML.", show_default=False)],
    reason: ReasonOption,
) -> None:
    """Store the rules in FILE as a new version (audited); the same rules again add nothing."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RetentionRulesError(f"cannot read {path}: {exc.strerror or exc}") from exc
    rules = parse_rules(data)
    stored, new = set_rules(
        store_engine(ctx), rules, reason=reason, now=_now(), context=local_details()
    )
    what = "now in force" if new else "unchanged, already in force"
    err.print(f"retention rules version {stored.version} {what} (sha256 {stored.sha256[:16]}…)")


@rules_app.command("show")
def rules_show_command(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The rules in force and their version."""
    with store_engine(ctx).connect() as conn:
        stored = current_rules(conn)
    if stored is None:
        raise RetentionRulesError("no retention rules are set: 'atalaya retention rules set FILE'")
    if as_json:
        print_json(stored.as_dict())
        return
    r = stored.rules
    out.print(f"version {stored.version}, set by {stored.set_by} at {stored.set_at.isoformat()}")
    out.print(
        f"  observations no lead or case was acted on: erased after {r.observation_erase_days} days"
    )
    out.print(f"  leads nobody acted on: up for review after {r.lead_review_days} days")
    out.print(
        f"  closed cases: blocked after {r.case_block_days} days, erased after {r.case_erase_days}"
    )


@app.command("hold")
def hold_command(ctx: typer.Context, target: TargetArgument, reason: ReasonOption) -> None:
    """Put a case or a lead under a legal hold: nothing it covers is blocked or erased."""
    hold = place_hold(store_engine(ctx), target, reason=reason, now=_now(), context=local_details())
    err.print(f"{hold.object_type}:{hold.object_id} is under a legal hold (hold {hold.id})")


@app.command("release")
def release_command(ctx: typer.Context, target: TargetArgument, reason: ReasonOption) -> None:
    """Release the legal hold on a case or a lead."""
    hold = release_hold(
        store_engine(ctx), target, reason=reason, now=_now(), context=local_details()
    )
    err.print(f"the hold on {hold.object_type}:{hold.object_id} is released")


@app.command("holds")
def holds_command(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The legal holds in force."""
    with store_engine(ctx).connect() as conn:
        holds = active_holds(conn)
    if as_json:
        print_json({"holds": [h.as_dict() for h in holds]})
        return
    for h in holds:
        out.print(
            f"{h.object_type}:{h.object_id}  since {h.placed_at.isoformat()} "
            f"by {h.placed_by}: {h.reason}"
        )
    if not holds:
        err.print("no legal holds")


@app.command("run")
def run_command(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be done; write nothing.")
    ] = False,
    now: Annotated[
        str | None,
        typer.Option(
            "--now", help="Apply the rules as at this instant (default: now).", hidden=True
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Apply the rules in force: block and erase what they say, audited; list leads to review."""
    p = run_retention(store_engine(ctx), _now(now), dry_run=dry_run, context=local_details())
    if as_json:
        print_json({**p.as_dict(), "dry_run": dry_run})
        return
    verb = "would be" if dry_run else "were"
    out.print(f"retention rules version {p.rules.version}{' (dry run)' if dry_run else ''}:")
    out.print(f"  {len(p.cases_to_block)} closed cases {verb} blocked")
    out.print(f"  {len(p.cases_to_erase)} closed cases {verb} erased")
    out.print(f"  {len(p.sightings_to_erase)} sightings {verb} erased")
    if p.cases_held or p.sightings_held:
        out.print(
            f"  kept by a legal hold: {len(p.cases_held)} cases, {p.sightings_held} sightings"
        )
    out.print(f"  {len(p.leads_for_review)} leads nobody acted on are due for review")
