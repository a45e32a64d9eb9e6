"""Render a request's model to PDF/A (Typst) and DOCX (docxtpl).

A unit may override either template by putting a file of the same name in
its templates folder (ATALAYA_REQUESTS_TEMPLATES); otherwise the ones
shipped in `atalaya/cases/templates` apply. The model travels to Typst as
JSON in `sys.inputs` and to docxtpl as an autoescaped context, so no value
is ever read as markup. Typst uses only its embedded fonts and the
document's own time, so the same model gives the same PDF on any machine.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from importlib import resources
from io import BytesIO
from pathlib import Path
from typing import Any, Literal

import typst
from docxtpl import DocxTemplate
from jinja2 import TemplateError
from jinja2.sandbox import SandboxedEnvironment

from atalaya.cases.courts import RequestConfigError
from atalaya.cases.documents import DocumentKind
from atalaya.errors import AtalayaError

TEMPLATE_STEMS = {
    DocumentKind.JUDICIAL: "solicitud_judicial",
    DocumentKind.PRESERVATION: "conservacion",
}
PDF_STANDARD: Literal["a-2b"] = "a-2b"


class RenderError(AtalayaError):
    """A template could not be rendered."""


def template_path(kind: DocumentKind, suffix: str, folder: Path | None) -> Path:
    """The unit's template when its folder has one, else the shipped one."""
    name = f"{TEMPLATE_STEMS[kind]}.{suffix}"
    if folder is not None and (folder / name).is_file():
        return folder / name
    shipped = resources.files("atalaya.cases.templates").joinpath(name)
    path = Path(str(shipped))
    if not path.is_file():
        raise RequestConfigError(f"template {name} is missing from the package")
    return path


def render_pdf(
    data: dict[str, Any], kind: DocumentKind, folder: Path | None, created_at: datetime
) -> bytes:
    path = template_path(kind, "typ", folder)
    try:
        pdf = typst.compile(
            str(path),
            root=str(path.parent),
            format="pdf",
            sys_inputs={"data": json.dumps(data, ensure_ascii=False)},
            pdf_standards=PDF_STANDARD,
            ignore_system_fonts=True,
            timestamp=int(created_at.timestamp()),
        )
    except Exception as exc:  # typst raises its own types for template errors
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RenderError(f"template {path} could not be rendered: {message}") from exc
    if not isinstance(pdf, bytes):
        raise RenderError(f"template {path} gave no PDF")
    return pdf


def _unidos(values: Iterable[Any]) -> str:
    """ "a, b y c": a list as Spanish prose joins it."""
    items = [str(v) for v in values]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " y " + items[-1]


def _operador(party: dict[str, Any]) -> str:
    return (
        f"{party['name']} ({party['detail']}), con domicilio a efectos de notificaciones en "
        f"{party['address']}"
    )


class _Environment(SandboxedEnvironment):
    """Compiles each template part once: docxtpl hands over the same XML every
    time a template is rendered, and compiling it costs more than rendering."""

    MAX_CACHED = 32

    def __init__(self) -> None:
        super().__init__(autoescape=True)
        self.filters["unidos"] = _unidos
        self.filters["operador"] = _operador
        self._compiled: dict[str, Any] = {}

    def from_string(self, source: Any, globals: Any = None, template_class: Any = None) -> Any:
        if not isinstance(source, str) or globals is not None or template_class is not None:
            return super().from_string(source, globals, template_class)
        found = self._compiled.get(source)
        if found is None:
            if len(self._compiled) >= self.MAX_CACHED:
                self._compiled.clear()
            found = self._compiled[source] = super().from_string(source)
        return found


_ENVIRONMENT = _Environment()


def render_docx(data: dict[str, Any], kind: DocumentKind, folder: Path | None) -> bytes:
    path = template_path(kind, "docx", folder)
    try:
        template = DocxTemplate(str(path))
        template.render({"d": data}, jinja_env=_ENVIRONMENT, autoescape=True)
        out = BytesIO()
        template.save(out)
    except (TemplateError, KeyError, ValueError, OSError) as exc:
        raise RenderError(f"template {path} could not be rendered: {exc}") from exc
    return out.getvalue()
