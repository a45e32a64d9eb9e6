"""Draft one judicial request per selected lead, filed in folders by court and operator.

Spanish courts take one request per person, so a week's leads in one city
become as many requests; this does them in one go, in three steps:

1. read: every lead's case (its open one, or the one about to be opened,
   with the id the store will give it and the sightings it will pin) is
   checked and modelled exactly as `draft_request` does, writing nothing;
2. render: the PDF/A and DOCX of each model, in worker processes (one per
   CPU), outside any transaction;
3. write: one audited transaction opens the cases, stores the documents,
   moves the cases and appends one audit record per lead.

A lead that cannot be drafted (no court configured, expired, already
requested) is listed in the index with the reason, logged as refused, and
leaves nothing behind; the others go on. The write is all or nothing: if
the store changed between reading and writing (another user opened or
moved a case, drafted a document) nothing is written and the batch starts
again, up to MAX_ATTEMPTS times, then stops with one clear error.

The output folder holds `<court>/<operator>/caso-N-solicitud-judicial-ID.{pdf,docx}`
and an index sheet, `indice.csv` and `indice.pdf`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import unicodedata
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any

import typst
from sqlalchemy import Connection, Engine, func, select, text

from atalaya.accounts import User
from atalaya.accounts.visibility import visible_lead_ids_clause
from atalaya.audit.log import Outcome, lock_chain, log_event, record
from atalaya.cases.documents import DocumentKind
from atalaya.cases.records import (
    Case,
    held_lead,
    list_cases,
    open_case,
    pinned_sightings,
    sightings_to_pin,
)
from atalaya.cases.request_model import spanish_date
from atalaya.cases.requests.draft import (
    Drafted,
    Prepared,
    Renderer,
    RequestError,
    prepare_request,
    sign_rendered,
    store_prepared,
)
from atalaya.cases.requests.render import PDF_STANDARD, render_job, rendering_pool
from atalaya.cases.states import State
from atalaya.csv_cells import neutralise_row
from atalaya.errors import AtalayaError
from atalaya.leads.selection import Selection, select_leads
from atalaya.store import begin_write
from atalaya.store.tables import case_document, case_event, case_file
from atalaya.store.times import utc

# Leads seen within this many days are candidates: older ones are past any
# operator's retention anyway (the draft itself checks each observation).
WINDOW_DAYS = 400
INDEX_COLUMNS = ("lead", "case", "atestado", "court", "operators", "observations", "folder",
                 "pdf_sha256", "status")  # fmt: skip
MAX_ATTEMPTS = 3
# Below this many documents per worker, starting worker processes costs more
# than it saves: render in this process.
PER_WORKER = 8


class BatchError(AtalayaError):
    """The batch as a whole could not be written (nothing was)."""


class _StoreChangedError(Exception):
    """The store changed between the batch's read and its write."""


@dataclass(frozen=True)
class BatchItem:
    lead_id: int
    case_id: int | None
    atestado: str
    court: str
    operators: str
    observations: int
    folder: str
    pdf_sha256: str
    status: str  # "redactada" or the reason it was not

    def row(self) -> dict[str, Any]:
        names = {"lead": "lead_id", "case": "case_id"}
        return {name: getattr(self, names.get(name, name)) for name in INDEX_COLUMNS}


def slug(text: str, limit: int = 80) -> str:
    """A folder name from a court's or operator's name (ASCII, no separators)."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^A-Za-z0-9]+", "-", plain).strip("-").lower()
    return cleaned[:limit].strip("-") or "sin-nombre"


def selected_leads(
    conn: Connection, user: User, now: datetime, *, province: str | None, min_score: float | None
) -> list[int]:
    flt = Selection(
        since=(utc(now) - timedelta(days=WINDOW_DAYS)).date(),
        until=utc(now).date(),
        provinces=(province,) if province else (),
        min_score=min_score,
    )
    visible = visible_lead_ids_clause(user.unit_id)
    return [r.id for r in select_leads(conn, flt, visible=visible, now=now)]


@dataclass(frozen=True)
class _Plan:
    """One lead's request as read: its case (opened at write time when `new`)."""

    lead_id: int
    prepared: Prepared
    new: bool
    pinned: tuple[int, ...]


def _watermark(conn: Connection) -> tuple[int, ...]:
    """What changes whenever a case is opened or moved or a document stored."""
    return tuple(
        int(conn.scalar(select(func.coalesce(func.max(table.c.id), 0))) or 0)
        for table in (case_file, case_event, case_document)
    )


def _next_case_id(conn: Connection) -> int:
    """The id the store will give the next case it opens."""
    if conn.dialect.name == "postgresql":
        # NULL until the sequence has given its first value (1).
        query = "SELECT pg_sequence_last_value(pg_get_serial_sequence('case_file', 'id'))"
        last = conn.scalar(text(query))
        return 1 if last is None else int(last) + 1
    # SQLite: an INTEGER PRIMARY KEY without AUTOINCREMENT takes the largest id + 1.
    return int(conn.scalar(select(func.coalesce(func.max(case_file.c.id), 0))) or 0) + 1


