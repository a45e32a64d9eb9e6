"""`atalaya requests draft | draft-case | show | preserve`: a case's documents for the court.

Settings: ATALAYA_REQUESTS_CONFIG (the unit's courts, operators and
officers, TOML; the shipped examples otherwise), ATALAYA_REQUESTS_TEMPLATES
(a folder with the unit's own templates), and the signing key
(`atalaya.signing`: ATALAYA_SIGN_P12 or ATALAYA_SIGN_PKCS11_*): when one is
set, every PDF is signed (PAdES).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table
from sqlalchemy import Connection

from atalaya.audit.log import local_details
from atalaya.cases.cli import AsOption, CaseArgument, JsonOption, acting_user
from atalaya.cases.documents import StoredDocument, document_body, list_documents
from atalaya.cases.records import get_case
from atalaya.cases.requests.batch import BatchItem, draft_batch, selected_leads
from atalaya.cases.requests.draft import (
    Drafted,
    configured_renderer,
    draft_request,
    preservation_of,
    preserve,
)
from atalaya.cases.service import audited
from atalaya.console import err, out, print_json, progress, store_engine

T = TypeVar("T")

app = typer.Typer(
    help="Judicial and preservation requests: drafted from a case, PDF/A and DOCX.",
    no_args_is_help=True,
)

OutOption = Annotated[
    Path | None,
    typer.Option("--out", help="Also write the documents into this folder.", show_default=False),
]


class RequestAction(StrEnum):
    """Audit actions of requests."""

    DRAFT = "case_request_draft"
    PRESERVE = "case_preserve"
    DOCUMENTS = "case_documents"


def _now() -> datetime:
    return datetime.now(UTC)


def _write(folder: Path | None, drafted: Drafted, bodies: dict[str, bytes]) -> None:
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for doc in (drafted.pdf, drafted.docx):
        (folder / doc.name).write_bytes(bodies[doc.name])
        err.print(f"  wrote {folder / doc.name}")


def _bodies(conn: Connection, drafted: Drafted) -> dict[str, bytes]:
    return {d.name: document_body(conn, d.id) for d in (drafted.pdf, drafted.docx)}


def _summary(drafted: Drafted) -> str:
    signed = "signed" if drafted.pdf.signed else "not signed"
    return (
        f"case {drafted.case.id}: {drafted.pdf.name} ({signed}, sha256 {drafted.pdf.sha256[:16]}…) "
        f"and {drafted.docx.name}; {len(drafted.model.observations)} observations"
    )


@app.command("draft-case")
def draft_case_command(
    ctx: typer.Context,
    case_id: CaseArgument,
    as_user: AsOption,
    secret: Annotated[
        bool, typer.Option("--secret", help="Ask for secrecy of the proceedings (588 bis d).")
    ] = False,
    folder: OutOption = None,
) -> None:
    """Draft the case's judicial request (PDF/A and DOCX); the case moves to request_drafted."""
    engine = store_engine(ctx)
    user = acting_user(engine, as_user)
    now = _now()
    with configured_renderer() as renderer:

        def work(conn: Connection) -> tuple[tuple[Drafted, dict[str, bytes]], dict[str, Any]]:
            drafted = draft_request(conn, user, case_id, now, renderer, secrecy=secret)
            return (drafted, _bodies(conn, drafted)), {
                "lead": drafted.case.lead_id,
                "documents": [drafted.pdf.id, drafted.docx.id],
                "sha256": drafted.pdf.sha256,
                "recipient": drafted.court,
            }

        drafted, bodies = audited(
            engine, user, RequestAction.DRAFT, work, object_id=case_id,
            details={**local_details(), "secrecy": secret},
        )  # fmt: skip
    out.print(_summary(drafted) + f"; court: {drafted.court}; now {drafted.case.state.value}")
    _write(folder, drafted, bodies)


@app.command("preserve")
def preserve_command(
    ctx: typer.Context,
    case_id: CaseArgument,
    as_user: AsOption,
    extend: Annotated[
        bool, typer.Option("--extend", help="Extend the order once, by 90 more days.")
    ] = False,
    folder: OutOption = None,
) -> None:
    """A one-page order to the operator to keep the data (588 octies): 90 days, one extension."""
    engine = store_engine(ctx)
    user = acting_user(engine, as_user)
    now = _now()
    with configured_renderer() as renderer:

        def work(conn: Connection) -> tuple[tuple[Drafted, dict[str, bytes]], dict[str, Any]]:
            drafted = preserve(conn, user, case_id, now, renderer, extend=extend)
            return (drafted, _bodies(conn, drafted)), {
                "lead": drafted.case.lead_id,
                "documents": [drafted.pdf.id, drafted.docx.id],
                "until": drafted.pdf.details["until"],
                "recipient": drafted.operators,
            }

        drafted, bodies = audited(
            engine, user, RequestAction.PRESERVE, work, object_id=case_id,
            details={**local_details(), "extend": extend},
        )  # fmt: skip
    until = drafted.pdf.details["until"][:10]
    what = "extended" if extend else "preservation ordered"
    out.print(_summary(drafted) + f"; {what} until {until}")
    _write(folder, drafted, bodies)


