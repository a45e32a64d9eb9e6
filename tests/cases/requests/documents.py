"""Reading generated documents as a clerk would: pdftotext, pdfsig, python-docx."""

from __future__ import annotations

import io
import re
import subprocess
from pathlib import Path

from docx import Document


def pdf_text(pdf: bytes, tmp_path: Path, *, layout: bool = True) -> str:
    path = tmp_path / "doc.pdf"
    path.write_bytes(pdf)
    args = ["pdftotext", *(["-layout"] if layout else []), str(path), "-"]
    run = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
    return run.stdout


def pdfsig(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "signed.pdf"
    path.write_bytes(pdf)
    run = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, timeout=60,
                         check=False)  # fmt: skip
    return run.stdout + run.stderr


def docx_text(body: bytes) -> str:
    """Header, paragraphs and table cells, in document order as far as python-docx tells."""
    doc = Document(io.BytesIO(body))
    parts = [p.text for s in doc.sections for p in s.header.paragraphs]
    parts += [p.text for p in doc.paragraphs]
    for table in doc.tables:
        for row in table.rows:
            parts.append(" | ".join(c.text for c in row.cells))
    return "\n".join(parts)


def docx_rows(body: bytes) -> list[list[str]]:
    doc = Document(io.BytesIO(body))
    return [[c.text for c in row.cells] for t in doc.tables for row in t.rows]


def words(text: str) -> set[str]:
    """The words of a text, punctuation and table rules aside."""
    return {w for w in re.split(r"[\s|•]+", text) if w}
