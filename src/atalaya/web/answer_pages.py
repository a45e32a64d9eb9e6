"""The ISP's answer on a case's page: the form that records it, the steps after it, and
the page that shows the subscriber next to the traffic data (a combination).

The forms go through the case pages' checks (session CSRF token, a role
that works cases) and `atalaya.cases.service.audited`. The identity page is
the only place the web app shows an identity: it needs a purpose, is
audited as `identity_combination` with it, and only analysts and
supervisors of the case's unit get it (atalaya.cases.identity); another
unit gets the same 404 as for no case.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import Response

from atalaya.cases.answers import (
    Answer,
    parse_addressing,
    parse_outcome,
    parse_step,
    record_answer,
    record_step,
)
from atalaya.cases.identity import (
    MAX_PURPOSE,
    Combination,
    IdentityAccessDeniedError,
    combination_details,
    combine,
)
from atalaya.cases.records import Case, CaseNotFoundError
from atalaya.cases.service import CaseAction, audited
from atalaya.errors import AtalayaError
from atalaya.web import case_pages
from atalaya.web.case_pages import MAX_CASE_ID
from atalaya.web.i18n import _, error_text

if TYPE_CHECKING:
    from atalaya.web.app import WebApp

# What the identity page's answer must never be kept as: a cached copy.
NO_STORE = {"Cache-Control": "no-store"}


def _text(form: dict[str, Any], name: str) -> str:
    return str(form.get(name, ""))


def answer_submit(web: WebApp, request: Request, form: dict[str, Any]) -> Response:
    session = web.session(request)
    refused = case_pages._check_form(web, request, session, form, CaseAction.ANSWER)
    if refused is not None:
        return refused
    case_id = request.path_params["case_id"]
    outcome_text = _text(form, "outcome")[:40]

    def work(conn: Connection) -> tuple[Case, dict[str, Any]]:
        if case_id > MAX_CASE_ID:
            raise CaseNotFoundError(case_id)
        now = web.now()
        answer = Answer(
            outcome=parse_outcome(outcome_text),
            received_at=now,
            name=_text(form, "name"),
            id_number=_text(form, "id_number"),
            address=_text(form, "address"),
            line=_text(form, "line"),
            addressing=parse_addressing(_text(form, "addressing")),
            notes=_text(form, "notes"),
            operator_reference=_text(form, "reference"),
        )
        case, answer_id = record_answer(conn, session.user, case_id, answer, now)
        return case, {"answer": answer_id, "lead": case.lead_id}

    # The audit record names the outcome and the answer's id, never the person.
    return case_pages._change(
        web, request, session, case_id, CaseAction.ANSWER, work, {"outcome": outcome_text}
    )


def step_submit(web: WebApp, request: Request, form: dict[str, Any]) -> Response:
    session = web.session(request)
    refused = case_pages._check_form(web, request, session, form, CaseAction.STEP)
    if refused is not None:
        return refused
    case_id = request.path_params["case_id"]
    step_text = _text(form, "step")[:40]
    text = _text(form, "text")

    def work(conn: Connection) -> tuple[Case, dict[str, Any]]:
        if case_id > MAX_CASE_ID:
            raise CaseNotFoundError(case_id)
        case = record_step(conn, session.user, case_id, parse_step(step_text), text, web.now())
        return case, {"lead": case.lead_id, "state": case.state.value}

    return case_pages._change(
        web, request, session, case_id, CaseAction.STEP, work,
        {"step": step_text, "length": len(text)},
    )  # fmt: skip


def identity_page(web: WebApp, request: Request) -> Response:
    session = web.session(request)
    denied = web.require_leads(request, session)
    if denied is not None:
        return denied
    user = session.user
    case_id = request.path_params["case_id"]
    purpose = request.query_params.get("purpose", "")[: MAX_PURPOSE + 1]

    def work(conn: Connection) -> tuple[Combination, dict[str, Any]]:
        if case_id > MAX_CASE_ID:
            raise CaseNotFoundError(case_id)
        found = combine(conn, user, case_id, purpose)
        return found, combination_details(found)

    try:
        found = audited(
            web.engine,
            user,
            CaseAction.COMBINE,
            work,
            object_id=case_id,
            details={"purpose": purpose.strip()},
            client_address=web.client(request),
        )
    except CaseNotFoundError:
        return web._not_found(session)
    except IdentityAccessDeniedError:
        return web.render(
            "error.html",
            {
                "title": _("Not allowed"),
                "message": _("Only analysts and supervisors of the case's unit read identities."),
            },
            session=session,
            status=403,
        )
    except AtalayaError as exc:
        return web.render(
            "error.html",
            {"title": _("Purpose needed"), "message": error_text(exc)},
            session=session,
            status=400,
        )
    return web.render("identity.html", {"found": found}, session=session, headers=NO_STORE)
