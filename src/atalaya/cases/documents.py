"""The documents generated for a case, kept append-only in `case_document`.

`case_documents` is what the evidence package reads: the latest document of
each kind and format, with the name it goes by, its media type and digest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, insert, select

from atalaya.store.tables import case_document
from atalaya.store.times import utc


class DocumentKind(StrEnum):
    JUDICIAL = "judicial"
    PRESERVATION = "preservation"


class DocumentFormat(StrEnum):
    PDF = "pdf"
    DOCX = "docx"


MEDIA_TYPES = {
    DocumentFormat.PDF: "application/pdf",
    DocumentFormat.DOCX: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
FILE_STEMS = {
    DocumentKind.JUDICIAL: "solicitud-judicial",
    DocumentKind.PRESERVATION: "conservacion",
}


@dataclass(frozen=True)
class CaseDocument:
    name: str
    media_type: str
    body: bytes
    sha256: str
    created_at: datetime


@dataclass(frozen=True)
class StoredDocument:
    id: int
    case_id: int
    kind: DocumentKind
    format: DocumentFormat
    sha256: str
    created_at: datetime
    created_by: str
    signed: bool
    details: dict[str, Any]

    @property
    def name(self) -> str:
        return document_name(self.case_id, self.kind, self.format, self.id)


def document_name(case_id: int, kind: DocumentKind, fmt: DocumentFormat, doc_id: int) -> str:
    return f"caso-{case_id}-{FILE_STEMS[kind]}-{doc_id}.{fmt.value}"


def store_document(
    conn: Connection,
    case_id: int,
    kind: DocumentKind,
    fmt: DocumentFormat,
    body: bytes,
    *,
    created_at: datetime,
    created_by: str,
    signed: bool,
    details: dict[str, Any],
) -> StoredDocument:
    digest = hashlib.sha256(body).hexdigest()
    doc_id = int(
        conn.execute(
            insert(case_document)
            .values(
                case_id=case_id,
                kind=kind.value,
                format=fmt.value,
                body=body,
                sha256=digest,
                created_at=utc(created_at),
                created_by=created_by,
                signed=signed,
                details=details,
            )
            .returning(case_document.c.id)
        ).scalar_one()
    )
    return StoredDocument(
        doc_id, case_id, kind, fmt, digest, utc(created_at), created_by, signed, details
    )


_META = (
    case_document.c.id,
    case_document.c.case_id,
    case_document.c.kind,
    case_document.c.format,
    case_document.c.sha256,
    case_document.c.created_at,
    case_document.c.created_by,
    case_document.c.signed,
    case_document.c.details,
)


def _stored(r: Any) -> StoredDocument:
    return StoredDocument(
        id=int(r.id),
        case_id=int(r.case_id),
        kind=DocumentKind(r.kind),
        format=DocumentFormat(r.format),
        sha256=r.sha256,
        created_at=utc(r.created_at),
        created_by=r.created_by,
        signed=bool(r.signed),
        details=dict(r.details or {}),
    )


def list_documents(
    conn: Connection, case_id: int, kind: DocumentKind | None = None
) -> list[StoredDocument]:
    """A case's documents, oldest first (without their bodies)."""
    query = select(*_META).where(case_document.c.case_id == case_id)
    if kind is not None:
        query = query.where(case_document.c.kind == kind.value)
    return [_stored(r) for r in conn.execute(query.order_by(case_document.c.id))]


def document_body(conn: Connection, doc_id: int) -> bytes:
    return bytes(
        conn.execute(select(case_document.c.body).where(case_document.c.id == doc_id)).scalar_one()
    )


def case_documents(conn: Connection, case_id: int) -> list[CaseDocument]:
    """The latest document of each kind and format of a case, judicial first.

    Call it once the caller knows the user may see the case (`get_case`).
    """
    latest: dict[tuple[DocumentKind, DocumentFormat], StoredDocument] = {}
    for doc in list_documents(conn, case_id):
        latest[doc.kind, doc.format] = doc
    order = [(k, f) for k in DocumentKind for f in DocumentFormat]
    return [
        CaseDocument(
            name=found.name,
            media_type=MEDIA_TYPES[found.format],
            body=document_body(conn, found.id),
            sha256=found.sha256,
            created_at=found.created_at,
        )
        for key in order
        if (found := latest.get(key)) is not None
    ]
