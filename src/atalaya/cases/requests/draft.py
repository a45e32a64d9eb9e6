"""Draft a case's judicial request, and its preservation request (LECrim 588 octies).

`draft_request` works in the caller's transaction (run it through
`atalaya.cases.service.audited`): it checks everything first (the case may
be drafted, its observations are live and not already asked of a judge,
the settings name its court, operators and officers), then renders both
documents, stores them and moves the case triage → request_drafted. Any
refusal is one AtalayaError raised before anything is written, or inside
the transaction that then rolls back.

A preservation order keeps the data for 90 days and may be extended once,
by 90 more (588 octies); `preserve` records each order as a document whose
details carry its period, which `atalaya deadlines` shows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pyhanko.sign.signers.pdf_cms import Signer
from sqlalchemy import Connection, func, select

from atalaya.accounts import Permission, User, require
from atalaya.cases.courts import RequestConfig, load_config, templates_folder
from atalaya.cases.documents import (
    DocumentFormat,
    DocumentKind,
    StoredDocument,
    list_documents,
    store_document,
)
from atalaya.cases.records import Case, get_case, move_case, pinned_sightings
from atalaya.cases.request_model import (
    CaseFacts,
    JudicialRequest,
    PreservationRequest,
    gather,
    judicial_request,
    preservation_request,
    spanish_date,
)
from atalaya.cases.requests.render import render_pair
from atalaya.cases.retention import DEFAULT_SETTINGS, RetentionSettings
from atalaya.cases.states import FINAL, State
from atalaya.errors import N_, AtalayaError
from atalaya.signing import key_from_env, open_signer, sign_pdf
from atalaya.store.tables import case_document, case_sighting, lead
from atalaya.store.times import utc

DRAFTABLE = frozenset({State.TRIAGE})
PRESERVATION_DAYS = 90


class RequestError(AtalayaError):
    """A request that may not be drafted (nothing is written)."""


@dataclass(frozen=True)
class Drafted:
    case: Case
    model: JudicialRequest | PreservationRequest
    pdf: StoredDocument
    docx: StoredDocument
    court: str | None
    operators: list[str]


@dataclass(frozen=True)
class Renderer:
    """What rendering needs besides the model: settings, templates, the unit's key."""

    config: RequestConfig
    templates: Path | None = None
    signer: Signer | None = None
    retention: RetentionSettings = DEFAULT_SETTINGS


@contextmanager
def configured_renderer() -> Iterator[Renderer]:
    """The renderer the settings describe: ATALAYA_REQUESTS_CONFIG and _TEMPLATES, and
    the signing key (`atalaya.signing`) when one is set (the CLI and the web app)."""
    config = load_config()
    folder = templates_folder()
    key = key_from_env()
    if key is None:
        yield Renderer(config, folder)
        return
    with open_signer(key) as signer:
        yield Renderer(config, folder, signer)


def _country(conn: Connection, lead_id: int) -> str | None:
    return conn.scalar(select(lead.c.country).where(lead.c.id == lead_id))


def _already_requested(conn: Connection, case_id: int, ids: Sequence[int]) -> tuple[int, int]:
    """(other case, how many) when another case's judicial request covers some of `ids`."""
    judicial = select(case_document.c.case_id).where(
        case_document.c.kind == DocumentKind.JUDICIAL.value
    )
    found: dict[int, int] = {}
    for start in range(0, len(ids), 500):
        part = list(ids[start : start + 500])
        rows = conn.execute(
            select(case_sighting.c.case_id, func.count())
            .where(
                case_sighting.c.sighting_id.in_(part),
                case_sighting.c.case_id != case_id,
                case_sighting.c.case_id.in_(judicial),
            )
            .group_by(case_sighting.c.case_id)
        )
        for other, count in rows:
            found[int(other)] = found.get(int(other), 0) + int(count)
    if not found:
        return 0, 0
    other = min(found)
    return other, found[other]


def _facts(
    conn: Connection,
    user: User,
    case: Case,
    renderer: Renderer,
    now: datetime,
    pinned: Sequence[int] | None = None,
) -> CaseFacts:
    if pinned is None:
        pinned = pinned_sightings(conn, case.id)
    rule = renderer.retention.rule_for(_country(conn, case.lead_id))
    cf = gather(conn, user, case, renderer.config, rule, now, pinned)
    if not cf.rows:
        raise RequestError(
            N_(
                "case %(case)s: every one of its %(count)s observations has expired at the "
                "ISP (retention clock): there is nothing left to ask for"
            ),
            case=case.id,
            count=len(pinned),
        )
    return cf


