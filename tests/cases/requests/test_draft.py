"""A case's judicial request drafted on a seeded store, read with pdftotext and python-docx."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from atalaya.cases.courts import RequestConfig, RequestConfigError, load_config, parse_config
from atalaya.cases.documents import (
    DocumentKind,
    case_documents,
    document_body,
    list_documents,
)
from atalaya.cases.records import case_events, get_case, move_case, open_case
from atalaya.cases.requests.draft import Drafted, Renderer, RequestError, draft_request
from atalaya.cases.requests.render import render_docx_docxtpl, template_path
from atalaya.cases.states import State
from atalaya.store.tables import case_document, case_event, case_file
from tests.cases.requests.documents import docx_rows, docx_text, pdf_text, words
from tests.cases.requests.helpers import HOSTILE_CLIENT, HOSTILE_NAME, SET_NAME, leads, user
from tests.leads.helpers import NOW

RENDERER = Renderer(load_config({}))


def _draft(engine: Engine, lead_id: int, *, secrecy: bool = False) -> tuple[Drafted, bytes, bytes]:
    ana = user(engine, "ana")
    with engine.begin() as conn:
        case = open_case(conn, ana, lead_id, NOW)
        drafted = draft_request(conn, ana, case.id, NOW, RENDERER, secrecy=secrecy)
        return drafted, document_body(conn, drafted.pdf.id), document_body(conn, drafted.docx.id)


def _counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (
            int(conn.scalar(select(func.count()).select_from(case_document)) or 0),
            int(conn.scalar(select(func.count()).select_from(case_event)) or 0),
        )


# Every content item the issue lists, as the document states it.
FIXED = [
    "Unidad de ejemplo de Madrid",  # requesting unit
    "TIP 000001 (EJEMPLO)",  # officer id
    "Atestado n.º 2026/001/",  # atestado
    "JUZGADO DE INSTRUCCIÓN EN FUNCIONES DE GUARDIA DE MADRID (EJEMPLO)",  # court
    "588 bis a",
    "588 bis b",
    "588 bis c",
    "588 ter j",
    "588 ter k",
    "Ley 25/2007",
    "artículos 3, 6 y 7",
    "189.1.b",
    "189.5",
    "atalaya/0.1.0",  # tool and version
    "BitTorrent",  # network
    f"«{SET_NAME}»",
    "Autoridad de ejemplo (sintética)",  # hash set source
    "Project VIC / VICS 2.0",  # category scheme
    "Solo se han recogido datos que el propio usuario ofrecía públicamente",
    "0000000000000000000000000000000000000001",  # file hash
    "BitTorrent v1 (infohash SHA-1)",  # algorithm
    "material de abuso sexual infantil",  # category
    "4 piezas descargadas y verificadas",  # proof
    "de este único par 10.1.0.1:51413",
    "3 ficheros distintos en 3 días distintos",  # indications of distribution
    "Necesidad y proporcionalidad",
    "Se desconoce su identidad",  # the person
    "Puerto origen",
    "DNI, NIE o CIF",  # data asked of the ISP
    "dirección de instalación",
    "fija o dinámica",
    "Example Fibra, S.A. (EJEMPLO, inventado)",  # operator's legal name
    "Plazo de respuesta: 10 días",  # deadline
    "Forma de entrega",  # delivery format
    "No consta requerimiento previo de conservación",  # preservation order
    "Anexo I. Informe de captura",
    "Anexo II. Extracto de hashes",
    "Anexo III. Sincronización horaria",
    "desfase máximo medido del reloj del equipo de captura: 0.004 s",
    "Anexo IV. Cadena de custodia",
]
# (ip, source port, UTC to the microsecond, local time with its offset)
ROWS = [
    ("10.1.0.1", "51413", "2026-10-01 09:00:00.123456", "2026-10-01 11:00:00.123456"),
    ("10.1.0.1", "51413", "2026-10-02 14:00:00.123456", "2026-10-02 16:00:00.123456"),
    ("10.1.0.1", "51414", "2026-10-03 10:00:00.123456", "2026-10-03 12:00:00.123456"),
]


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_the_request_states_every_field_in_pdf_and_docx(engine: Engine, tmp_path: Path) -> None:
    drafted, pdf, docx = _draft(engine, leads(engine).madrid)
    text = pdf_text(pdf, tmp_path)
    flat, flat_docx = _flat(pdf_text(pdf, tmp_path, layout=False)), _flat(docx_text(docx))
    for item in FIXED:
        assert item in flat, item
        assert item in flat_docx, item
    assert "588 bis d" not in flat  # secrecy only when asked
    # One table row per observation, each with its source port, UTC time and offset.
    section = text.split("QUINTO")[1]
    rows = re.split(r"\n(?=\d+ +\d)", section)[1:]
    assert len(rows) == len(ROWS)
    for row, (ip, port, at_utc, local) in zip(rows, ROWS, strict=True):
        # The source port beside the address on the row's first line; the
        # rest of the row (cells wrap) holds the instant in UTC and local time.
        assert re.match(rf"\d+ +{re.escape(ip)} +{port} ", row), row
        cells = _flat(row)
        assert all(part in cells for part in at_utc.split(" ")), row
        assert all(part in cells for part in local.split(" ")), row
    assert _flat(section).count("(UTC+02:00, Europe/Madrid)") == len(ROWS)
    table = [r for r in docx_rows(docx) if r[0].isdigit()]
    assert [(r[1], r[2], r[4][:26], r[5]) for r in table] == [
        (ip, port, f"{at} UTC"[:26], f"{local} (UTC+02:00, Europe/Madrid)")
        for ip, port, at, local in ROWS
    ]
    assert all("Example Fibra" in r[7] and "AS64500" in r[7] for r in table)
    # Stored: both formats, their digests, the case moved and the move recorded.
    with engine.connect() as conn:
        docs = list_documents(conn, drafted.case.id)
        events = case_events(conn, drafted.case.id)
    assert [(d.kind, d.format.value, d.signed) for d in docs] == [
        (DocumentKind.JUDICIAL, "pdf", False),
        (DocumentKind.JUDICIAL, "docx", False),
    ]
    assert drafted.case.state is State.REQUEST_DRAFTED
    assert (events[-1].from_state, events[-1].to_state) == (State.TRIAGE, State.REQUEST_DRAFTED)
    assert docs[0].details["sightings"] == sorted(docs[0].details["sightings"])
    assert len(docs[0].details["sightings"]) == len(ROWS)


def test_the_pdf_is_pdfa_2b(engine: Engine) -> None:
    _, pdf, _ = _draft(engine, leads(engine).madrid)
    assert b"<pdfaid:part>2</pdfaid:part>" in pdf
    assert b"<pdfaid:conformance>B</pdfaid:conformance>" in pdf


def test_cgnat_rows_carry_a_note_and_secrecy_when_asked(engine: Engine, tmp_path: Path) -> None:
    _, pdf, docx = _draft(engine, leads(engine).cgnat, secrecy=True)
    flat = _flat(pdf_text(pdf, tmp_path, layout=False))
    assert flat.count("40001") >= 2
    assert "CGNAT: dirección compartida" in flat
    assert "Example Mobile, S.A. (EJEMPLO, inventado)" in flat
    assert "588 bis d" in flat and "declare secretas estas actuaciones" in flat
    table = [r for r in docx_rows(docx) if r[0].isdigit()]
    assert len(table) == 2 and all("CGNAT" in r[8] and r[2] == "40001" for r in table)


def test_both_renderings_say_the_same_thing(engine: Engine, tmp_path: Path) -> None:
    _, pdf, docx = _draft(engine, leads(engine).madrid)
    pdf_words = pdf_text(pdf, tmp_path, layout=False)
    in_pdf = words(pdf_words)
    in_docx = words(docx_text(docx))
    # The PDF alone numbers its pages, and may break a long token over two
    # lines: each side's extra words must then be pieces of the other's.
    page_words = {"Página", "de", "1", "2", "3", "4"}
    joined_pdf = re.sub(r"\s+", "", pdf_words)
    assert all(any(w in d for d in in_docx) for w in in_pdf - in_docx - page_words)
    assert all(w.replace("|", "") in joined_pdf for w in in_docx - in_pdf)
    assert len(in_pdf ^ in_docx) < 10, in_pdf ^ in_docx


def test_peer_strings_are_shown_as_data_never_as_markup(engine: Engine, tmp_path: Path) -> None:
    _, pdf, docx = _draft(engine, leads(engine).madrid)
    flat = _flat(pdf_text(pdf, tmp_path, layout=False))
    flat_docx = _flat(docx_text(docx))
    # Typst and Jinja markup appear as written; the bidi override and the
    # control characters as visible escapes.
    shown_name = "#set page(width: 1pt) {{ d.atestado }} {%p if 1 %}<w:p/>&amp;\\u202egpj.exe\\x07"
    assert shown_name in flat_docx
    assert shown_name.replace(" ", "") in flat.replace(" ", "")
    assert "µTorrent 3.5 #let x = [*hola*] \\x1b[31m" in flat_docx
    assert "\u202e" not in flat + flat_docx and "\x07" not in flat + flat_docx
    assert HOSTILE_NAME not in flat_docx and HOSTILE_CLIENT not in flat_docx
    assert "Página 1 de" in flat  # the page set-up is the template's, not the peer's


def test_case_documents_gives_the_latest_of_each_kind_and_format(engine: Engine) -> None:
    drafted, pdf, docx = _draft(engine, leads(engine).madrid)
    with engine.connect() as conn:
        docs = case_documents(conn, drafted.case.id)
    assert [(d.name, d.media_type) for d in docs] == [
        (f"caso-{drafted.case.id}-solicitud-judicial-{drafted.pdf.id}.pdf", "application/pdf"),
        (
            f"caso-{drafted.case.id}-solicitud-judicial-{drafted.docx.id}.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
    ]
    assert [d.body for d in docs] == [pdf, docx]
    assert docs[0].sha256 == drafted.pdf.sha256 and docs[0].created_at == NOW


def _refused(engine: Engine, case_id: int, match: str, renderer: Renderer = RENDERER) -> None:
    before = _counts(engine)
    with engine.connect() as conn:
        state = conn.scalar(select(case_file.c.state).where(case_file.c.id == case_id))
    ana = user(engine, "ana")
    with pytest.raises((RequestError, RequestConfigError), match=match), engine.begin() as conn:
        draft_request(conn, ana, case_id, NOW, renderer)
    assert _counts(engine) == before
    with engine.connect() as conn:
        assert conn.scalar(select(case_file.c.state).where(case_file.c.id == case_id)) == state


def _open(engine: Engine, lead_id: int) -> int:
    with engine.begin() as conn:
        return open_case(conn, user(engine, "ana"), lead_id, NOW).id


def test_a_second_request_for_the_same_case_is_refused(engine: Engine) -> None:
    drafted, _, _ = _draft(engine, leads(engine).madrid)
    _refused(engine, drafted.case.id, "is request_drafted: a judicial request is drafted from")


def test_a_second_request_for_the_same_observations_is_refused(engine: Engine) -> None:
    drafted, _, _ = _draft(engine, leads(engine).madrid)
    ana = user(engine, "ana")
    with engine.begin() as conn:
        move_case(conn, ana, drafted.case.id, State.ARCHIVED, "drafted twice by mistake", NOW)
    again = _open(engine, leads(engine).madrid)
    _refused(engine, again, f"already asked of a judge in case {drafted.case.id}")


def test_a_case_out_of_triage_is_refused(engine: Engine) -> None:
    case_id = _open(engine, leads(engine).other)
    with engine.begin() as conn:
        move_case(conn, user(engine, "ana"), case_id, State.ARCHIVED, "not worth it", NOW)
    _refused(engine, case_id, "is archived")


def test_an_expired_lead_is_refused(engine: Engine) -> None:
    case_id = _open(engine, leads(engine).expired)
    _refused(engine, case_id, "has expired at the ISP")


def _config(drop: str) -> RequestConfig:
    """The shipped settings without one entry."""
    from atalaya.cases.courts import shipped_config_text

    text = shipped_config_text()
    blocks = text.split("\n\n")
    kept = [b for b in blocks if drop not in b]
    assert len(kept) == len(blocks) - 1, drop
    return parse_config("\n\n".join(kept), "unit.toml")


@pytest.mark.parametrize(
    ("drop", "match"),
    [
        ('place = "28"', r"no court configured for Madrid, Madrid .*province 28.* in unit\.toml"),
        (
            "asn = 64500",
            r"no operator configured for AS64500 \(Example Fibra, seen at 10\.1\.0\.1\)",
        ),
    ],
)
def test_missing_settings_are_one_clear_error(engine: Engine, drop: str, match: str) -> None:
    case_id = _open(engine, leads(engine).madrid)
    _refused(engine, case_id, match, Renderer(_config(drop)))


def test_a_missing_officer_id_is_one_clear_error(engine: Engine) -> None:
    case_id = _open(engine, leads(engine).madrid)
    config = parse_config(load_config({}).source and _strip_officer(), "unit.toml")
    _refused(engine, case_id, r"no professional id for user 'ana' in unit\.toml", Renderer(config))


def _strip_officer() -> str:
    from atalaya.cases.courts import shipped_config_text

    return "\n".join(
        line for line in shipped_config_text().splitlines() if not line.startswith("ana =")
    )


def test_another_units_case_cannot_be_drafted(engine: Engine) -> None:
    case_id = _open(engine, leads(engine).madrid)
    sara = user(engine, "sara")
    with pytest.raises(Exception, match=f"no case {case_id}"), engine.begin() as conn:
        draft_request(conn, sara, case_id, NOW, RENDERER)
    with engine.connect() as conn:
        assert get_case(conn, user(engine, "ana"), case_id).state is State.TRIAGE


def test_observations_past_the_clock_are_left_out(engine: Engine, tmp_path: Path) -> None:
    ana = user(engine, "ana")
    later = NOW + timedelta(days=314)  # 2027-09-30 12:00: only the first observation expired
    with engine.begin() as conn:
        case = open_case(conn, ana, leads(engine).madrid, NOW)
        drafted = draft_request(conn, ana, case.id, later, RENDERER)
        pdf = document_body(conn, drafted.pdf.id)
    flat = _flat(pdf_text(pdf, tmp_path))
    assert "2026-10-01 09:00:00.123456" not in flat.split("QUINTO")[1]
    assert "Se omiten 1 observaciones anteriores" in flat
    assert len(drafted.model.observations) == 2


def test_the_fast_docx_rendering_equals_docxtpls(engine: Engine) -> None:
    drafted, _, docx = _draft(engine, leads(engine).madrid)
    slow = render_docx_docxtpl(drafted.model.data(), DocumentKind.JUDICIAL, None)
    assert docx_text(docx) == docx_text(slow)
    assert docx_rows(docx) == docx_rows(slow)


def test_a_units_own_template_is_used(engine: Engine, tmp_path: Path) -> None:
    shipped = template_path(DocumentKind.JUDICIAL, "typ", None).read_text("utf-8")
    folder = tmp_path / "plantillas"
    folder.mkdir()
    mine = shipped.replace("EXPONEN:", "EXPONEN (plantilla de la unidad):")
    assert mine != shipped
    (folder / "solicitud_judicial.typ").write_text(mine, "utf-8")
    ana = user(engine, "ana")
    with engine.begin() as conn:
        case = open_case(conn, ana, leads(engine).madrid, NOW)
        renderer = Renderer(load_config({}), templates=folder)
        drafted = draft_request(conn, ana, case.id, NOW, renderer)
        pdf = document_body(conn, drafted.pdf.id)
        docx = document_body(conn, drafted.docx.id)
    assert "EXPONEN (plantilla de la unidad):" in _flat(pdf_text(pdf, tmp_path, layout=False))
    assert "EXPONEN:" in docx_text(docx)  # no DOCX of its own: the shipped one