def _read(
    conn: Connection,
    user: User,
    lead_ids: Sequence[int],
    now: datetime,
    renderer: Renderer,
    secrecy: bool,
    on_plan: Callable[[_Plan], None],
) -> tuple[list[_Plan | str], tuple[int, ...]]:
    """Each lead's plan, or why it is refused; and the store's watermark.
    `on_plan` is called with each plan as soon as it is made (to start rendering it)."""
    mark = _watermark(conn)
    next_id = _next_case_id(conn)
    open_cases: dict[int, Case] = {}
    for case in list_cases(conn, user, open_only=True):  # most recently changed first
        open_cases.setdefault(case.lead_id, case)
    claimed: dict[int, int] = {}  # sighting id -> the case of this batch asking for it
    planned: dict[int, int] = {}  # lead id -> its case in this batch
    plans: list[_Plan | str] = []
    for lead_id in lead_ids:
        try:
            if lead_id in planned:
                raise AtalayaError(f"case {planned[lead_id]} is already request_drafted")
            existing = open_cases.get(lead_id)
            if existing is not None:
                if existing.state is not State.TRIAGE:
                    raise AtalayaError(f"case {existing.id} is already {existing.state.value}")
                case, pinned = existing, pinned_sightings(conn, existing.id)
            else:
                held_lead(conn, user, lead_id)
                pinned = sightings_to_pin(conn, lead_id)
                if not pinned:
                    raise AtalayaError(f"lead {lead_id} has no sightings to open a case on")
                at = utc(now)
                case = Case(
                    id=next_id, lead_id=lead_id, made_on=lead_id, unit_id=user.unit_id,
                    unit=user.unit_name, state=State.TRIAGE, assignee=user.username,
                    opened_by=user.username, opened_at=at, updated_at=at, deadline=None,
                    sightings=len(pinned),
                )  # fmt: skip
            prepared = prepare_request(
                conn, user, case, now, renderer, secrecy=secrecy, pinned=pinned
            )
            ids = prepared.details["sightings"]
            earlier = sorted({claimed[i] for i in ids if i in claimed})
            if earlier:
                count = sum(1 for i in ids if claimed.get(i) == earlier[0])
                raise RequestError(
                    f"case {case.id}: {count} of its observations were already asked of a "
                    f"judge in case {earlier[0]}'s request: a second request for the same "
                    "observations is refused"
                )
        except AtalayaError as exc:
            plans.append(str(exc))
            continue
        if existing is None:
            next_id += 1
        claimed.update((i, case.id) for i in ids)
        planned[lead_id] = case.id
        plan = _Plan(lead_id, prepared, existing is None, tuple(pinned))
        on_plan(plan)
        plans.append(plan)
    return plans, mark


