"""`atalaya cases open|list|show|move|note|assign` and `atalaya deadlines`.

Every command acts as a user of the store (`--as USERNAME`, as `atalaya
audit show` does): the user's unit decides which leads and cases exist for
them, and the audit log records the user and the OS account that ran it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import Connection, Engine

from atalaya.accounts import Permission, User, find_user, require
from atalaya.audit.log import Action, Outcome, local_details, log_event
from atalaya.audit.purpose import PURPOSE_KEY, PurposeError, purpose_case
from atalaya.audit.purpose_cli import PurposeOption, read_details, require_named_case
from atalaya.audit.shown import shown_details
from atalaya.cases.answers import (
    Answer,
    parse_addressing,
    parse_outcome,
    parse_step,
    record_answer,
    record_step,
)
from atalaya.cases.deadlines import Clock, case_clock, lead_clock, preservations_due, upcoming
from atalaya.cases.identity import combination_details, combine
from atalaya.cases.records import (
    Case,
    CaseNotFoundError,
    assign_case,
    case_events,
    get_case,
    list_cases,
    move_case,
    note_case,
    open_case,
    pinned_sightings,
)
from atalaya.cases.service import CaseAction, audited
from atalaya.cases.states import LABELS, allowed, parse_state
from atalaya.console import err, out, parse_instant, print_json, store_engine
from atalaya.errors import N_, AtalayaError
from atalaya.leads import cli as leads_cli
from atalaya.store.tables import lead

app = typer.Typer(
    help="Cases: leads taken up by a unit, through the court up to the outcome.",
    no_args_is_help=True,
)

AsOption = Annotated[
    str,
    typer.Option(
        "--as",
        help="Act as this user: their unit's leads and cases only; the command is audited.",
        show_default=False,
    ),
]
CaseArgument = Annotated[
    int, typer.Argument(help="The case id.", min=1, max=2**31 - 1, show_default=False)
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print as JSON.")]


def acting_user(engine: Engine, username: str) -> User:
    """The user named by --as; AtalayaError (and a denied audit record) when disabled."""
    with engine.connect() as conn:
        user = find_user(conn, username)
    if user is None:
        raise AtalayaError(f"no user named {username!r} ('atalaya users list' shows them)")
    if user.disabled:
        log_event(
            engine,
            CaseAction.VIEW.value,
            actor=user.actor(),
            outcome=Outcome.DENIED,
            details={**local_details(), "reason": "disabled"},
        )
        raise AtalayaError(f"user {user.username} is disabled")
    return user


def _now() -> datetime:
    return datetime.now(UTC)


def require_held_purpose(
    engine: Engine, user: User, details: dict[str, Any], shown_case: int | None = None
) -> None:
    """PurposeError when a read is filed under a case the user's unit does not hold.

    A read for "case:N" must be for one of the unit's own cases: the audit
    trail would otherwise tie the read to another unit's investigation. The
    refusal is itself recorded (denied). A command that shows case N itself
    (`shown_case`) refuses another unit's case in its own audited work.
    """
    case_id = purpose_case(str(details.get(PURPOSE_KEY, "")))
    if case_id is None or case_id == shown_case:
        return
    with engine.connect() as conn:
        try:
            get_case(conn, user, case_id)
        except CaseNotFoundError:
            held = False
        else:
            held = True
    if held:
        return
    log_event(
        engine,
        Action.VIEW,
        actor=user.actor(),
        outcome=Outcome.DENIED,
        object_type="case",
        object_id=case_id,
        details={**details, "reason": "purpose names a case the unit does not hold"},
    )
    raise PurposeError(
        N_("the purpose names case %(case)s, which your unit does not hold"), case=case_id
    )


@app.command("open")
def open_command(
    ctx: typer.Context,
    lead_ids: Annotated[
        list[int],
        typer.Argument(help="The leads: one case each.", min=1, max=2**63 - 1, show_default=False),
    ],
    as_user: AsOption,
    reason: Annotated[str, typer.Option("--reason", help="Why the case is opened.")] = "",
    deadline: Annotated[
        str | None,
        typer.Option("--deadline", help="The unit's own due date (UTC).", show_default=False),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Open one case per lead, pinning each lead's sightings now (all or none)."""
    engine = store_engine(ctx)
    user = acting_user(engine, as_user)
    due = parse_instant(deadline, "--deadline")
    now = _now()
    ids = list(dict.fromkeys(lead_ids))

    def work(conn: Connection) -> tuple[list[Case], dict[str, Any]]:
        cases = [open_case(conn, user, i, now, reason=reason, deadline=due) for i in ids]
        return cases, {"cases": [{"case": c.id, "lead": c.lead_id} for c in cases]}

    cases = audited(
        engine,
        user,
        CaseAction.OPEN,
        work,
        object_type="lead",
        object_id=ids[0] if len(ids) == 1 else None,
        details={**local_details(), "leads": ids, "reason": reason},
    )
    for c in cases:
        if as_json:
            print_json(c.as_dict())
        else:
            out.print(
                f"case {c.id} opened on lead {c.lead_id}: {c.sightings} sightings pinned, "
                f"state {c.state.value}, assigned to {c.assignee}"
            )


