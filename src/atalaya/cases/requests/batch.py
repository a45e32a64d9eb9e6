"""Draft one judicial request per selected lead, filed in folders by court and operator.

Spanish courts take one request per person, so a week's leads in one city
become as many requests; this does them in one go. Each lead is its own
audited transaction: a lead that cannot be drafted (no court configured,
expired, already requested) is listed in the index with the reason and
leaves nothing behind, and the others go on.

The output folder holds `<court>/<operator>/caso-N-solicitud-judicial-ID.{pdf,docx}`
and an index sheet, `indice.csv` and `indice.pdf`.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import typst
from sqlalchemy import Connection, Engine

from atalaya.accounts import User
from atalaya.accounts.visibility import visible_lead_ids_clause
from atalaya.cases.documents import document_body
from atalaya.cases.records import list_cases, open_case
from atalaya.cases.request_model import spanish_date
from atalaya.cases.requests.draft import Drafted, Renderer, draft_request
from atalaya.cases.requests.render import PDF_STANDARD
from atalaya.cases.states import State
from atalaya.csv_cells import neutralise_row
from atalaya.errors import AtalayaError
from atalaya.leads.selection import Selection, select_leads
from atalaya.store.times import utc

# Leads seen within this many days are candidates: older ones are past any
# operator's retention anyway (the draft itself checks each observation).
WINDOW_DAYS = 400
INDEX_COLUMNS = ("lead", "case", "atestado", "court", "operators", "observations", "folder",
                 "pdf_sha256", "status")  # fmt: skip


@dataclass(frozen=True)
class BatchDraft:
    drafted: Drafted
    pdf: bytes
    docx: bytes


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


def _case_for(conn: Connection, user: User, lead_id: int, now: datetime) -> int:
    """The unit's open case on the lead (opened now if none)."""
    existing = list_cases(conn, user, lead_id=lead_id, open_only=True)
    if existing:
        case = existing[0]
        if case.state is not State.TRIAGE:
            raise AtalayaError(f"case {case.id} is already {case.state.value}")
        return case.id
    return open_case(conn, user, lead_id, now, reason="solicitud en lote").id


def draft_batch(
    engine: Engine,
    user: User,
    lead_ids: Sequence[int],
    now: datetime,
    renderer: Renderer,
    out: Path,
    *,
    run: Callable[[Callable[[Connection], tuple[BatchDraft, dict[str, Any]]], int], BatchDraft],
    secrecy: bool = False,
    progress: Callable[[BatchItem], None] = lambda _item: None,
) -> list[BatchItem]:
    """Draft each lead's request; `run(work, lead_id)` runs one transaction audited."""
    items = []
    for lead_id in lead_ids:

        def work(conn: Connection, lead_id: int = lead_id) -> tuple[BatchDraft, dict[str, Any]]:
            case_id = _case_for(conn, user, lead_id, now)
            drafted = draft_request(conn, user, case_id, now, renderer, secrecy=secrecy)
            made = BatchDraft(
                drafted, document_body(conn, drafted.pdf.id), document_body(conn, drafted.docx.id)
            )
            return made, {"case": case_id, "lead": lead_id,
                          "documents": [drafted.pdf.id, drafted.docx.id]}  # fmt: skip

        try:
            made = run(work, lead_id)
        except AtalayaError as exc:
            item = BatchItem(lead_id, None, "", "", "", 0, "", "", f"no redactada: {exc}")
        else:
            drafted = made.drafted
            folder = Path(slug(drafted.court or "")) / slug(drafted.operators[0])
            target = out / folder
            target.mkdir(parents=True, exist_ok=True)
            (target / drafted.pdf.name).write_bytes(made.pdf)
            (target / drafted.docx.name).write_bytes(made.docx)
            item = BatchItem(
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
