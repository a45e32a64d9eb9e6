"""Writes the shipped DOCX templates (docxtpl: Word documents with Jinja tags).

The templates are binary files, so they are made here from readable source
and committed: `python -m atalaya.cases.requests.docx_templates` rewrites
them in `atalaya/cases/templates/`. Their wording must stay that of the
Typst templates beside them (a test compares the text of both renderings).
Values go in through docxtpl with autoescaping on: a peer's string is XML
text, never markup.
"""

from __future__ import annotations

import sys
from pathlib import Path

from docx import Document
from docx.enum.section import WD_ORIENT
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.shared import Cm, Pt

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

JUDICIAL_COLUMNS = (
    "N.º",
    "IP pública",
    "Puerto origen",
    "Protocolo",
    "Fecha y hora UTC",
    "Hora local (desfase)",
    "Red, cliente e id. de par",
    "Operador (AS)",
    "Nota",
)
JUDICIAL_CELLS = (
    "{{ o.number }}",
    "{{ o.ip }}",
    "{{ o.source_port }}",
    "{{ o.protocol }}",
    "{{ o.utc }}",
    "{{ o.local }}",
    "{{ o.network }}; {{ o.client }}; {{ o.peer_id }}",
    "{{ o.operator }} ({{ o.asn }})",
    "{{ o.note }}",
)
PRESERVATION_COLUMNS = ("N.º", "IP pública", "Puerto origen", "Fecha y hora UTC", "Operador (AS)")
PRESERVATION_CELLS = (
    "{{ o.number }}",
    "{{ o.ip }}",
    "{{ o.source_port }}",
    "{{ o.utc }}",
    "{{ o.operator }} ({{ o.asn }})",
)


def _document() -> object:
    doc = Document()
    section = doc.sections[0]
    section.orientation = WD_ORIENT.PORTRAIT
    section.page_height, section.page_width = Cm(29.7), Cm(21.0)
    section.top_margin = section.bottom_margin = Cm(2.2)
    section.left_margin, section.right_margin = Cm(2.5), Cm(2.0)
    style = doc.styles["Normal"]
    style.font.name = "Liberation Serif"
    style.font.size = Pt(10.5)
    header = section.header.paragraphs[0]
    header.text = "{{ d.unit }}\tAtestado n.º {{ d.atestado }}"
    header.runs[0].font.size = Pt(8)
    return doc


def _p(doc: object, text: str, *, bold: bool = False, align: str | None = None) -> None:
    paragraph = doc.add_paragraph()  # type: ignore[attr-defined]
    run = paragraph.add_run(text)
    run.bold = bold
    if align == "center":
        paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
    elif align == "right":
        paragraph.alignment = WD_ALIGN_PARAGRAPH.RIGHT
    else:
        paragraph.alignment = WD_ALIGN_PARAGRAPH.JUSTIFY


def _bullet(doc: object, text: str) -> None:
    doc.add_paragraph(text, style="List Bullet")  # type: ignore[attr-defined]


def _table(doc: object, columns: tuple[str, ...], cells: tuple[str, ...]) -> None:
    table = doc.add_table(rows=3, cols=len(columns))  # type: ignore[attr-defined]
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    for cell, name in zip(table.rows[0].cells, columns, strict=True):
        cell.text = ""
        run = cell.paragraphs[0].add_run(name)
        run.bold = True
        run.font.size = Pt(7)
    table.rows[1].cells[0].text = "{%tr for o in d.observations %}"
    for cell, text in zip(table.rows[2].cells, cells, strict=True):
        cell.text = ""
        cell.paragraphs[0].add_run(text).font.size = Pt(7)
    # docxtpl: the row after the loop's body closes it.
    row = table.add_row()
    row.cells[0].text = "{%tr endfor %}"


def _heading_block(doc: object) -> None:
    _p(doc, "{{ d.unit }}", bold=True)
    _p(doc, "{{ d.unit_address }}")
    _p(doc, "Contacto: {{ d.unit_contact }}")
    _p(doc, "Atestado n.º {{ d.atestado }}", align="right")
    _p(doc, "Expediente Atalaya: caso {{ d.case_id }}, pista {{ d.lead_id }}", align="right")
    _p(doc, "{{ d.place }}, {{ d.date }}", align="right")


