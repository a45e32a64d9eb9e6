"""Case pages: the unit's list (/cases), one case (/cases/<id>), and the forms that
open a case from a lead's page, move it and add notes.

Every page and form goes through `atalaya.cases.service.audited`: a case of
another unit, or none, answers the same 404 and is recorded as denied;
forms need the session's CSRF token like every other POST.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from atalaya.accounts.roles import Permission, has_permission
from atalaya.accounts.sessions import Session, check_csrf
from atalaya.audit.log import Outcome
from atalaya.cases.deadlines import case_clock
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
from atalaya.cases.service import CaseAction, audited
from atalaya.cases.states import LABELS, allowed, parse_state
from atalaya.errors import AtalayaError
from atalaya.leads import lead_country
from atalaya.observe import sightings_by_id
from atalaya.web.filters import MAX_LEAD_ID
from atalaya.web.i18n import _

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

    def work(conn: Connection) -> tuple[list[Case], dict[str, Any]]:
        found = list_cases(conn, user)
        return found, {"results": len(found)}

    cases = audited(
        web.engine,
        user,
        CaseAction.LIST,
        work,
        object_type="cases",
        client_address=web.client(request),
    )
    return web.render("cases.html", {"cases": cases, "labels": LABELS}, session=session)


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
        return {
            "case": case,
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
        },
        session=session,
        status=status,
    )


def _check_form(
    web: WebApp, request: Request, session: Session, form: dict[str, Any], action: CaseAction
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
        return web._lead_response(request, session, lead_id, error=str(exc), status=409)
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
        return _case_response(web, request, session, case_id, error=str(exc), status=400)
    return RedirectResponse(f"/cases/{case_id}", status_code=303)