def _pool(leads: int, workers: int | None) -> ProcessPoolExecutor | None:
    """Worker processes for rendering, or None to render in this one."""
    if workers is None:
        workers = min(os.cpu_count() or 1, leads // PER_WORKER)
    return rendering_pool(workers) if workers > 1 else None


def _write(
    engine: Engine,
    user: User,
    plans: Sequence[_Plan],
    bodies: Sequence[tuple[bytes, bytes]],
    now: datetime,
    mark: tuple[int, ...],
    audit: dict[str, Any],
) -> list[Drafted]:
    """Every request of the batch stored in one audited transaction, or none."""
    signed = bool(audit["signed"])
    actor = user.actor(audit["client_address"])
    done = []
    with begin_write(engine) as conn:
        lock_chain(conn)
        if _watermark(conn) != mark:
            raise _StoreChangedError
        for plan, body in zip(plans, bodies, strict=True):
            prepared = plan.prepared
            if plan.new:
                case = open_case(conn, user, plan.lead_id, now, reason="solicitud en lote")
                if case.id != prepared.case.id or tuple(pinned_sightings(conn, case.id)) != (
                    plan.pinned
                ):
                    raise _StoreChangedError
                prepared = replace(prepared, case=case)
            drafted = store_prepared(conn, user, prepared, body, signed, now)
            record(
                conn, audit["action"], actor=actor, object_type="lead", object_id=plan.lead_id,
                details={**audit["details"], "case": drafted.case.id, "lead": plan.lead_id,
                         "documents": [drafted.pdf.id, drafted.docx.id]},
            )  # fmt: skip
            done.append(drafted)
    return done


def _file(out: Path, lead_id: int, drafted: Drafted, body: tuple[bytes, bytes]) -> BatchItem:
    folder = Path(slug(drafted.court or "")) / slug(drafted.operators[0])
    target = out / folder
    target.mkdir(parents=True, exist_ok=True)
    (target / drafted.pdf.name).write_bytes(body[0])
    (target / drafted.docx.name).write_bytes(body[1])
    return BatchItem(
        lead_id=lead_id,
        case_id=drafted.case.id,
        atestado=drafted.model.atestado,
        court=drafted.court or "",
        operators="; ".join(drafted.operators),
        observations=len(drafted.model.observations),
        folder=str(folder),
        pdf_sha256=drafted.pdf.sha256,
        status="redactada",
    )


def draft_batch(
    engine: Engine,
    user: User,
    lead_ids: Sequence[int],
    now: datetime,
    renderer: Renderer,
    out: Path,
    *,
    action: StrEnum,
    details: dict[str, Any] | None = None,
    client_address: str | None = None,
    secrecy: bool = False,
    progress: Callable[[BatchItem], None] = lambda _item: None,
    workers: int | None = None,
) -> list[BatchItem]:
    """Draft each lead's request; each drafted lead gets an audit record `action`
    (object the lead), each refused one a denied record; `workers`: rendering
    processes (one per CPU by default, none for small batches)."""
    base = dict(details or {})
    audit = {"action": action.value, "details": base, "client_address": client_address,
             "signed": renderer.signer is not None}  # fmt: skip
    pool = _pool(len(lead_ids), workers)
    with pool if pool is not None else nullcontext():
        for _attempt in range(MAX_ATTEMPTS):
            # Each plan's documents render (in the workers) while the next leads are read.
            results: list[Callable[[], tuple[bytes, bytes] | str]] = []

            def start(
                plan: _Plan, results: list[Callable[[], tuple[bytes, bytes] | str]] = results
            ) -> None:
                args = (plan.prepared.model.data(), DocumentKind.JUDICIAL, renderer.templates, now)
                if pool is None:
                    results.append(partial(render_job, *args))
                else:
                    results.append(pool.submit(render_job, *args).result)

            with engine.connect() as conn, conn.begin():
                plans, mark = _read(conn, user, lead_ids, now, renderer, secrecy, start)
            ready = [p for p in plans if isinstance(p, _Plan)]
            refused: dict[int, str] = {}
            good: list[tuple[_Plan, tuple[bytes, bytes]]] = []
            for plan, result in zip(ready, results, strict=True):
                body = result()
                if isinstance(body, str):
                    refused[plan.lead_id] = body
                    continue
                pdf = sign_rendered(body[0], plan.prepared.model, renderer, plan.prepared.reason)
                good.append((plan, (pdf, body[1])))
            try:
                drafted = _write(
                    engine, user, [p for p, _ in good], [b for _, b in good], now, mark, audit
                )
            except _StoreChangedError:
                continue
            break
        else:
            raise BatchError(
                f"the store kept changing while the batch was drafted ({MAX_ATTEMPTS} "
                "attempts: other users opening or moving cases?): nothing was written; "
                "run it again"
            )
    written = {p.lead_id: (d, body) for d, (p, body) in zip(drafted, good, strict=True)}
    items = []
    for lead_id, entry in zip(lead_ids, plans, strict=True):
        if isinstance(entry, str) or entry.lead_id in refused:
            reason = entry if isinstance(entry, str) else refused[entry.lead_id]
            log_event(
                engine, action.value, actor=user.actor(client_address), outcome=Outcome.DENIED,
                object_type="lead", object_id=lead_id, details={**base, "refused": reason},
            )  # fmt: skip
            item = BatchItem(lead_id, None, "", "", "", 0, "", "", f"no redactada: {reason}")
        else:
            made, made_body = written[entry.lead_id]
            item = _file(out, lead_id, made, made_body)
        items.append(item)
        progress(item)
    write_index(out, items, now)
    return items


INDEX_TYP = """
#let d = json(bytes(sys.inputs.data))
#set document(title: "Índice de solicitudes")
#set page(paper: "a4", flipped: true, margin: 1.5cm)
#set text(lang: "es", font: "Libertinus Serif", size: 8pt, hyphenate: false)
#text(size: 12pt, weight: "bold")[Índice de solicitudes judiciales — #d.date]

#d.summary

#table(
  columns: (auto, auto, auto, 2fr, 2fr, auto, 2fr),
  inset: 3pt,
  stroke: 0.4pt,
  table.header([*Pista*], [*Caso*], [*Atestado*], [*Juzgado*], [*Operador*], [*Obs.*],
    [*Carpeta / estado*]),
  ..d.rows.map(r => (str(r.lead), str(r.case), r.atestado, r.court, r.operators,
    str(r.observations), if r.status == "redactada" { r.folder } else { r.status })).flatten(),
)
"""


def write_index(out: Path, items: Sequence[BatchItem], now: datetime) -> None:
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=INDEX_COLUMNS)
    writer.writeheader()
    for item in items:
        writer.writerow(neutralise_row(item.row()))
    (out / "indice.csv").write_text(buffer.getvalue(), "utf-8")
    done = sum(1 for i in items if i.status == "redactada")
    data = {
        "date": spanish_date(utc(now).date()),
        "summary": f"{done} solicitudes redactadas de {len(items)} pistas seleccionadas.",
        "rows": [{**i.row(), "case": i.case_id or "—"} for i in items],
    }
    pdf = typst.compile(
        INDEX_TYP.encode(),
        format="pdf",
        sys_inputs={"data": json.dumps(data, ensure_ascii=False)},
        pdf_standards=PDF_STANDARD,
        ignore_system_fonts=True,
        timestamp=int(now.timestamp()),
    )
    assert isinstance(pdf, bytes)
    (out / "indice.pdf").write_bytes(pdf)