def judicial() -> object:
    doc = _document()
    _heading_block(doc)
    _p(doc, "AL {{ d.court.name | upper }}", bold=True)
    _p(doc, "{{ d.court.address }}")
    _p(
        doc,
        "SOLICITUD DE AUTORIZACIÓN JUDICIAL PARA LA CESIÓN DE LOS DATOS DE IDENTIFICACIÓN "
        "DEL ABONADO",
        bold=True,
        align="center",
    )
    _p(
        doc,
        "(artículos 588 bis a, 588 bis b, 588 bis c, 588 ter j y 588 ter k de la Ley de "
        "Enjuiciamiento Criminal)",
        align="center",
    )
    _p(
        doc,
        "Los funcionarios con número de identificación profesional "
        "{{ d.officers | map(attribute='professional_id') | unidos }}, destinados en "
        "{{ d.unit }}, en el marco del atestado n.º {{ d.atestado }}, ante el Juzgado "
        "comparecen y, como mejor proceda en Derecho, EXPONEN:",
    )
    _p(doc, "PRIMERO. Hechos y forma en que se han detectado", bold=True)
    _p(
        doc,
        "Con la herramienta {{ d.tools | unidos }}, que vigila la red {{ d.networks | unidos }} "
        "(descubrimiento de pares por {{ d.found_by | unidos }}), se ha observado a un usuario "
        "que ofrecía públicamente a cualquier otro usuario de la red ficheros cuyas huellas "
        "digitales (hashes) figuran en listas de referencia de material de abuso sexual "
        "infantil. Solo se han recogido datos que el propio usuario ofrecía públicamente en la "
        "red: su dirección IP y puerto, el identificador de lo ofrecido y las respuestas de "
        "protocolo; no se ha accedido a ningún sistema ni se ha conservado contenido alguno.",
    )
    _p(doc, "{%p for s in d.hash_sets %}")
    _bullet(
        doc,
        "Lista de referencia «{{ s.name }}», fuente: {{ s.source }}, versión: {{ s.version }}, "
        "esquema de categorías: {{ s.scheme }} (trasladado a la escala interna de Atalaya), "
        "huella SHA-256 del fichero importado: {{ s.sha256 }}.",
    )
    _p(doc, "{%p endfor %}")
    _p(doc, "SEGUNDO. Ficheros ofrecidos", bold=True)
    _p(doc, "{%p for f in d.files %}")
    _p(
        doc,
        "Fichero {{ f.number }}. Nombre anunciado: «{{ f.advertised_name }}». Red: "
        "{{ f.network }}.",
    )
    _p(doc, "Identificador ofrecido: {{ f.identifier }}")
    _p(doc, "{%p if f.reference %}")
    _p(doc, "Hash de referencia coincidente: {{ f.reference }}")
    _p(doc, "{%p endif %}")
    _p(
        doc,
        "Categoría: {{ f.category }} (etiqueta de la fuente: {{ f.category_source }}; lista: "
        "{{ f.hash_set }}).",
    )
    _p(doc, "Prueba: {{ f.proof }}. Observaciones de este fichero: {{ f.sightings }}.")
    _p(doc, "{%p endfor %}")
    _p(doc, "TERCERO. Indicios de difusión", bold=True)
    _p(
        doc,
        "El usuario ofreció {{ d.files_text }} en {{ d.days_text }},"
        " entre el {{ d.first_seen }} y el {{ d.last_seen }}. Ofrecer un fichero en "
        "una red de intercambio entre pares lo pone a disposición de cualquier otro usuario: "
        "es un acto de difusión, no de mera tenencia.",
    )
    _p(doc, "CUARTO. Persona investigada", bold=True)
    _p(
        doc,
        "Se desconoce su identidad. Es el usuario de la conexión a Internet que figura en la "
        "tabla del apartado siguiente, cuyo titular solo puede conocer el operador que la "
        "presta. El abonado no es por ello sospechoso: sus datos se piden para poder "
        "identificar al usuario.",
    )
    _p(doc, "QUINTO. Observaciones", bold=True)
    _p(
        doc,
        "Una fila por observación. La hora es la de llegada de la respuesta del par, en UTC con "
        "microsegundos y en hora local con su desfase respecto de UTC. El puerto es el puerto "
        "de origen del usuario, imprescindible cuando el operador comparte direcciones (CGNAT)."
        "{% if d.omitted_expired %} Se omiten {{ d.omitted_expired }} observaciones anteriores "
        "cuyo plazo de conservación por el operador ha vencido.{% endif %}",
    )
    _table(doc, JUDICIAL_COLUMNS, JUDICIAL_CELLS)
    _p(doc, "SEXTO. Fundamentos jurídicos", bold=True)
    for text in (
        "Artículo 588 bis a LECrim: la medida responde a los principios de especialidad, "
        "idoneidad, excepcionalidad, necesidad y proporcionalidad.",
        "Artículos 588 bis b y 588 bis c LECrim: contenido de la solicitud y de la resolución "
        "judicial que la autorice.",
        "Artículo 588 ter j LECrim: cesión de los datos electrónicos conservados por los "
        "prestadores de servicios.",
        "Artículo 588 ter k LECrim: identificación del usuario mediante la dirección IP.",
        "Ley 25/2007, de 18 de octubre, de conservación de datos relativos a las "
        "comunicaciones electrónicas y a las redes públicas de comunicaciones, artículos 3, 6 "
        "y 7.",
    ):
        _bullet(doc, text)
    _p(doc, "{%p if d.secrecy %}")
    _bullet(
        doc,
        "Artículo 588 bis d LECrim: se solicita el secreto de las actuaciones relativas a esta "
        "medida, para no frustrar la investigación.",
    )
    _p(doc, "{%p endif %}")
    _p(doc, "SÉPTIMO. Delito investigado", bold=True)
    _p(
        doc,
        "Distribución de material de abuso sexual infantil a través de una red de intercambio "
        "de ficheros (artículo 189.1.b del Código Penal) y su posesión (artículo 189.5 del "
        "Código Penal).",
    )
    _p(doc, "OCTAVO. Necesidad y proporcionalidad", bold=True)
    _p(
        doc,
        "La dirección IP, el puerto de origen y el instante son el único dato que vincula los "
        "hechos con una persona; sin la cesión del operador no hay otra medida menos gravosa "
        "que permita identificarla. Se pide únicamente la identidad del abonado de la conexión "
        "en los instantes indicados, no el contenido de ninguna comunicación. La gravedad del "
        "delito, que afecta a menores, y la reiteración de la conducta ({{ d.files_text }} "
        "en {{ d.days_text }}) justifican la medida.",
    )
    _p(doc, "NOVENO. Datos que se solicitan al operador", bold=True)
    _p(
        doc,
        "Del operador {{ d.operators | map('operador') | unidos }}, para cada fila de la tabla: "
        "nombre y apellidos o razón social del abonado; número de DNI, NIE o CIF; dirección de "
        "instalación del servicio; número de línea o identificador del servicio; si la "
        "dirección IP asignada era fija o dinámica y, si era compartida, la asignación por "
        "puerto de origen. Plazo de respuesta: {{ d.response_days }} días desde la "
        "notificación. Forma de entrega: {{ d.delivery }}.",
    )
    _p(doc, "DÉCIMO. Conservación de los datos", bold=True)
    _p(doc, "{{ d.preservation }}")
    _p(
        doc,
        "Por lo expuesto, SOLICITAN al Juzgado que, teniendo por presentado este escrito, "
        "acuerde requerir al operador indicado la cesión de los datos del apartado noveno"
        "{% if d.secrecy %} y declare secretas estas actuaciones{% endif %}.",
    )
    _p(doc, "Anexos", bold=True)
    for text in (
        "Anexo I. Informe de captura de las observaciones de la tabla "
        "({{ d.observations | length }}), con su identificador en el registro de Atalaya.",
        "Anexo II. Extracto de hashes de los ficheros ofrecidos, sin contenido alguno.",
        "Anexo III. Sincronización horaria del equipo de captura: {{ d.clock_offset }}.",
        "Anexo IV. Cadena de custodia: registro de auditoría encadenado de la obtención y del "
        "tratamiento de estos datos.",
    ):
        _p(doc, text)
    _p(doc, "{{ d.place }}, {{ d.date }}")
    _p(doc, "{%p for o in d.officers %}")
    _p(doc, "Fdo.: {{ o.professional_id }} (usuario {{ o.username }})")
    _p(doc, "{%p endfor %}")
    return doc


