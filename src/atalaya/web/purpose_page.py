"""/purpose: what the session's reads of personal data are for (LED art. 25).

A session reads for "triage" until its user picks one of the unit's open
cases here (the header shows the purpose in force and links to this page).
The choice is kept with the session (`atalaya.accounts.session_purpose`)
and `WebApp.session` declares it for each request, so that every audit
record the request makes carries it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from atalaya.accounts.roles import Permission, has_permission
from atalaya.accounts.session_purpose import set_session_purpose
from atalaya.accounts.sessions import Session, check_csrf
from atalaya.audit.log import Outcome
from atalaya.audit.purpose import TRIAGE, PurposeError, current_purpose, parse_purpose, purpose_case
from atalaya.cases.records import Case, CaseNotFoundError, get_case, list_cases

if TYPE_CHECKING:
    from atalaya.web.app import WebApp

MAX_CHOICES = 200


def _safe_next(target: str) -> str:
    # Only paths on this site: "//host" and "/\\host" would leave it.
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def _choices(web: WebApp, session: Session) -> list[Case]:
    if not has_permission(session.user.role, Permission.VIEW_LEADS):
        return []
    with web.engine.connect() as conn:
        return list_cases(conn, session.user, open_only=True, limit=MAX_CHOICES)


def _form(
    web: WebApp,
    session: Session,
    target: str,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    return web.render(
        "purpose.html",
        {
            "current": current_purpose() or TRIAGE,
            "choices": _choices(web, session),
            "next": _safe_next(target),
            "error": error,
            "triage": TRIAGE,
        },
        session=session,
        status=status,
    )


def purpose_page(web: WebApp, request: Request) -> Response:
    session = web.session(request)
    return _form(web, session, request.query_params.get("next", "/"))


def purpose_submit(web: WebApp, request: Request, form: dict[str, Any]) -> Response:
    session = web.session(request)
    target = str(form.get("next", "/"))[:2000]
    if not check_csrf(session, str(form.get("csrf", ""))):
        web.audit(
            request,
            session,
            "purpose_set",
            outcome=Outcome.DENIED,
            object_type="session",
            object_id=session.id,
            details={"reason": "CSRF token missing or wrong"},
        )
        raise HTTPException(403, "the form's CSRF token does not match this session")
    asked = str(form.get("purpose", ""))[:40]
    try:
        purpose = parse_purpose(asked)
        case_id = purpose_case(purpose)
        if case_id is not None:
            # Only a case the user's unit may see: the same answer for another
            # unit's case and for none.
            with web.engine.connect() as conn:
                get_case(conn, session.user, case_id)
    except (PurposeError, CaseNotFoundError):
        web.audit(
            request,
            session,
            "purpose_set",
            outcome=Outcome.DENIED,
            object_type="session",
            object_id=session.id,
            details={"asked": asked},
        )
        return _form(
            web, session, target, error="Choose triage or one of your unit's cases.", status=400
        )
    set_session_purpose(web.engine, session, purpose, web.now(), web.client(request))
    return RedirectResponse(_safe_next(target), status_code=303)
