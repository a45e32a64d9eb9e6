"""Bulk actions of the lead list: one case per selected lead, all or none.

Spanish courts want one judicial request per person, so a bulk action never
merges leads: it opens one case per lead, each its own, in one transaction
with one audit record, as `atalaya cases open LEAD…` does. When one lead
cannot be taken (not the unit's, merged away, already in an open case, no
sightings) nothing is written and the page names that lead and why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from atalaya.accounts.sessions import Session
from atalaya.audit.log import Outcome
from atalaya.cases.records import Case, LeadNotFoundError, open_case
from atalaya.cases.service import CaseAction, audited
from atalaya.errors import N_, AtalayaError
from atalaya.web import case_pages
from atalaya.web.filters import MAX_LEAD_ID, FilterError, parse_filters
from atalaya.web.i18n import _, error_text
from atalaya.web.id_lists import IdListError, parse_ids

if TYPE_CHECKING:
    from atalaya.web.app import WebApp

# The form parser's own bound, above MAX_IDS so that a few more ids get the
# page's clear refusal rather than the parser's bare 400.
BULK_FORM_FIELDS = 1000
MAX_BACK = 16_384


class NotHeldError(AtalayaError):
    """A selected lead the user's unit does not hold (or none at all: the same words)."""

    def __init__(self, lead_id: int) -> None:
        super().__init__(N_("lead %(lead)s is not one of your unit's leads"), lead=lead_id)


def _back(text: str, web: WebApp) -> str:
    """The list's filters to go back to, when they are filters (else none)."""
    text = text[:MAX_BACK]
    try:
        parse_filters(dict(parse_qsl(text)), today=web.now().date())
    except FilterError:
        return ""
    return text


def _refused(web: WebApp, session: Session, message: str, back: str, status: int) -> Response:
    return web.render(
        "error.html",
        {
            "title": _("No case was opened"),
            "message": message,
            "detail": _(
                "Nothing was written: take that lead out of the selection, or deal with it "
                "first, and try again."
            ),
            "back_href": "/?" + back if back else "/",
            "back_text": _("Back to the list"),
            "nav_query": back,
        },
        session=session,
        status=status,
    )


def open_cases_submit(web: WebApp, request: Request, form: dict[str, Any]) -> Response:
    """Open one case per lead the form names (`lead`, repeated), all or none."""
    session = web.session(request)
    refused = case_pages._check_form(web, request, session, form, CaseAction.OPEN)
    if refused is not None:
        return refused
    back = _back(str(form.get("back", "")), web)
    reason = str(form.get("reason", ""))
    raw = form.get("lead") or []
    try:
        ids = parse_ids([str(v) for v in raw])
    except IdListError as exc:
        web.audit(
            request,
            session,
            CaseAction.OPEN.value,
            outcome=Outcome.DENIED,
            object_type="lead",
            details={"bulk": True, "refused": str(exc)},
        )
        return _refused(web, session, error_text(exc), back, 400)
    now = web.now()

    def work(conn: Connection) -> tuple[list[Case], dict[str, Any]]:
        cases = []
        for lead_id in ids:
            if lead_id > MAX_LEAD_ID:
                raise NotHeldError(lead_id)
            try:
                cases.append(open_case(conn, session.user, lead_id, now, reason=reason))
            except LeadNotFoundError:
                # Another unit's lead and no lead at all read the same.
                raise NotHeldError(lead_id) from None
        return cases, {"cases": [{"case": c.id, "lead": c.lead_id} for c in cases]}

    try:
        cases = audited(
            web.engine,
            session.user,
            CaseAction.OPEN,
            work,
            object_type="lead",
            object_id=ids[0] if len(ids) == 1 else None,
            details={"leads": ids, "reason": reason, "bulk": True},
            client_address=web.client(request),
        )
    except AtalayaError as exc:
        return _refused(web, session, error_text(exc), back, 409)
    query = urlencode([("opened", "1"), *(("case", str(c.id)) for c in cases)])
    return RedirectResponse(f"/cases?{query}", status_code=303)
