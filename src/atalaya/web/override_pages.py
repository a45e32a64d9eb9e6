"""A supervisor approves or refuses, on the lead's page, an override that would make it urgent.

The same refusals as the override itself: the form's CSRF token, the role
(a supervisor), and the unit holding the lead, which answers like any
other lead the unit does not hold so that a guessed URL tells nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from atalaya.accounts.roles import Permission, has_permission
from atalaya.accounts.sessions import check_csrf
from atalaya.accounts.visibility import unit_holds
from atalaya.audit.log import Action, Outcome
from atalaya.errors import AtalayaError
from atalaya.leads import DecisionError, decide_override
from atalaya.web.filters import MAX_LEAD_ID
from atalaya.web.i18n import _, error_text

if TYPE_CHECKING:
    from atalaya.web.app import WebApp

MAX_OVERRIDE_ID = 2**63 - 1


def decide_submit(web: WebApp, request: Request, form: dict[str, Any]) -> Response:
    session = web.session(request)
    lead_id = request.path_params["lead_id"]
    override_id = _int(form.get("override"))

    def deny(reason: str) -> None:
        web.audit(
            request,
            session,
            Action.CHANGE,
            outcome=Outcome.DENIED,
            object_type="lead",
            object_id=lead_id,
            details={"override": override_id, "decision": True, "reason": reason},
        )

    if not check_csrf(session, str(form.get("csrf", ""))):
        deny("CSRF token missing or wrong")
        raise HTTPException(403, _("the form's CSRF token does not match this session"))
    if not has_permission(session.user.role, Permission.APPROVE_OVERRIDES):
        deny("role")
        return web.render(
            "error.html",
            {
                "title": _("Not allowed"),
                "message": _("Only a supervisor of the unit approves or refuses an override."),
            },
            session=session,
            status=403,
        )
    held = False
    if lead_id <= MAX_LEAD_ID:
        with web.engine.connect() as conn:
            held = unit_holds(conn, session.user.unit_id, lead_id)
    if not held:
        deny("not held by the unit")
        return web._not_found(session)
    # The button pressed: approve=1 or approve=0.
    verdict = str(form.get("approve", ""))
    back = str(form.get("back", ""))
    error = None
    if override_id is None:
        error = _("Choose the override to decide on.")
    elif verdict not in ("1", "0"):
        error = _("Approve or refuse the override.")
    if error is not None:
        deny(error)
        return web._lead_response(request, session, lead_id, error=error, status=400)
    assert override_id is not None
    try:
        decided = decide_override(
            web.engine,
            lead_id,
            override_id,
            approve=verdict == "1",
            reason=str(form.get("reason", "")),
            supervisor=session.user.username,
            unit_id=session.user.unit_id,
            now=web.now(),
        )
    except DecisionError as exc:
        deny(str(exc))
        return web._lead_response(request, session, lead_id, error=error_text(exc), status=409)
    except AtalayaError as exc:  # a lead merged away since the page was opened
        deny(str(exc))
        return web._lead_response(request, session, lead_id, error=error_text(exc), status=409)
    web.audit(
        request,
        session,
        Action.CHANGE,
        object_type="lead",
        object_id=lead_id,
        details={
            "override": override_id,
            "decision": decided["state"],
            "score": decided["score"],
            "analyst": decided["analyst"],
            "reason": decided["decision"]["reason"],
        },
    )
    target = f"/leads/{lead_id}" + (f"?{urlencode({'back': back})}" if back else "")
    return RedirectResponse(target, status_code=303)


def _int(value: object) -> int | None:
    text = str(value or "")
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    number = int(text)
    return number if 0 < number <= MAX_OVERRIDE_ID else None