@app.command("list")
def list_command(
    ctx: typer.Context,
    as_user: AsOption,
    state: Annotated[
        list[str] | None,
        typer.Option("--state", help="Only cases in this state; repeatable.", show_default=False),
    ] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only cases not closed.")] = False,
    as_json: JsonOption = False,
    purpose: PurposeOption = None,
) -> None:
    """Your unit's cases, most recently changed first."""
    base = read_details(purpose)
    engine = store_engine(ctx)
    require_named_case(engine, base)
    user = acting_user(engine, as_user)
    require_held_purpose(engine, user, base)
    states = [parse_state(s) for s in state or []]

    def work(conn: Connection) -> tuple[list[Case], dict[str, Any]]:
        found = list_cases(conn, user, states=states, open_only=open_only)
        return found, {"results": len(found), **shown_details([c.lead_id for c in found])}

    cases = audited(
        engine,
        user,
        CaseAction.LIST,
        work,
        object_type="cases",
        details={
            **base,
            "filters": {"state": [s.value for s in states], "open": open_only},
        },
    )
    if as_json:
        for c in cases:
            print_json(c.as_dict())
        err.print(f"{len(cases)} cases")
        return
    table = Table(show_edge=False, pad_edge=False)
    for name in ("case", "lead", "state", "assignee", "opened (UTC)", "changed (UTC)", "sightings"):
        table.add_column(name)
    for c in cases:
        table.add_row(
            str(c.id),
            str(c.lead_id),
            c.state.value,
            c.assignee or "",
            f"{c.opened_at:%Y-%m-%d %H:%M}",
            f"{c.updated_at:%Y-%m-%d %H:%M}",
            str(c.sightings),
        )
    out.print(table)
    err.print(f"{len(cases)} cases")


def _lead_country(conn: Connection, lead_id: int) -> str | None:
    return conn.scalar(lead.select().with_only_columns(lead.c.country).where(lead.c.id == lead_id))


