"""Case pages: the unit's list (/cases), one case (/cases/<id>), and the forms that
open a case from a lead's page, move it, add notes, draft its judicial request
(what `atalaya requests draft-case` does) and download its documents.

A download is a disclosure: it names its recipient, and its purpose is the
case (LED art. 25), both in the audit record.

Every page and form goes through `atalaya.cases.service.audited`: a case of
another unit, or none, answers the same 404 and is recorded as denied;
forms need the session's CSRF token like every other POST.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from atalaya.accounts.roles import Permission, has_permission
from atalaya.accounts.sessions import Session, check_csrf
from atalaya.audit.log import Outcome
from atalaya.audit.purpose import MAX_RECIPIENT, PurposeError, check_recipient, purpose_details
from atalaya.cases.deadlines import case_clock
from atalaya.cases.documents import (
    MEDIA_TYPES,
    DocumentFormat,
    DocumentKind,
    StoredDocument,
    document_body,
    list_documents,
)
from atalaya.cases.records import (
    Case,
    CaseNotFoundError,
    LeadNotFoundError,
    case_events,
    get_case,
    list_cases,
    move_case,
    note_case,
    open_case,
    pinned_sightings,
)
from atalaya.cases.requests.draft import DRAFTABLE, Drafted, configured_renderer, draft_request
from atalaya.cases.requests_cli import RequestAction
from atalaya.cases.service import CaseAction, audited
from atalaya.cases.states import LABELS, allowed, parse_state
from atalaya.errors import AtalayaError
from atalaya.leads import lead_country
from atalaya.observe import sightings_by_id
from atalaya.web.filters import MAX_LEAD_ID, FilterError
from atalaya.web.i18n import _, error_text
from atalaya.web.id_lists import IdListError, parse_ids

if TYPE_CHECKING:
    from atalaya.web.app import WebApp

MAX_CASE_ID = 2**31 - 1
PINNED_SHOWN = 200


class CaseIdConvertor(Convertor[int]):
    """A case id in a path: 1 to 10 digits (larger is no case, checked again below)."""

    regex = "[0-9]{1,10}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(int(value))


register_url_convertor("case_id", CaseIdConvertor())


def _session(web: WebApp, request: Request) -> tuple[Session, Response | None]:
    session = web.session(request)
    return session, web.require_leads(request, session)


def cases_page(web: WebApp, request: Request) -> Response:
    session, denied = _session(web, request)
    if denied is not None:
        return denied
    user = session.user
    # A bulk open lands here with the cases it opened; any list of ids works.
    wanted = _shown_cases(request)

    def work(conn: Connection) -> tuple[list[Case], dict[str, Any]]:
        found = list_cases(conn, user)
        if wanted is not None:
            found = [c for c in found if c.id in wanted]
            return found, {"results": len(found), "cases": sorted(wanted)}
        return found, {"results": len(found)}

    cases = audited(
        web.engine,
        user,
        CaseAction.LIST,
        work,
        object_type="cases",
        client_address=web.client(request),
    )
    return web.render(
        "cases.html",
        {
            "cases": cases,
            "labels": LABELS,
            "only": wanted,
            "opened": wanted is not None and request.query_params.get("opened") == "1",
        },
        session=session,
    )


def _shown_cases(request: Request) -> set[int] | None:
    """The cases a /cases URL names (`case`, repeated), or None for every case;
    FilterError (the page's "bad filter" answer) for junk or too many."""
    values = request.query_params.getlist("case")
    if not values:
        return None
    try:
        return set(parse_ids(values))
    except IdListError as exc:
        assert exc.template is not None
        raise FilterError(exc.template, **exc.params) from None


def case_page(web: WebApp, request: Request) -> Response:
    session, denied = _session(web, request)
    if denied is not None:
        return denied
    return _case_response(web, request, session, request.path_params["case_id"])


def _case_response(
    web: WebApp,
    request: Request,
    session: Session,
    case_id: int,
    *,
    error: str | None = None,
    status: int = 200,
    error_id: str = "case-error",
) -> Response:
    user = session.user
    now = web.now()

    def work(conn: Connection) -> tuple[dict[str, Any], dict[str, Any]]:
        if case_id > MAX_CASE_ID:
            raise CaseNotFoundError(case_id)
        case = get_case(conn, user, case_id)
        country = lead_country(conn, case.lead_id)
        ids = pinned_sightings(conn, case.id)
        rows = sightings_by_id(conn, ids[:PINNED_SHOWN])
        documents = list_documents(conn, case.id)
        return {
            "case": case,
            "requests": _requests(documents),
            "draftable": case.state in DRAFTABLE
            and not any(d.kind is DocumentKind.JUDICIAL for d in documents),
            "clock": case_clock(conn, case.id, country, now),
            "events": case_events(conn, case.id),
            "pinned": rows,
            "pinned_total": len(ids),
        }, {"lead": case.lead_id}

    try:
        context = audited(
            web.engine,
            user,
            CaseAction.VIEW,
            work,
            object_id=case_id,
            client_address=web.client(request),
        )
    except CaseNotFoundError:
        return web._not_found(session)
    case: Case = context["case"]
    return web.render(
        "case.html",
        {
            **context,
            "labels": LABELS,
            "next_states": allowed(case.state),
            "error": error,
            "error_id": error_id,
        },
        session=session,
        status=status,
    )


def _check_form(
    web: WebApp, request: Request, session: Session, form: dict[str, Any], action: StrEnum
) -> Response | None:
    """Refuse (audited) a form without the session's CSRF token, or from a role that
    may not work cases; None when it may go on."""
    reason = None
    if not check_csrf(session, str(form.get("csrf", ""))):
        reason = "CSRF token missing or wrong"
    elif not has_permission(session.user.role, Permission.CHANGE_LEADS):
        reason = "role"
    if reason is None:
        return None
    web.audit(
        request,
        session,
        action.value,
        outcome=Outcome.DENIED,
        object_type="case",
        object_id=request.url.path[:200],
        details={"reason": reason},
    )
    if reason == "role":
        return web.require_leads_change(session)
    raise HTTPException(403, _("the form's CSRF token does not match this session"))


def open_submit(web: WebApp, request: Request, form: dict[str, Any]) -> Response:
    session = web.session(request)
    refused = _check_form(web, request, session, form, CaseAction.OPEN)
    if refused is not None:
        return refused
    lead_id = request.path_params["lead_id"]
    reason = str(form.get("reason", ""))

    def work(conn: Connection) -> tuple[Case, dict[str, Any]]:
        if lead_id > MAX_LEAD_ID:
            raise LeadNotFoundError(lead_id)
        case = open_case(conn, session.user, lead_id, web.now(), reason=reason)
        return case, {"case": case.id}

    try:
        case = audited(
            web.engine,
            session.user,
            CaseAction.OPEN,
            work,
            object_type="lead",
            object_id=lead_id,
            details={"reason": reason},
            client_address=web.client(request),
        )
    except LeadNotFoundError:
        return web._not_found(session)
    except AtalayaError as exc:
        return web._lead_response(request, session, lead_id, error=error_text(exc), status=409)
    return RedirectResponse(f"/cases/{case.id}", status_code=303)


def move_submit(web: WebApp, request: Request, form: dict[str, Any]) -> Response:
    session = web.session(request)
    refused = _check_form(web, request, session, form, CaseAction.MOVE)
    if refused is not None:
        return refused
    case_id = request.path_params["case_id"]
    reason = str(form.get("reason", ""))
    target_text = str(form.get("state", ""))[:40]

    def work(conn: Connection) -> tuple[Case, dict[str, Any]]:
        if case_id > MAX_CASE_ID:
            raise CaseNotFoundError(case_id)
        before = get_case(conn, session.user, case_id).state
        target = parse_state(target_text)
        return move_case(conn, session.user, case_id, target, reason, web.now()), {
            "from": before.value
        }

    return _change(
        web, request, session, case_id, CaseAction.MOVE, work, {"to": target_text, "reason": reason}
    )


def note_submit(web: WebApp, request: Request, form: dict[str, Any]) -> Response:
    session = web.session(request)
    refused = _check_form(web, request, session, form, CaseAction.NOTE)
    if refused is not None:
        return refused
    case_id = request.path_params["case_id"]
    text = str(form.get("text", ""))

    def work(conn: Connection) -> tuple[Case, dict[str, Any]]:
        if case_id > MAX_CASE_ID:
            raise CaseNotFoundError(case_id)
        return note_case(conn, session.user, case_id, text, web.now()), {}

    return _change(web, request, session, case_id, CaseAction.NOTE, work, {"length": len(text)})


def _change(
    web: WebApp,
    request: Request,
    session: Session,
    case_id: int,
    action: CaseAction,
    work: Any,
    details: dict[str, Any],
) -> Response:
    try:
        audited(
            web.engine,
            session.user,
            action,
            work,
            object_id=case_id,
            details=details,
            client_address=web.client(request),
        )
    except CaseNotFoundError:
        return web._not_found(session)
    except AtalayaError as exc:
        return _case_response(web, request, session, case_id, error=error_text(exc), status=400)
    return RedirectResponse(f"/cases/{case_id}", status_code=303)


@dataclass(frozen=True)
class CaseRequest:
    """One request of a case as its page lists it: the PDF and DOCX drafted together."""

    kind: DocumentKind
    created_at: datetime
    created_by: str
    signed: bool
    recipient: str  # who it is addressed to: the court, or the operators
    pdf: StoredDocument | None
    docx: StoredDocument | None


def _requests(documents: list[StoredDocument]) -> list[CaseRequest]:
    """The case's documents paired by request (same kind and time), oldest first."""
    found: dict[tuple[DocumentKind, datetime], dict[DocumentFormat, StoredDocument]] = {}
    for d in documents:
        found.setdefault((d.kind, d.created_at), {})[d.format] = d
    out = []
    for (kind, at), pair in found.items():
        first = next(iter(pair.values()))
        court = first.details.get("court")
        operators = first.details.get("operators") or []
        recipient = str(court) if court else "; ".join(str(o) for o in operators)
        pdf = pair.get(DocumentFormat.PDF)
        signed = bool(pdf and pdf.signed)
        docx = pair.get(DocumentFormat.DOCX)
        out.append(
            CaseRequest(kind, at, first.created_by, signed, recipient[:MAX_RECIPIENT], pdf, docx)
        )
    return out


def draft_submit(web: WebApp, request: Request, form: dict[str, Any]) -> Response:
    """Draft the case's judicial request, as `atalaya requests draft-case` does."""
    session = web.session(request)
    refused = _check_form(web, request, session, form, RequestAction.DRAFT)
    if refused is not None:
        return refused
    case_id = request.path_params["case_id"]
    secrecy = str(form.get("secrecy", "")) == "on"
    now = web.now()
    try:
        with configured_renderer() as renderer:

            def work(conn: Connection) -> tuple[Drafted, dict[str, Any]]:
                if case_id > MAX_CASE_ID:
                    raise CaseNotFoundError(case_id)
                drafted = draft_request(conn, session.user, case_id, now, renderer, secrecy=secrecy)
                return drafted, {
                    "lead": drafted.case.lead_id,
                    "documents": [drafted.pdf.id, drafted.docx.id],
                    "sha256": drafted.pdf.sha256,
                    "recipient": drafted.court,
                }

            audited(
                web.engine, session.user, RequestAction.DRAFT, work, object_id=case_id,
                details={"secrecy": secrecy}, client_address=web.client(request),
            )  # fmt: skip
    except CaseNotFoundError:
        return web._not_found(session)
    except AtalayaError as exc:
        # Settings that name no court or operator, an expired lead, a second request:
        # one clear line on the case's page, and nothing written.
        return _case_response(
            web,
            request,
            session,
            case_id,
            error=error_text(exc),
            status=409,
            error_id="request-error",
        )
    return RedirectResponse(f"/cases/{case_id}#requests", status_code=303)


def document_download(web: WebApp, request: Request) -> Response:
    """One of the case's documents, as a file: a disclosure, audited with its recipient
    and its purpose (the case)."""
    session, denied = _session(web, request)
    if denied is not None:
        return denied
    case_id = request.path_params["case_id"]
    doc_text = request.query_params.get("doc", "")[:12]
    recipient_text = request.query_params.get("recipient", "")[: MAX_RECIPIENT + 1]
    doc_id = int(doc_text) if doc_text.isdigit() else 0
    purpose = f"case:{case_id}"

    def work(conn: Connection) -> tuple[tuple[StoredDocument, bytes], dict[str, Any]]:
        if case_id > MAX_CASE_ID:
            raise CaseNotFoundError(case_id)
        case = get_case(conn, session.user, case_id)
        found = next((d for d in list_documents(conn, case.id) if d.id == doc_id), None)
        if found is None:
            raise CaseNotFoundError(case_id)
        recipient = check_recipient(recipient_text)
        assert recipient is not None
        return (found, document_body(conn, found.id)), {
            "lead": case.lead_id,
            "document": found.id,
            "name": found.name,
            "sha256": found.sha256,
            **purpose_details(purpose, recipient),
        }

    try:
        doc, body = audited(
            web.engine, session.user, RequestAction.DOCUMENTS, work, object_id=case_id,
            details={"document": doc_id, "purpose": purpose, "via": "web"},
            client_address=web.client(request),
        )  # fmt: skip
    except CaseNotFoundError:
        return web._not_found(session)
    except PurposeError:
        return _case_response(
            web, request, session, case_id, status=400, error_id="download-error",
            error=_("A download is a disclosure: name its recipient (a court, a unit)."),
        )  # fmt: skip
    return Response(
        body,
        media_type=MEDIA_TYPES[doc.format],
        headers={"Content-Disposition": f'attachment; filename="{doc.name}"'},
    )