def _doc_record(d: StoredDocument) -> dict[str, Any]:
    return {
        "id": d.id,
        "name": d.name,
        "kind": d.kind.value,
        "format": d.format.value,
        "sha256": d.sha256,
        "created_at": d.created_at.isoformat(timespec="microseconds"),
        "created_by": d.created_by,
        "signed": d.signed,
        "details": {k: v for k, v in d.details.items() if k != "sightings"},
        "sightings": len(d.details.get("sightings", [])),
    }


@app.command("show")
def show_command(
    ctx: typer.Context,
    case_id: CaseArgument,
    as_user: AsOption,
    folder: OutOption = None,
    as_json: JsonOption = False,
) -> None:
    """A case's documents (judicial and preservation), oldest first; --out writes them."""
    engine = store_engine(ctx)
    user = acting_user(engine, as_user)
    now = _now()

    def work(conn: Connection) -> tuple[dict[str, Any], dict[str, Any]]:
        case = get_case(conn, user, case_id)
        docs = list_documents(conn, case.id)
        kept = preservation_of(conn, case.id)
        bodies = {d.name: document_body(conn, d.id) for d in docs} if folder else {}
        record = {
            "case": case.id,
            "state": case.state.value,
            "documents": [_doc_record(d) for d in docs],
            "preservation": None
            if kept is None
            else {
                "since": kept.since.isoformat(),
                "until": kept.until.isoformat(),
                "extended": kept.extended,
                "days_left": kept.days_left(now),
            },
        }
        return {"record": record, "bodies": bodies}, {"lead": case.lead_id,
                                                       "written": bool(folder)}  # fmt: skip

    result = audited(
        engine, user, RequestAction.DOCUMENTS, work, object_id=case_id,
        details=local_details(),
    )  # fmt: skip
    record, bodies = result["record"], result["bodies"]
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, body in bodies.items():
            (folder / name).write_bytes(body)
    if as_json:
        print_json(record)
        return
    out.print(f"case {record['case']}: state {record['state']}")
    p = record["preservation"]
    if p:
        ext = ", extended once" if p["extended"] else ""
        out.print(f"  preservation until {p['until'][:10]} ({p['days_left']} days left{ext})")
    table = Table(show_edge=False, pad_edge=False)
    for name in ("id", "document", "created (UTC)", "by", "signed", "sha256"):
        table.add_column(name)
    for d in record["documents"]:
        table.add_row(
            str(d["id"]), d["name"], d["created_at"][:19], d["created_by"],
            "yes" if d["signed"] else "no", d["sha256"][:16] + "…",
        )  # fmt: skip
    out.print(table)


@app.command("draft")
def draft_command(
    ctx: typer.Context,
    as_user: AsOption,
    province: Annotated[
        str | None,
        typer.Option(
            "--province", help="Leads placed in this province (INE code).", show_default=False
        ),
    ] = None,
    min_score: Annotated[
        float | None,
        typer.Option("--min-score", help="Leads scoring at least this.", show_default=False),
    ] = None,
    folder: Annotated[
        Path, typer.Option("--out", help="Folder for the documents and the index.")
    ] = Path("solicitudes"),
    secret: Annotated[
        bool, typer.Option("--secret", help="Ask for secrecy of the proceedings (588 bis d).")
    ] = False,
) -> None:
    """One judicial request per selected lead, filed by court and operator, with an index."""
    engine = store_engine(ctx)
    user = acting_user(engine, as_user)
    now = _now()
    with engine.connect() as conn:
        ids = selected_leads(conn, user, now, province=province, min_score=min_score)
    err.print(f"{len(ids)} leads selected")
    with configured_renderer() as renderer, progress() as bar:
        task = bar.add_task("drafting", total=len(ids))

        def advance(item: BatchItem) -> None:
            bar.advance(task)
            if item.status != "redactada":
                err.print(f"  lead {item.lead_id}: {item.status}")

        # A BatchError (nothing written) ends the command as every AtalayaError does.
        items = draft_batch(
            engine, user, ids, now, renderer, folder, action=RequestAction.DRAFT,
            details={**local_details(), "batch": True, "secrecy": secret},
            secrecy=secret, progress=advance,
        )  # fmt: skip
    done = sum(1 for i in items if i.status == "redactada")
    out.print(
        f"{done} of {len(items)} requests drafted into {folder} "
        f"(index: {folder / 'indice.csv'}, {folder / 'indice.pdf'})"
    )
    if done < len(items):
        raise typer.Exit(1)