@app.command("show")
def show_command(
    ctx: typer.Context,
    case_id: CaseArgument,
    as_user: AsOption,
    as_json: JsonOption = False,
    purpose: PurposeOption = None,
    identity: Annotated[
        bool,
        typer.Option(
            "--identity",
            help="Also show the subscriber the ISP named, next to the traffic data "
            "(an audited combination; analysts and supervisors of the case's unit only; "
            "needs --purpose case:N for this case).",
        ),
    ] = False,
) -> None:
    """One case: its lead, state, assignee, retention clock, pinned sightings, events."""
    base = read_details(purpose)
    engine = store_engine(ctx)
    require_named_case(engine, base)
    user = acting_user(engine, as_user)
    require_held_purpose(engine, user, base, shown_case=case_id)
    now = _now()
    if identity and base.get("purpose") != f"case:{case_id}":
        # Joining a person to traffic data is for the case itself, never triage.
        raise AtalayaError(
            f"the purpose is required: showing the subscriber needs --purpose case:{case_id}"
        )

    def work(conn: Connection) -> tuple[dict[str, Any], dict[str, Any]]:
        case = get_case(conn, user, case_id)
        clock = case_clock(conn, case.id, _lead_country(conn, case.lead_id), now)
        record = {
            **case.as_dict(),
            "next_states": [s.value for s in allowed(case.state)],
            "retention": clock.as_dict(),
            "pinned_sightings": pinned_sightings(conn, case.id),
            "events": [e.as_dict() for e in case_events(conn, case.id)],
        }
        if not identity:
            return record, {"lead": case.lead_id}
        found = combine(conn, user, case.id, str(base["purpose"]))
        record["identity"] = found.as_dict()
        return record, combination_details(found)

    record = audited(
        engine,
        user,
        CaseAction.COMBINE if identity else CaseAction.VIEW,
        work,
        object_id=case_id,
        details=base,
    )
    if as_json:
        print_json(record)
        return
    on = f" (opened on lead {record['made_on']})" if record["made_on"] != record["lead_id"] else ""
    out.print(
        f"case {record['id']}: lead {record['lead_id']}{on}, {record['unit']}, "
        f"state {record['state']} ({LABELS[parse_state(record['state'])]})"
    )
    out.print(
        f"  assigned to {record['assignee'] or 'nobody'}; opened by {record['opened_by']} "
        f"at {record['opened_at']}" + (f"; due {record['deadline']}" if record["deadline"] else "")
    )
    out.print(f"  retention: {_clock_text(record['retention'])}")
    out.print(f"  {record['sightings']} sightings pinned")
    nexts = ", ".join(record["next_states"]) or "none (final state)"
    out.print(f"  next states: {nexts}")
    for e in record["events"]:
        change = f" {e['from_state'] or '-'} → {e['to_state']}" if e["to_state"] else ""
        text = f": {e['text']}" if e["text"] else ""
        out.print(f"  {e['at']} {e['actor']} {e['kind']}{change}{text}")
    if identity:
        _print_combination(record["identity"])


def _clock_text(data: dict[str, Any]) -> str:
    def instant(value: str | None) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value)

    clock = Clock(
        instant(data["next_expiry"]),
        data["days_left"],
        data["all_expired"],
        instant(data["last_expiry"]),
    )
    return clock.text()


@app.command("move")
def move_command(
    ctx: typer.Context,
    case_id: CaseArgument,
    state: Annotated[str, typer.Argument(help="The state to move to.", show_default=False)],
    as_user: AsOption,
    reason: Annotated[str, typer.Option("--reason", help="Why; kept with the transition.")],
) -> None:
    """Move a case to its next state, saying why (out of order: an error, nothing written)."""
    engine = store_engine(ctx)
    user = acting_user(engine, as_user)
    target = parse_state(state)
    now = _now()

    def work(conn: Connection) -> tuple[Case, dict[str, Any]]:
        before = get_case(conn, user, case_id).state
        case = move_case(conn, user, case_id, target, reason, now)
        return case, {"from": before.value, "lead": case.lead_id}

    case = audited(
        engine,
        user,
        CaseAction.MOVE,
        work,
        object_id=case_id,
        details={**local_details(), "to": target.value, "reason": reason},
    )
    out.print(f"case {case.id}: now {case.state.value}")


@app.command("note")
def note_command(
    ctx: typer.Context,
    case_id: CaseArgument,
    text: Annotated[str, typer.Argument(help="The note.", show_default=False)],
    as_user: AsOption,
) -> None:
    """Add a note to a case."""
    engine = store_engine(ctx)
    user = acting_user(engine, as_user)
    now = _now()

    def work(conn: Connection) -> tuple[Case, dict[str, Any]]:
        return note_case(conn, user, case_id, text, now), {}

    audited(
        engine,
        user,
        CaseAction.NOTE,
        work,
        object_id=case_id,
        details={**local_details(), "length": len(text)},
    )
    out.print(f"case {case_id}: note added")