def _preservation_text(docs: Sequence[StoredDocument]) -> str:
    orders = [d for d in docs if d.format is DocumentFormat.PDF]
    if not orders:
        return (
            "No consta requerimiento previo de conservación de estos datos (artículo 588 "
            "octies LECrim)."
        )
    first, last = orders[0], orders[-1]
    until = datetime.fromisoformat(str(last.details["until"]))
    extended = " y prorrogado una vez" if len(orders) > 1 else ""
    return (
        f"El {spanish_date(first.created_at.date())} se requirió al operador la conservación "
        f"de estos datos (artículo 588 octies LECrim){extended}, vigente hasta el "
        f"{spanish_date(until.date())}."
    )


def render_signed(
    model: JudicialRequest | PreservationRequest,
    kind: DocumentKind,
    renderer: Renderer,
    now: datetime,
    reason: str,
) -> tuple[bytes, bytes]:
    """The PDF (signed when the renderer has a key) and the DOCX of a model."""
    pdf, docx = render_pair(model.data(), kind, renderer.templates, now)
    return sign_rendered(pdf, model, renderer, reason), docx


def sign_rendered(
    pdf: bytes, model: JudicialRequest | PreservationRequest, renderer: Renderer, reason: str
) -> bytes:
    if renderer.signer is None:
        return pdf
    return sign_pdf(pdf, renderer.signer, reason=reason, location=model.place or None)


def _store_bodies(
    conn: Connection,
    user: User,
    case: Case,
    kind: DocumentKind,
    bodies: tuple[bytes, bytes],
    signed: bool,
    now: datetime,
    details: dict[str, Any],
) -> tuple[StoredDocument, StoredDocument]:
    pdf, docx = bodies
    stored_pdf = store_document(
        conn, case.id, kind, DocumentFormat.PDF, pdf,
        created_at=now, created_by=user.username, signed=signed, details=details,
    )  # fmt: skip
    stored_docx = store_document(
        conn, case.id, kind, DocumentFormat.DOCX, docx,
        created_at=now, created_by=user.username, signed=False, details=details,
    )  # fmt: skip
    return stored_pdf, stored_docx


@dataclass(frozen=True)
class Prepared:
    """A judicial request checked and modelled, not yet rendered nor stored."""

    case: Case
    model: JudicialRequest
    details: dict[str, Any]

    @property
    def reason(self) -> str:
        return f"Solicitud judicial, atestado {self.model.atestado}"


def prepare_request(
    conn: Connection,
    user: User,
    case: Case,
    now: datetime,
    renderer: Renderer,
    *,
    secrecy: bool = False,
    pinned: Sequence[int] | None = None,
) -> Prepared:
    """Every check of `draft_request` and the document model; writes nothing.

    `pinned`: the sightings the case pins (read from the store when None; a
    batch passes those a case it is about to open will pin).
    """
    if case.state not in DRAFTABLE:
        raise RequestError(
            N_(
                "case %(case)s is %(state)s: a judicial request is drafted from triage "
                "only ('atalaya requests show' lists what it has)"
            ),
            case=case.id,
            state=case.state,
        )
    if list_documents(conn, case.id, DocumentKind.JUDICIAL):
        raise RequestError(N_("case %(case)s already has a judicial request"), case=case.id)
    cf = _facts(conn, user, case, renderer, now, pinned)
    ids = [int(r.id) for r in cf.rows]
    other, count = _already_requested(conn, case.id, ids)
    if other:
        raise RequestError(
            N_(
                "case %(case)s: %(count)s of its observations were already asked of a judge in "
                "case %(other)s's request: a second request for the same observations is refused"
            ),
            case=case.id,
            count=count,
            other=other,
        )
    preserved = list_documents(conn, case.id, DocumentKind.PRESERVATION)
    model = judicial_request(
        conn, cf, renderer.config, now, secrecy=secrecy,
        preservation=_preservation_text(preserved),
    )  # fmt: skip
    details = {
        "atestado": model.atestado,
        "court": model.court.name,
        "operators": [o.name for o in model.operators],
        "asns": [op.asn for op in cf.operators],
        "sightings": ids,
        "secrecy": secrecy,
    }
    return Prepared(case, model, details)


