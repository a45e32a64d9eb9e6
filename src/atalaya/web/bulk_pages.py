"""Bulk actions: one case per selected lead of the list, all or none; the judicial
request of each selected case of /cases.

Spanish courts want one judicial request per person, so a bulk action never
merges leads: it opens one case per lead, each its own, in one transaction
with one audit record, as `atalaya cases open LEAD…` does. When one lead
cannot be taken (not the unit's, merged away, already in an open case, no
sightings) nothing is written and the page names that lead and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from atalaya.accounts.sessions import Session
from atalaya.audit.log import Outcome
from atalaya.cases.records import Case, LeadNotFoundError, list_cases, open_case
from atalaya.cases.requests.batch import draft_batch
from atalaya.cases.requests.draft import configured_renderer
from atalaya.cases.requests_cli import RequestAction
from atalaya.cases.service import CaseAction, audited
from atalaya.cases.states import State
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
# How the batch service marks a lead it did not draft, before the reason.
NOT_DRAFTED = "no redactada: "


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


class NotInTriageError(AtalayaError):
    """A selected case that is not one of the unit's cases in triage (or no case at all)."""

    def __init__(self, case_id: int) -> None:
        super().__init__(
            N_("case %(case)s is not one of your unit's cases in triage"), case=case_id
        )


@dataclass(frozen=True)
class DraftRow:
    """One selected case as the result page lists it: drafted, or why not."""

    case_id: int
    lead_id: int
    court: str
    drafted: bool
    reason: str  # why it was not drafted (the service's words), else ""


def _draft_refused(web: WebApp, session: Session, message: str, status: int) -> Response:
    return web.render(
        "error.html",
        {
            "title": _("No request was drafted"),
            "message": message,
            "detail": _("Nothing was written: take that case out of the selection and try again."),
            "back_href": "/cases",
            "back_text": _("Back to the cases"),
        },
        session=session,
        status=status,
    )


def draft_cases_submit(web: WebApp, request: Request, form: dict[str, Any]) -> Response:
    """Draft the judicial request of each selected case in triage (`case`, repeated),
    through the batch service of `atalaya requests draft`: one read, the documents
    rendered in worker processes, one audited write. A case the batch cannot draft
    (no court configured, an expired observation) is listed with the reason; the
    others are drafted."""
    session = web.session(request)
    refused = case_pages._check_form(web, request, session, form, RequestAction.DRAFT)
    if refused is not None:
        return refused
    secrecy = str(form.get("secrecy", "")) == "on"
    details = {"batch": True, "secrecy": secrecy, "via": "web"}
    try:
        ids = parse_ids([str(v) for v in form.get("case") or []])
        with web.engine.connect() as conn:
            triage = {c.id: c for c in list_cases(conn, session.user, states=[State.TRIAGE])}
        for case_id in ids:
            if case_id not in triage:
                raise NotInTriageError(case_id)
    except AtalayaError as exc:
        web.audit(
            request,
            session,
            RequestAction.DRAFT.value,
            outcome=Outcome.DENIED,
            object_type="cases",
            details={**details, "refused": str(exc)},
        )
        status = 400 if isinstance(exc, IdListError) else 409
        return _draft_refused(web, session, error_text(exc), status)
    by_lead = {triage[i].lead_id: triage[i] for i in ids}
    try:
        with configured_renderer() as renderer, TemporaryDirectory() as out:
            # The batch also files the documents in folders with an index; the web
            # keeps only what it stores (each case's page offers its documents).
            items = draft_batch(
                web.engine, session.user, list(by_lead), web.now(), renderer, Path(out),
                action=RequestAction.DRAFT, details=details, secrecy=secrecy,
                client_address=web.client(request),
            )  # fmt: skip
    except AtalayaError as exc:
        return _draft_refused(web, session, error_text(exc), 409)
    rows = [
        DraftRow(
            # The case the batch drafted: the one selected unless it left triage
            # after the check above and the batch opened the lead a new one.
            case_id=i.case_id if i.case_id is not None else by_lead[i.lead_id].id,
            lead_id=i.lead_id,
            court=i.court,
            drafted=i.case_id is not None,
            reason="" if i.case_id is not None else i.status.removeprefix(NOT_DRAFTED),
        )
        for i in items
    ]
    return web.render(
        "requests_drafted.html",
        {"rows": rows, "drafted": sum(1 for r in rows if r.drafted), "secrecy": secrecy},
        session=session,
        status=200,
    )