@app.command("assign")
def assign_command(
    ctx: typer.Context,
    case_id: CaseArgument,
    username: Annotated[str, typer.Argument(help="The user to assign it to.", show_default=False)],
    as_user: AsOption,
    reason: Annotated[str, typer.Option("--reason", help="Why.")] = "",
) -> None:
    """Assign a case to a user of your unit."""
    engine = store_engine(ctx)
    user = acting_user(engine, as_user)
    now = _now()

    def work(conn: Connection) -> tuple[Case, dict[str, Any]]:
        return assign_case(conn, user, case_id, username, now, reason), {}

    case = audited(
        engine,
        user,
        CaseAction.ASSIGN,
        work,
        object_id=case_id,
        details={**local_details(), "to": username, "reason": reason},
    )
    out.print(f"case {case.id}: assigned to {case.assignee}")


def deadlines_command(
    ctx: typer.Context,
    as_user: AsOption,
    within: Annotated[
        int, typer.Option("--within", min=0, max=3660, help="Expiring within this many days.")
    ] = 30,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Count from this UTC instant instead of now (to plan ahead).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    purpose: PurposeOption = None,
) -> None:
    """Leads whose oldest unrequested observations expire at the ISP soon, most urgent first.

    An observation is requested once a case pinning it was sent to court.
    """
    base = read_details(purpose)
    engine = store_engine(ctx)
    require_named_case(engine, base)
    user = acting_user(engine, as_user)
    require_held_purpose(engine, user, base)
    now = parse_instant(at, "--at") or _now()

    def work(conn: Connection) -> tuple[tuple[list[Any], list[Any]], dict[str, Any]]:
        require(user.role, Permission.VIEW_LEADS)
        found = upcoming(conn, user.unit_id, now, within)
        kept = preservations_due(conn, user.unit_id, now, within)
        shown = [u.lead_id for u in found] + [p.lead_id for p in kept]
        return (found, kept), {"results": len(found), **shown_details(shown)}

    found, kept = audited(
        engine,
        user,
        CaseAction.DEADLINES,
        work,
        object_type="leads",
        details={**base, "within_days": within, "at": now.isoformat()},
    )
    if as_json:
        for u in found:
            print_json(u.as_dict())
        for p in kept:
            print_json(p.as_dict())
        err.print(f"{len(found)} leads")
        return
    for p in kept:
        once = "extended once, cannot be extended again" if p.extended else "can be extended once"
        out.print(
            f"preservation order of case {p.case_id} (lead {p.lead_id}) ends "
            f"{p.until:%Y-%m-%d %H:%M} UTC: {p.days_left} days left, {once}"
        )
    table = Table(show_edge=False, pad_edge=False)
    for name in ("days left", "expires (UTC)", "lead", "oldest observation (UTC)", "obs.", "case"):
        table.add_column(name, justify="right" if name in ("days left", "obs.") else "left")
    for u in found:
        case = f"{u.case_id} ({u.case_state.value})" if u.case_id and u.case_state else ""
        table.add_row(
            str(u.days_left),
            f"{u.expires_at:%Y-%m-%d %H:%M}",
            str(u.lead_id),
            f"{u.oldest:%Y-%m-%d %H:%M:%S}",
            str(u.observations),
            case,
        )
    out.print(table)
    err.print(f"{len(found)} leads with unrequested observations expiring within {within} days")


def _lead_retention(engine: Engine, lead_id: int, _record: dict[str, Any]) -> Any:
    """`leads show`'s retention line (registered below)."""
    with engine.connect() as conn:
        clock = lead_clock(conn, lead_id, _now())
    if clock is None:
        return {}, []
    return {"retention": clock.as_dict()}, [f"  retention: {clock.text()}"]


leads_cli.SHOW_EXTRAS.append(_lead_retention)


def _print_combination(data: dict[str, Any]) -> None:
    out.print(f"  subscriber identity (purpose: {data['purpose']}):")
    if not data["identities"]:
        out.print("    no answer from the ISP recorded")
    for i, answer in enumerate(data["identities"]):
        status = "in force" if i == 0 else "superseded"
        out.print(
            f"    answer {answer['id']} ({status}), received {answer['received_at']}, "
            f"{answer['outcome']}, data subject: {answer['subject_category']}"
        )
        for key in ("name", "id_number", "address", "line", "addressing", "operator_reference"):
            if answer[key]:
                out.print(f"      {key.replace('_', ' ')}: {answer[key]}")
        if answer["notes"]:
            out.print(f"      notes: {answer['notes']}")
    out.print(f"  traffic data it answers ({data['traffic_total']} sightings):")
    for t in data["traffic"]:
        out.print(f"    {t['seen_at']} {t['ip']} port {t['port']} {t['network']}")


