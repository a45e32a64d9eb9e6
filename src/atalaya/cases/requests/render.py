"""Render a request's model to PDF/A (Typst) and DOCX (docxtpl).

A unit may override either template by putting a file of the same name in
its templates folder (ATALAYA_REQUESTS_TEMPLATES); otherwise the ones
shipped in `atalaya/cases/templates` apply. The model travels to Typst as
JSON in `sys.inputs` and to docxtpl as an autoescaped context, so no value
is ever read as markup. Typst uses only its embedded fonts and the
document's own time, so the same model gives the same PDF on any machine.
"""

from __future__ import annotations

import copy
import json
import re
import sys
import threading
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from io import BytesIO
from multiprocessing import get_context
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


# One Typst compiler per template and thread (its fonts are loaded once, and
# a compiler is not to be shared between threads), keyed by the file's path,
# time and size so that a unit's edited template is read anew.
_COMPILERS = threading.local()


def _compiler(path: Path) -> typst.Compiler:
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    cache: dict[tuple[str, int, int], typst.Compiler] = _COMPILERS.__dict__.setdefault("by_key", {})
    found = cache.get(key)
    if found is None:
        if len(cache) > 16:
            cache.clear()
        found = cache[key] = typst.Compiler(
            str(path), root=str(path.parent), ignore_system_fonts=True
        )
    return found


