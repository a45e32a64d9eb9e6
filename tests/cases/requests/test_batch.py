"""`draft_batch`: read every lead, render outside the transaction, write all at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from atalaya.cases.courts import load_config
from atalaya.cases.documents import DocumentKind, document_body, list_documents
from atalaya.cases.records import get_case, list_cases, open_case
from atalaya.cases.requests import batch, render
from atalaya.cases.requests.batch import BatchError, draft_batch
from atalaya.cases.requests.draft import Renderer, prepare_request
from atalaya.cases.requests.render import render_job, render_pair, rendering_pool, template_path
from atalaya.cases.requests_cli import RequestAction
from atalaya.cases.states import State
from atalaya.store.tables import audit_record, case_document, case_file
from tests.cases.requests.documents import pdf_text
from tests.cases.requests.helpers import leads, user
from tests.leads.helpers import NOW

RENDERER = Renderer(load_config({}))


def _batch(engine: Engine, ids: list[int], out: Path, **kw: Any) -> list[batch.BatchItem]:
    return draft_batch(
        engine, user(engine, "ana"), ids, NOW, RENDERER, out, action=RequestAction.DRAFT,
        details={"batch": True}, **kw,
    )  # fmt: skip


def _count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table).where(*where)) or 0)


def _audit(engine: Engine) -> list[tuple[str, str]]:
    a = audit_record.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(a.outcome, a.object_id).where(a.action == RequestAction.DRAFT.value)
        )
        return sorted((str(r.outcome), str(r.object_id)) for r in rows)


def test_worker_processes_draft_what_this_process_would(engine: Engine, tmp_path: Path) -> None:
    w = leads(engine)
    ids = [w.madrid, w.expired, w.cgnat, w.other]
    items = _batch(engine, ids, tmp_path / "lote", workers=2)
    assert [i.lead_id for i in items] == ids
    assert [i.status == "redactada" for i in items] == [True, False, True, True]
    assert "expired at the ISP" in items[1].status
    # One record per lead: the drafted ones ok, the refused one denied.
    assert _audit(engine) == sorted(
        [("ok", str(w.madrid)), ("denied", str(w.expired)), ("ok", str(w.cgnat)),
         ("ok", str(w.other))]
    )  # fmt: skip
    ana = user(engine, "ana")
    with engine.connect() as conn:
        for item in items[0::2] + items[3:]:
            assert item.case_id is not None
            case = get_case(conn, ana, item.case_id)
            assert case.state is State.REQUEST_DRAFTED and case.lead_id == item.lead_id
            pdf, docx = list_documents(conn, case.id, DocumentKind.JUDICIAL)
            body = document_body(conn, pdf.id)
            assert f"caso {case.id}, pista {item.lead_id}" in pdf_text(body, tmp_path)
            assert (tmp_path / "lote" / item.folder / pdf.name).read_bytes() == body
            assert (tmp_path / "lote" / item.folder / docx.name).read_bytes() == (
                document_body(conn, docx.id)
            )


def _model(engine: Engine) -> dict[str, Any]:
    ana = user(engine, "ana")
    with engine.begin() as conn:
        case = open_case(conn, ana, leads(engine).madrid, NOW)
        data = prepare_request(conn, ana, case, NOW, RENDERER).model.data()
        conn.rollback()
    return data


def test_a_worker_process_renders_what_this_process_does(engine: Engine) -> None:
    data = _model(engine)
    with rendering_pool(2) as pool:
        there = pool.submit(render_job, data, DocumentKind.JUDICIAL, None, NOW).result()
    assert there == render_pair(data, DocumentKind.JUDICIAL, None, NOW)
    bad = render_job({}, DocumentKind.JUDICIAL, None, NOW)
    assert isinstance(bad, str) and "could not be rendered" in bad


def test_an_open_triage_case_is_used_and_a_lead_twice_is_refused(
    engine: Engine, tmp_path: Path
) -> None:
    w = leads(engine)
    ana = user(engine, "ana")
    with engine.begin() as conn:
        opened = open_case(conn, ana, w.other, NOW).id
    items = _batch(engine, [w.other, w.other], tmp_path)
    assert items[0].case_id == opened and items[0].status == "redactada"
    assert items[1].status == f"no redactada: case {opened} is already request_drafted"
    # Again: the case is past triage now.
    again = _batch(engine, [w.other], tmp_path)
    assert again[0].status == f"no redactada: case {opened} is already request_drafted"
    assert _count(engine, case_document) == 2


def test_a_store_that_changes_meanwhile_gets_nothing_written(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = leads(engine)
    marks = iter(range(1000))
    monkeypatch.setattr(batch, "_watermark", lambda _conn: (next(marks),))
    with pytest.raises(BatchError, match="nothing was written"):
        _batch(engine, [w.madrid, w.other], tmp_path)
    assert _count(engine, case_file) == 0
    assert _count(engine, case_document) == 0
    with engine.connect() as conn:
        assert list_cases(conn, user(engine, "ana")) == []


def test_a_case_opened_meanwhile_is_seen_at_the_write(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another user opens a case between the read and the write: the batch reads again."""
    w = leads(engine)
    real_read = batch._read
    calls = []

    def read(*args: Any, **kw: Any) -> Any:
        found = real_read(*args, **kw)
        if not calls:
            with engine.begin() as conn:
                open_case(conn, user(engine, "ana"), w.cgnat, NOW)
        calls.append(1)
        return found

    monkeypatch.setattr(batch, "_read", read)
    items = _batch(engine, [w.madrid, w.other], tmp_path)
    assert len(calls) == 2
    assert [i.status for i in items] == ["redactada", "redactada"]
    assert _count(engine, case_file) == 3
    assert _count(engine, case_document) == 4


def test_the_packed_docx_is_what_zipfile_writes(engine: Engine) -> None:
    parts = render._docx_parts(template_path(DocumentKind.JUDICIAL, "docx", None))
    assert parts is not None
    context = {"d": _model(engine)}
    first = render._render_parts(parts, context)
    assert first == render._render_parts(parts, context, packed=False)
    assert parts.packed  # the unchanging parts deflated once, and reused
    assert render._render_parts(parts, context) == first


def test_a_reused_compiler_gives_typsts_own_pdf(engine: Engine) -> None:
    import json

    import typst

    data = _model(engine)
    path = template_path(DocumentKind.JUDICIAL, "typ", None)
    plain = typst.compile(
        str(path), root=str(path.parent), format="pdf",
        sys_inputs={"data": json.dumps(data, ensure_ascii=False)},
        pdf_standards=render.PDF_STANDARD, ignore_system_fonts=True,
        timestamp=int(NOW.timestamp()),
    )  # fmt: skip
    assert render.render_pdf(data, DocumentKind.JUDICIAL, None, NOW) == plain
    assert render.render_pdf(data, DocumentKind.JUDICIAL, None, NOW) == plain