@app.command("answer")
def answer_command(
    ctx: typer.Context,
    case_id: CaseArgument,
    as_user: AsOption,
    outcome: Annotated[
        str,
        typer.Option(
            "--outcome", help="identified (the ISP named a subscriber) or no_data (it has none)."
        ),
    ] = "identified",
    name: Annotated[str, typer.Option("--name", help="The subscriber's name.")] = "",
    id_number: Annotated[
        str, typer.Option("--id-number", help="The subscriber's ID (DNI/NIE/passport).")
    ] = "",
    address: Annotated[str, typer.Option("--address", help="The installation address.")] = "",
    line: Annotated[str, typer.Option("--line", help="The line or contract named.")] = "",
    addressing: Annotated[
        str, typer.Option("--addressing", help="static or dynamic (the address given).")
    ] = "",
    notes: Annotated[str, typer.Option("--notes", help="Anything else the ISP said.")] = "",
    reference: Annotated[
        str, typer.Option("--reference", help="The operator's reference for its answer.")
    ] = "",
    received: Annotated[
        str | None,
        typer.Option(
            "--received", help="When the answer arrived (UTC; default now).", show_default=False
        ),
    ] = None,
) -> None:
    """Record the ISP's answer: who the subscriber is (or that it has no data).

    A case at sent_to_isp moves to isp_answered; at isp_answered it is a
    correction. The identity goes to its own table, read only by analysts
    and supervisors of the case's unit (`cases show --identity`).
    """
    engine = store_engine(ctx)
    user = acting_user(engine, as_user)
    now = _now()
    answer = Answer(
        outcome=parse_outcome(outcome),
        received_at=parse_instant(received, "--received") or now,
        name=name,
        id_number=id_number,
        address=address,
        line=line,
        addressing=parse_addressing(addressing),
        notes=notes,
        operator_reference=reference,
    )

    def work(conn: Connection) -> tuple[tuple[Case, int], dict[str, Any]]:
        case, answer_id = record_answer(conn, user, case_id, answer, now)
        return (case, answer_id), {"answer": answer_id, "lead": case.lead_id}

    # The audit record names the answer, never the person.
    case, answer_id = audited(
        engine,
        user,
        CaseAction.ANSWER,
        work,
        object_id=case_id,
        details={**local_details(), "outcome": answer.outcome.value},
    )
    out.print(f"case {case.id}: answer {answer_id} recorded, now {case.state.value}")


@app.command("step")
def step_command(
    ctx: typer.Context,
    case_id: CaseArgument,
    step: Annotated[
        str,
        typer.Argument(help="search, seizure, charges or outcome.", show_default=False),
    ],
    text: Annotated[str, typer.Argument(help="What it was.", show_default=False)],
    as_user: AsOption,
    on: Annotated[
        str | None,
        typer.Option("--on", help="When it happened (UTC; default now).", show_default=False),
    ] = None,
) -> None:
    """Record what followed the answer: a search (→ search_done), a seizure,
    charges (→ charged) or the court's outcome."""
    engine = store_engine(ctx)
    user = acting_user(engine, as_user)
    kind = parse_step(step)
    when = parse_instant(on, "--on")
    now = _now()

    def work(conn: Connection) -> tuple[Case, dict[str, Any]]:
        case = record_step(conn, user, case_id, kind, text, now, on=when)
        return case, {"lead": case.lead_id, "state": case.state.value}

    case = audited(
        engine,
        user,
        CaseAction.STEP,
        work,
        object_id=case_id,
        details={**local_details(), "step": kind.value, "length": len(text)},
    )
    out.print(f"case {case.id}: {kind.value} recorded, now {case.state.value}")
