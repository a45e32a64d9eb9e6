"""`atalaya users add|list|disable|enable|unlock|passwd`; `atalaya units add|list|threshold|…`.

Every change is written to the audit log, attributed to the operating-system
user who ran the command (the CLI has no login: whoever can run it can
reach the database anyway).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from atalaya.accounts.passwords import check_new_password
from atalaya.accounts.units import Unit, add_unit, get_unit, list_units, set_urgent_score
from atalaya.accounts.users import (
    User,
    add_user,
    list_users,
    set_disabled,
    set_password,
    unlock_user,
)
from atalaya.accounts.visibility import claim_lead, release_claim, units_holding
from atalaya.audit.log import Action, local_details, lock_chain, record
from atalaya.console import err, out, print_json, store_engine
from atalaya.errors import AtalayaError
from atalaya.store import begin_write

users_app = typer.Typer(
    help="User accounts: who may log in to the web application.", no_args_is_help=True
)
units_app = typer.Typer(
    help="Units (agencies): the provinces they cover, their contact, their lead claims.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise AtalayaError("no password on standard input (--password-stdin reads one line)")
        return password
    prompted: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return prompted


def _user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "unit": user.unit_name,
        "role": user.role.value,
        "disabled": user.disabled,
        "failed_logins": user.failed_logins,
        "locked_until": user.locked_until.isoformat() if user.locked_until else None,
        "created_at": user.created_at.isoformat(),
    }


def _unit_json(unit: Unit) -> dict[str, Any]:
    return {
        "id": unit.id,
        "name": unit.name,
        "jurisdiction": list(unit.jurisdiction),
        "contact": unit.contact,
        "created_at": unit.created_at.isoformat(),
        "urgent_score": unit.urgent_score,
    }


PasswordStdin = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from the first line of stdin."),
]


@users_app.command("add")
def users_add(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="Login name (case-insensitive).")],
    unit: Annotated[str, typer.Option("--unit", help="The unit the user belongs to.")],
    role: Annotated[
        str,
        typer.Option(
            "--role",
            help="analyst, supervisor, auditor (its unit's audit records), national_auditor "
            "(every audit record) or administrator.",
        ),
    ],
    password_stdin: PasswordStdin = False,
) -> None:
    """Create a user; the password is asked for (or read from stdin)."""
    engine = store_engine(ctx)
    password = _read_password(password_stdin)
    check_new_password(password)
    now = datetime.now(UTC)
    with begin_write(engine) as conn:
        lock_chain(conn)
        user = add_user(conn, username, unit, role, password, now)
        record(
            conn,
            Action.USER_ADD,
            object_type="user",
            object_id=user.id,
            details={
                **local_details(),
                "username": user.username,
                "unit": user.unit_name,
                "role": user.role.value,
            },
            at=now,
        )
    err.print(f"user {user.username} added to {user.unit_name} as {user.role.value}")


@users_app.command("list")
def users_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every user with unit, role and state."""
    engine = store_engine(ctx)
    with engine.connect() as conn:
        users = list_users(conn)
    if as_json:
        for user in users:
            print_json(_user_json(user))
        return
    table = Table(show_edge=False, pad_edge=False)
    for name in ("user", "unit", "role", "state", "created (UTC)"):
        table.add_column(name)
    now = datetime.now(UTC)
    for user in users:
        state = "disabled" if user.disabled else "active"
        if user.locked_until is not None and user.locked_until > now:
            state += f", locked until {user.locked_until:%Y-%m-%d %H:%M}"
        table.add_row(
            user.username, user.unit_name, user.role.value, state, f"{user.created_at:%Y-%m-%d}"
        )
    out.print(table)
    err.print(f"{len(users)} users")


def _change_user(ctx: typer.Context, username: str, what: str, details: dict[str, Any]) -> User:
    engine = store_engine(ctx)
    now = datetime.now(UTC)
    with begin_write(engine) as conn:
        lock_chain(conn)
        if what == "disable":
            user = set_disabled(conn, username, True)
        elif what == "enable":
            user = set_disabled(conn, username, False)
        else:
            user = unlock_user(conn, username)
        record(
            conn,
            Action.USER_DISABLE if what == "disable" else Action.CHANGE,
            object_type="user",
            object_id=user.id,
            details={**local_details(), "username": user.username, "change": what, **details},
            at=now,
        )
    return user


UsernameArgument = Annotated[str, typer.Argument(help="The user's login name.")]


@users_app.command("disable")
def users_disable(ctx: typer.Context, username: UsernameArgument) -> None:
    """Stop a user from logging in and end their sessions."""
    user = _change_user(ctx, username, "disable", {})
    err.print(f"user {user.username} disabled; their sessions are ended")


@users_app.command("enable")
def users_enable(ctx: typer.Context, username: UsernameArgument) -> None:
    """Let a disabled user log in again."""
    user = _change_user(ctx, username, "enable", {})
    err.print(f"user {user.username} enabled")


@users_app.command("unlock")
def users_unlock(ctx: typer.Context, username: UsernameArgument) -> None:
    """Lift a lockout after failed logins."""
    user = _change_user(ctx, username, "unlock", {})
    err.print(f"user {user.username} unlocked")


