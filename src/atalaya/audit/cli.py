"""`atalaya audit verify|head|rotate-key|show`."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from atalaya.audit.keys import AUDIT_KEY_FILE_ENV, append_new_key
from atalaya.audit.log import (
    AUDITOR_ROLE,
    NATIONAL_AUDITOR_ROLE,
    Action,
    Actor,
    AuditQuery,
    Outcome,
    local_details,
    log_event,
    read_audit,
    start_signing,
)
from atalaya.audit.verify import parse_anchor, verify
from atalaya.console import err, out, parse_instant, print_json, store_engine
from atalaya.errors import AtalayaError
from atalaya.store.tables import app_user, unit

app = typer.Typer(
    help="The audit log: verify its hash chain, sign it with a key, show it (auditors only).",
    no_args_is_help=True,
)


@app.command("verify")
def verify_command(
    ctx: typer.Context,
    anchor: Annotated[
        list[str] | None,
        typer.Option(
            "--anchor",
            help="SEQ:HASH from an earlier 'audit head', kept outside the database; repeatable.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check the whole hash chain: exit 0 when intact, 1 at the first bad record."""
    engine = store_engine(ctx)
    try:
        anchors = [parse_anchor(a) for a in anchor or []]
    except ValueError as exc:
        raise AtalayaError(str(exc)) from exc
    result = verify(engine, anchors)
    if as_json:
        print_json(
            {
                "ok": result.ok,
                "records": result.records,
                "first_bad_seq": result.first_bad_seq,
                "reason": result.reason,
                "head_seq": result.head_seq,
                "head_hash": result.head_hash,
                "key_id": result.key_id,
            }
        )
    if result.ok:
        signed = (
            f"signed with key {result.key_id}"
            if result.key_id
            else f"not signed with a key (see 'atalaya audit rotate-key' and {AUDIT_KEY_FILE_ENV})"
        )
        err.print(
            f"audit log intact: {result.records} records, head {result.head_seq}:{result.head_hash}"
            f", {signed}"
        )
        return
    err.print(f"[bold red]audit log broken[/] at record {result.first_bad_seq}: {result.reason}")
    raise typer.Exit(1)


@app.command("rotate-key")
def rotate_key_command(ctx: typer.Context) -> None:
    """Add a new key to the key file and sign the log with it from now on.

    The file is the one ATALAYA_AUDIT_KEY_FILE names (created, readable by
    its owner only, when missing); older keys stay in it so that the records
    they signed still verify. Run it once to start signing the log, and
    again whenever a key may have been seen by someone else.
    """
    engine = store_engine(ctx)
    name = os.environ.get(AUDIT_KEY_FILE_ENV)
    if not name:
        raise AtalayaError(
            f"set {AUDIT_KEY_FILE_ENV} to the key file's path (outside the database, "
            "readable by the application only) for every process that writes the log"
        )
    now = datetime.now(UTC)
    key = append_new_key(Path(name), now)
    with engine.begin() as conn:
        entry = start_signing(conn, now, local_details())
    seq = entry.fields.seq if entry is not None else "?"
    err.print(f"audit log signed with key {key.id} from record {seq}; the key is in {name}")


@app.command("head")
def head_command(ctx: typer.Context) -> None:
    """Print SEQ:HASH of the last record: keep it elsewhere, pass it to 'verify --anchor'."""
    engine = store_engine(ctx)
    result = verify(engine)
    if not result.ok:
        err.print(
            f"[bold red]audit log broken[/] at record {result.first_bad_seq}: {result.reason}"
        )
        raise typer.Exit(1)
    out.print(f"{result.head_seq}:{result.head_hash}")


def _reader(ctx: typer.Context, username: str) -> Actor:
    engine = store_engine(ctx)
    with engine.connect() as conn:
        row = conn.execute(
            select(
                app_user.c.id,
                app_user.c.username,
                app_user.c.role,
                app_user.c.disabled,
                unit.c.name,
            )
            .join(unit, unit.c.id == app_user.c.unit_id)
            .where(app_user.c.username == username.strip().lower())
        ).one_or_none()
    if row is None:
        raise AtalayaError(f"no user named {username!r} ('atalaya users list' shows them)")
    actor = Actor(user_id=row.id, username=row.username, unit=row.name, role=row.role)
    if row.disabled:
        log_event(
            engine,
            Action.AUDIT_READ,
            actor=actor,
            outcome=Outcome.DENIED,
            details={**local_details(), "reason": "disabled"},
        )
        raise AtalayaError(f"user {row.username} is disabled")
    return actor


@app.command("show")
def show_command(
    ctx: typer.Context,
    as_user: Annotated[
        str,
        typer.Option(
            "--as",
            help=f"Read as this user: a {AUDITOR_ROLE} reads their unit's records, a "
            f"{NATIONAL_AUDITOR_ROLE} every record; the read is logged.",
        ),
    ],
    since: Annotated[
        str | None, typer.Option("--since", help="Records at or after this UTC instant.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Records before this UTC instant.")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="Only this user's records.")] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="Only this action (login, view, export…).")
    ] = None,
    lead: Annotated[
        int | None,
        typer.Option(
            "--lead",
            min=1,
            max=2**63 - 1,
            help="Only records about this lead or that showed it (searches, maps, exports): "
            "who saw it.",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=100_000, help="At most this many.")
    ] = 1000,
    newest_first: Annotated[
        bool, typer.Option("--newest-first", help="Newest records first.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per record.")] = False,
) -> None:
    """Show audit records (auditors only; the read is itself recorded)."""
    # Options first: a mistyped one is named before the store is asked anything.
    since_at, until_at = parse_instant(since, "--since"), parse_instant(until, "--until")
    engine = store_engine(ctx)
    reader = _reader(ctx, as_user)
    query = AuditQuery(
        since=since_at,
        until=until_at,
        username=user.strip().lower() if user else None,
        action=action,
        lead_id=lead,
        limit=limit,
        newest_first=newest_first,
    )
    entries = read_audit(engine, reader, query, context=local_details())
    if as_json:
        for entry in entries:
            print_json(entry.as_dict())
        err.print(f"{len(entries)} records")
        return
    table = Table(show_edge=False, pad_edge=False)
    for name in ("seq", "at (UTC)", "user", "unit", "client", "action", "object", "outcome"):
        table.add_column(name, justify="right" if name == "seq" else "left", no_wrap=True)
    for entry in entries:
        f = entry.fields
        obj = f"{f.object_type}:{f.object_id}" if f.object_type else (f.object_id or "")
        table.add_row(
            str(f.seq),
            f"{f.at:%Y-%m-%d %H:%M:%S}",
            f.username or "",
            f.unit or "",
            f.client_address or "",
            f.action,
            obj,
            f.outcome,
        )
    out.print(table)
    err.print(f"{len(entries)} records")