def render_pdf(
    data: dict[str, Any], kind: DocumentKind, folder: Path | None, created_at: datetime
) -> bytes:
    path = template_path(kind, "typ", folder)
    try:
        pdf = _compiler(path).compile(
            format="pdf",
            sys_inputs={"data": json.dumps(data, ensure_ascii=False)},
            pdf_standards=PDF_STANDARD,
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


@dataclass(frozen=True)
class _Packed:
    """A part that no rendering changes, deflated once: what zipfile would write."""

    compressed: bytes
    crc: int
    size: int


@dataclass(frozen=True)
class _DocxTemplateParts:
    """A DOCX template read once: its parts in order, the templated ones compiled."""

    parts: tuple[tuple[zipfile.ZipInfo, bytes], ...]
    templates: dict[str, Any]
    packed: dict[str, _Packed] = field(default_factory=dict)  # filled as first written


# Parts where docxtpl renders tags: the body, headers and footers.
_TEMPLATED = re.compile(r"word/(document|header\d*|footer\d*)\.xml")
_PARAGRAPH_OPEN = re.compile(r"<w:p([ >])")
_PARAGRAPH_BACK = re.compile(r"\n<w:p([ >])")
_FAST_CACHE: dict[tuple[str, int, int], _DocxTemplateParts | None] = {}


def _docx_parts(path: Path) -> _DocxTemplateParts | None:
    """The template's parts with their Jinja compiled, docxtpl's way; None when it
    uses what only docxtpl's full rendering handles (merged table cells)."""
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key in _FAST_CACHE:
        return _FAST_CACHE[key]
    helper = DocxTemplate(str(path))  # for its tag clean-up (patch_xml, resolve_listing)
    parts = []
    templates: dict[str, Any] = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            body = archive.read(info)
            parts.append((info, body))
            if _TEMPLATED.fullmatch(info.filename) and (b"{{" in body or b"{%" in body):
                xml = helper.patch_xml(body.decode("utf-8"))
                if re.search(r"\{%-?\s*tc\b", xml):
                    _FAST_CACHE[key] = None
                    return None
                templates[info.filename] = _ENVIRONMENT.from_string(
                    _PARAGRAPH_OPEN.sub(r"\n<w:p\1", xml)
                )
    found = _DocxTemplateParts(tuple(parts), templates)
    if len(_FAST_CACHE) > 16:
        _FAST_CACHE.clear()
    _FAST_CACHE[key] = found
    return found


def _packed(parts: _DocxTemplateParts, name: str, body: bytes) -> _Packed:
    found = parts.packed.get(name)
    if found is None:
        # zipfile's own compressor for ZIP_DEFLATED at the default level.
        packer = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        compressed = packer.compress(body) + packer.flush()
        found = parts.packed[name] = _Packed(compressed, zlib.crc32(body), len(body))
    return found


def _write_packed(archive: zipfile.ZipFile, info: zipfile.ZipInfo, packed: _Packed) -> None:
    """What `archive.writestr(info, body, ZIP_DEFLATED)` writes to a seekable file,
    byte for byte, without deflating `body` again (a test compares the two)."""
    zinfo = copy.copy(info)
    zinfo.compress_type = zipfile.ZIP_DEFLATED
    zinfo.file_size, zinfo.CRC = packed.size, packed.crc
    zinfo.compress_size = len(packed.compressed)
    zinfo.flag_bits = 0
    if not zinfo.external_attr:
        zinfo.external_attr = 0o600 << 16
    assert archive.fp is not None
    zinfo.header_offset = archive.fp.tell()
    archive._writecheck(zinfo)  # type: ignore[attr-defined]
    archive._didModify = True  # type: ignore[attr-defined]
    archive.fp.write(zinfo.FileHeader(False))
    archive.fp.write(packed.compressed)
    archive.start_dir = archive.fp.tell()
    archive.filelist.append(zinfo)
    archive.NameToInfo[zinfo.filename] = zinfo


def _render_parts(
    parts: _DocxTemplateParts, context: dict[str, Any], *, packed: bool = True
) -> bytes:
    """What docxtpl's render and save give for such a template, without loading
    and re-serialising every part of the package each time; the parts no
    rendering changes (styles: most of the bytes) are deflated once."""
    helper = DocxTemplate.__new__(DocxTemplate)
    out = BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for info, original in parts.parts:
            template = parts.templates.get(info.filename)
            if template is None:
                if packed and info.file_size * 1.05 <= zipfile.ZIP64_LIMIT:
                    _write_packed(archive, info, _packed(parts, info.filename, original))
                else:
                    archive.writestr(info, original, compress_type=zipfile.ZIP_DEFLATED)
                continue
            xml = _PARAGRAPH_BACK.sub(r"<w:p\1", template.render(context))
            for escaped, tag in (("{_{", "{{"), ("}_}", "}}"), ("{_%", "{%"), ("%_}", "%}")):
                xml = xml.replace(escaped, tag)
            body = helper.resolve_listing(xml).encode("utf-8")
            archive.writestr(info, body, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def render_docx(data: dict[str, Any], kind: DocumentKind, folder: Path | None) -> bytes:
    path = template_path(kind, "docx", folder)
    context = {"d": data}
    try:
        parts = _docx_parts(path)
        if parts is not None:
            return _render_parts(parts, context)
        template = DocxTemplate(str(path))
        template.render(context, jinja_env=_ENVIRONMENT, autoescape=True)
        out = BytesIO()
        template.save(out)
    except (TemplateError, KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise RenderError(f"template {path} could not be rendered: {exc}") from exc
    return out.getvalue()


def render_docx_docxtpl(data: dict[str, Any], kind: DocumentKind, folder: Path | None) -> bytes:
    """The same document through docxtpl's full rendering (what the fast path must equal)."""
    template = DocxTemplate(str(template_path(kind, "docx", folder)))
    template.render({"d": data}, jinja_env=_ENVIRONMENT, autoescape=True)
    out = BytesIO()
    template.save(out)
    return out.getvalue()


def render_pair(
    data: dict[str, Any], kind: DocumentKind, folder: Path | None, created_at: datetime
) -> tuple[bytes, bytes]:
    """Both renderings of one model, unsigned: what a batch's worker processes run."""
    return render_pdf(data, kind, folder, created_at), render_docx(data, kind, folder)


def render_job(
    data: dict[str, Any], kind: DocumentKind, folder: Path | None, created_at: datetime
) -> tuple[bytes, bytes] | str:
    """A rendering worker's job: both documents, or why they could not be rendered."""
    try:
        return render_pair(data, kind, folder, created_at)
    except AtalayaError as exc:
        return str(exc)


def _started() -> None:
    """A worker's first job: nothing, once its imports are done."""


@contextmanager
def _main_not_reimported() -> Iterator[None]:
    """Spawned workers import the parent's main script first (for the `atalaya`
    command, the whole CLI: seconds of CPU each) unless it has no file to name;
    they need only this module."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


def rendering_pool(workers: int) -> ProcessPoolExecutor:
    """`workers` processes that run `render_job`, all started now.

    Spawned, not forked: Typst's thread pool does not survive a fork.
    """
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
    with _main_not_reimported():
        # Spawned on demand, one per job while none is idle: start them all here.
        for _ in range(workers):
            pool.submit(_started)
    return pool