def preservation() -> object:
    doc = _document()
    _heading_block(doc)
    _p(doc, "{%p for o in d.operators %}")
    _p(doc, "A {{ o.name }} ({{ o.detail }})", bold=True)
    _p(doc, "{{ o.address }}")
    _p(doc, "{%p endfor %}")
    _p(
        doc,
        "{% if d.extension %}PRÓRROGA DE LA {% endif %}ORDEN DE CONSERVACIÓN DE DATOS "
        "(artículo 588 octies de la Ley de Enjuiciamiento Criminal)",
        bold=True,
        align="center",
    )
    _p(
        doc,
        "Los funcionarios con número de identificación profesional "
        "{{ d.officers | map(attribute='professional_id') | unidos }}, destinados en "
        "{{ d.unit }}, en el marco del atestado n.º {{ d.atestado }}, requieren al operador "
        "que conserve y proteja, sin cederlos todavía, los datos que identifican al abonado y "
        "la conexión de cada fila de la tabla siguiente, hasta que se obtenga la autorización "
        "judicial para su cesión.",
    )
    _table(doc, PRESERVATION_COLUMNS, PRESERVATION_CELLS)
    _p(
        doc,
        "{% if d.extension %}Se prorroga por una sola vez la conservación acordada, por "
        "{{ d.days }} días más{% else %}La conservación se mantendrá durante "
        "{{ d.days }} días{% endif %}, del {{ d.period_start }} al {{ d.period_end }}, salvo "
        "que antes se notifique la resolución judicial. El operador no comunicará este "
        "requerimiento al abonado ni a terceros.",
    )
    _p(doc, "{{ d.place }}, {{ d.date }}")
    _p(doc, "{%p for o in d.officers %}")
    _p(doc, "Fdo.: {{ o.professional_id }} (usuario {{ o.username }})")
    _p(doc, "{%p endfor %}")
    return doc


def write(folder: Path = TEMPLATES) -> list[Path]:
    written = []
    for name, make in (("solicitud_judicial", judicial), ("conservacion", preservation)):
        path = folder / f"{name}.docx"
        make().save(str(path))  # type: ignore[attr-defined]
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover
    for path in write(Path(sys.argv[1]) if len(sys.argv) > 1 else TEMPLATES):
        print(path)