def store_prepared(
    conn: Connection,
    user: User,
    prepared: Prepared,
    bodies: tuple[bytes, bytes],
    signed: bool,
    now: datetime,
) -> Drafted:
    """Store a prepared request's rendered documents and move its case to request_drafted."""
    model = prepared.model
    pdf, docx = _store_bodies(
        conn, user, prepared.case, DocumentKind.JUDICIAL, bodies, signed, now, prepared.details
    )
    moved = move_case(
        conn, user, prepared.case.id, State.REQUEST_DRAFTED,
        f"solicitud judicial redactada (atestado {model.atestado})", now,
    )  # fmt: skip
    return Drafted(moved, model, pdf, docx, model.court.name, [o.name for o in model.operators])


def draft_request(
    conn: Connection,
    user: User,
    case_id: int,
    now: datetime,
    renderer: Renderer,
    *,
    secrecy: bool = False,
) -> Drafted:
    """Draft the case's judicial request (PDF/A, signed when a key is configured, and
    DOCX), store both and move the case to request_drafted."""
    require(user.role, Permission.CHANGE_LEADS)
    case = get_case(conn, user, case_id)
    prepared = prepare_request(conn, user, case, now, renderer, secrecy=secrecy)
    bodies = render_signed(prepared.model, DocumentKind.JUDICIAL, renderer, now, prepared.reason)
    return store_prepared(conn, user, prepared, bodies, renderer.signer is not None, now)


@dataclass(frozen=True)
class Preservation:
    """A case's preservation order: when it ends, and whether it was extended."""

    case_id: int
    since: datetime
    until: datetime
    extended: bool

    def days_left(self, now: datetime) -> int:
        return (self.until - utc(now)) // timedelta(days=1)


def preservation_of(conn: Connection, case_id: int) -> Preservation | None:
    orders = [
        d for d in list_documents(conn, case_id, DocumentKind.PRESERVATION)
        if d.format is DocumentFormat.PDF
    ]  # fmt: skip
    if not orders:
        return None
    return Preservation(
        case_id=case_id,
        since=orders[0].created_at,
        until=utc(datetime.fromisoformat(str(orders[-1].details["until"]))),
        extended=len(orders) > 1,
    )


def preserve(
    conn: Connection,
    user: User,
    case_id: int,
    now: datetime,
    renderer: Renderer,
    *,
    extend: bool = False,
) -> Drafted:
    """Draft a preservation order for the case's live observations (90 days), or its
    one extension (90 more, from the end of the first period)."""
    require(user.role, Permission.CHANGE_LEADS)
    case = get_case(conn, user, case_id)
    if case.state in FINAL:
        raise RequestError(
            N_("case %(case)s is %(state)s: nothing to preserve"), case=case.id, state=case.state
        )
    current = preservation_of(conn, case.id)
    if extend:
        if current is None:
            raise RequestError(
                N_(
                    "case %(case)s has no preservation order to extend: "
                    "'atalaya requests preserve %(case)s' first"
                ),
                case=case.id,
            )
        if current.extended:
            raise RequestError(
                N_(
                    "case %(case)s: its preservation order was extended already; 588 octies "
                    "allows one extension only"
                ),
                case=case.id,
            )
        if current.until <= utc(now):
            raise RequestError(
                N_(
                    "case %(case)s: its preservation order ended on %(day)s; "
                    "an ended order cannot be extended"
                ),
                case=case.id,
                day=current.until.date(),
            )
        start = current.until
    else:
        if current is not None and current.until > utc(now):
            raise RequestError(
                N_(
                    "case %(case)s has a preservation order until %(day)s: "
                    "use --extend to extend it once"
                ),
                case=case.id,
                day=current.until.date(),
            )
        start = utc(now)
    end = start + timedelta(days=PRESERVATION_DAYS)
    cf = _facts(conn, user, case, renderer, now)
    model = preservation_request(
        cf, renderer.config, now, extension=extend, start=start, end=end,
        days=PRESERVATION_DAYS,
    )  # fmt: skip
    details = {
        "atestado": model.atestado,
        "operators": [o.name for o in model.operators],
        "sightings": [int(r.id) for r in cf.rows],
        "since": start.isoformat(),
        "until": end.isoformat(),
        "extension": extend,
    }
    bodies = render_signed(
        model, DocumentKind.PRESERVATION, renderer, now,
        f"Orden de conservación, atestado {model.atestado}",
    )  # fmt: skip
    pdf, docx = _store_bodies(
        conn, user, case, DocumentKind.PRESERVATION, bodies, renderer.signer is not None, now,
        details,
    )  # fmt: skip
    return Drafted(case, model, pdf, docx, None, [o.name for o in model.operators])