@users_app.command("passwd")
def users_passwd(
    ctx: typer.Context, username: UsernameArgument, password_stdin: PasswordStdin = False
) -> None:
    """Set a user's password (their sessions end)."""
    engine = store_engine(ctx)
    password = _read_password(password_stdin)
    check_new_password(password)
    now = datetime.now(UTC)
    with begin_write(engine) as conn:
        lock_chain(conn)
        user = set_password(conn, username, password, now)
        record(
            conn,
            Action.CHANGE,
            object_type="user",
            object_id=user.id,
            details={**local_details(), "username": user.username, "change": "password"},
            at=now,
        )
    err.print(f"password of {user.username} changed; their sessions are ended")


@units_app.command("add")
def units_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The unit's name, unique.")],
    province: Annotated[
        list[str] | None,
        typer.Option(
            "--province",
            help="A province code it covers (INE, e.g. 28); repeat for more.",
            show_default=False,
        ),
    ] = None,
    contact: Annotated[
        str,
        typer.Option("--contact", help="Contact line shown to other units in a conflict."),
    ] = "",
) -> None:
    """Create a unit with its jurisdiction and contact line."""
    engine = store_engine(ctx)
    now = datetime.now(UTC)
    with begin_write(engine) as conn:
        lock_chain(conn)
        unit = add_unit(conn, name, province or [], contact, now)
        record(
            conn,
            Action.UNIT_ADD,
            object_type="unit",
            object_id=unit.id,
            details={**local_details(), **_unit_json(unit)},
            at=now,
        )
    codes = ", ".join(unit.jurisdiction) or "no province (claims only)"
    err.print(f"unit {unit.name} added: {codes}")


@units_app.command("list")
def units_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every unit with its jurisdiction and contact line."""
    engine = store_engine(ctx)
    with engine.connect() as conn:
        units = list_units(conn)
    if as_json:
        for unit in units:
            print_json(_unit_json(unit))
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("unit", "provinces", "urgent from", "contact"):
        table.add_column(column)
    for unit in units:
        table.add_row(
            unit.name, " ".join(unit.jurisdiction), f"{unit.urgent_score:g}", unit.contact
        )
    out.print(table)
    err.print(f"{len(units)} units")


@units_app.command("threshold")
def units_threshold(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The unit's name.")],
    score: Annotated[
        float,
        typer.Argument(
            help="Leads whose score in force is at least this are urgent for the unit (0-100).",
            show_default=False,
        ),
    ],
) -> None:
    """Set the unit's urgency threshold: its map, charts and override approvals follow it."""
    engine = store_engine(ctx)
    now = datetime.now(UTC)
    with begin_write(engine) as conn:
        lock_chain(conn)
        unit, before = set_urgent_score(conn, name, score)
        record(
            conn,
            Action.UNIT_CHANGE,
            object_type="unit",
            object_id=unit.id,
            details={**local_details(), "urgent_score": {"from": before, "to": unit.urgent_score}},
            at=now,
        )
    err.print(f"unit {unit.name}: leads scoring {unit.urgent_score:g} or more are urgent")


LeadArgument = Annotated[int, typer.Argument(help="The lead id.", show_default=False)]
UnitOption = Annotated[str, typer.Option("--unit", help="The unit's name.")]


@units_app.command("claim")
def units_claim(
    ctx: typer.Context,
    lead_id: LeadArgument,
    unit: UnitOption,
    by: Annotated[
        str | None, typer.Option("--by", help="Who claims it [default: the OS user].")
    ] = None,
) -> None:
    """Claim a lead for a unit (it then holds the lead wherever it is)."""
    engine = store_engine(ctx)
    now = datetime.now(UTC)
    who = by or str(local_details()["os_user"] or "cli")
    with begin_write(engine) as conn:
        lock_chain(conn)
        the_unit = get_unit(conn, unit)
        added = claim_lead(conn, lead_id, the_unit.id, who, now)
        holders = units_holding(conn, lead_id)
        record(
            conn,
            Action.LEAD_CLAIM,
            object_type="lead",
            object_id=lead_id,
            details={**local_details(), "unit": the_unit.name, "claimed_by": who, "new": added},
            at=now,
        )
    others = [h.name for h in holders if h.unit_id != the_unit.id]
    err.print(
        f"lead {lead_id} {'claimed' if added else 'was already claimed'} by {the_unit.name}"
        + (f"; also held by {', '.join(others)} (a conflict)" if others else "")
    )


@units_app.command("release")
def units_release(ctx: typer.Context, lead_id: LeadArgument, unit: UnitOption) -> None:
    """Withdraw a unit's claim on a lead."""
    engine = store_engine(ctx)
    now = datetime.now(UTC)
    with begin_write(engine) as conn:
        lock_chain(conn)
        the_unit = get_unit(conn, unit)
        removed = release_claim(conn, lead_id, the_unit.id)
        if not removed:
            raise AtalayaError(f"{the_unit.name} has no claim on lead {lead_id}")
        record(
            conn,
            Action.LEAD_RELEASE,
            object_type="lead",
            object_id=lead_id,
            details={**local_details(), "unit": the_unit.name},
            at=now,
        )
    err.print(f"claim of {the_unit.name} on lead {lead_id} withdrawn")
