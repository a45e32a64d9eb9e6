"""Search from one box: /search (a page) and /api/search (JSON); saved
searches (POST /searches, POST /searches/<id>/delete) and "new since my last
visit" for the map page.

The box takes an IP address or prefix, an info-hash, eD2K or file hash, or
a peer id (atalaya.leads.search reads which from its shape). Only the leads
the user's unit holds are searched; every search is recorded in the audit
log as a read (action `search`, object `search`), with the leads it showed.
Input the box does not understand is a 400 that says what it accepts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MultiDict
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from atalaya.accounts.saved import (
    SavedSearch,
    SavedSearchError,
    delete_search_now,
    record_visit,
    save_search_now,
    saved_searches,
)
from atalaya.accounts.sessions import Session, check_csrf
from atalaya.accounts.visibility import visible_lead_ids_clause
from atalaya.audit.log import Action, Outcome
from atalaya.audit.shown import shown_details
from atalaya.leads import lead_rows, row_record, score_band
from atalaya.leads.search import MAX_QUERY, SearchError, SearchResult, parse_query, search_leads
from atalaya.web.filters import FilterError, parse_filters
from atalaya.web.i18n import _, error_text

if TYPE_CHECKING:
    from atalaya.web.app import WebApp

Handler = Callable[[Request], Response]
Post = Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]


def _search(
    web: WebApp, request: Request, session: Session, text: str
) -> tuple[SearchResult | None, str | None]:
    """The result, or the message of a query the box does not understand
    (audited either way)."""
    try:
        query = parse_query(text)
    except SearchError as exc:
        web.audit(
            request,
            session,
            Action.SEARCH,
            outcome=Outcome.DENIED,
            object_type="search",
            details={"query": text[:MAX_QUERY], "reason": str(exc)},
        )
        return None, error_text(exc)
    with web.engine.connect() as conn:
        result = search_leads(conn, query, visible=visible_lead_ids_clause(session.user.unit_id))
    web.audit(
        request,
        session,
        Action.SEARCH,
        object_type="search",
        details={
            "query": text[:MAX_QUERY],
            "kind": query.kind,
            "results": len(result.lead_ids),
            **shown_details(result.lead_ids),
        },
    )
    return result, None


def search_page(web: WebApp, request: Request) -> Response:
    session = web.session(request)
    denied = web.require_leads(request, session)
    if denied is not None:
        return denied
    text = request.query_params.get("q", "")
    context: dict[str, Any] = {"q": text[: MAX_QUERY + 1], "result": None, "error": None}
    status = 200
    if text.strip():
        result, error = _search(web, request, session, text)
        if error is not None:
            context["error"], status = error, 400
        else:
            assert result is not None
            with web.engine.connect() as conn:
                context["rows"] = lead_rows(conn, result.lead_ids)
            context["result"] = result
    return web.render("search.html", context, session=session, status=status)


def api_search(web: WebApp, request: Request) -> Response:
    session = web.session(request)
    if web.require_leads(request, session) is not None:
        return JSONResponse({"error": _("your role does not view leads")}, status_code=403)
    result, error = _search(web, request, session, request.query_params.get("q", ""))
    if error is not None:
        return JSONResponse({"error": error}, status_code=400)
    assert result is not None
    with web.engine.connect() as conn:
        rows = lead_rows(conn, result.lead_ids)
    return JSONResponse(
        {
            "query": result.query.text,
            "kind": result.query.kind,
            "understood": result.query.describe(),
            "total": len(rows),
            "truncated": result.truncated,
            "leads": [
                {
                    **row_record(r),
                    "band": score_band(r.score),
                    "matched": result.reasons.get(r.id, []),
                }
                for r in rows
            ],
        }
    )


def looked(web: WebApp, session: Session) -> tuple[datetime | None, list[SavedSearch]]:
    """For the map page: record the look, and give the instant leads are new
    after (None on a first visit) with the user's saved searches."""
    since = record_visit(web.engine, session.user.id, web.now())
    with web.engine.connect() as conn:
        return since, saved_searches(conn, session.user.id)


def new_since(web: WebApp, session: Session) -> datetime | None:
    """For the list's API: the same instant (a look too)."""
    return record_visit(web.engine, session.user.id, web.now())


MAX_FORM_BYTES = 16_384
MAX_SEARCH_ID = 2**31 - 1


def _saved_form(
    web: WebApp, request: Request, form: dict[str, Any], search_id: int | None
) -> Response:
    session = web.session(request)
    if not check_csrf(session, str(form.get("csrf", ""))):
        raise HTTPException(403, _("the form's CSRF token does not match this session"))
    query = str(form.get("query", ""))[:MAX_FORM_BYTES]
    if search_id is not None:
        removed = False
        if search_id <= MAX_SEARCH_ID:  # larger is no search, and no database integer
            removed = delete_search_now(web.engine, session.user.id, search_id)
        web.audit(
            request,
            session,
            Action.CHANGE,
            outcome=Outcome.OK if removed else Outcome.DENIED,
            object_type="saved_search",
            object_id=search_id,
            details={"removed": removed},
        )
        return RedirectResponse(f"/?{query}" if removed else "/", status_code=303)
    name = str(form.get("name", ""))
    try:
        # Saved as the filters give it back: only what a URL of the map holds.
        flt = parse_filters(MultiDict(parse_qsl(query)), today=web.now().date())
        saved = save_search_now(web.engine, session.user.id, name, flt.query(page=False), web.now())
    except (FilterError, SavedSearchError) as exc:
        return web.render(
            "error.html",
            {"title": _("Not saved"), "message": error_text(exc), "retry": "/"},
            session=session,
            status=400,
        )
    web.audit(
        request,
        session,
        Action.CHANGE,
        object_type="saved_search",
        object_id=saved.id,
        details={"name": saved.name, "query": saved.query},
    )
    return RedirectResponse(f"/?{saved.query}", status_code=303)


def _saved_post(web: WebApp, post: Post, delete: bool) -> Callable[[Request], Any]:
    async def read(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=10, max_part_size=MAX_FORM_BYTES)
        search_id = int(request.path_params["search_id"]) if delete else None
        response: Response = await run_in_threadpool(
            _saved_form, web, request, dict(form), search_id
        )
        return response

    async def handler(request: Request) -> Response:
        return await post(request, read)

    return handler


def routes(
    web: WebApp,
    page: Callable[[Handler], Handler],
    api: Callable[[Handler], Handler],
    post: Post,
) -> list[Route]:
    """The routes of this module; `page`, `api` and `post` are the app's
    wrappers (sign-in, bad filters, time limits)."""
    return [
        Route("/search", page(lambda r: search_page(web, r))),
        Route("/api/search", api(lambda r: api_search(web, r))),
        Route("/searches", _saved_post(web, post, delete=False), methods=["POST"]),
        Route(
            "/searches/{search_id:int}/delete",
            _saved_post(web, post, delete=True),
            methods=["POST"],
        ),
    ]


def saved_links(saved: list[SavedSearch]) -> list[dict[str, Any]]:
    return [{"id": s.id, "name": s.name, "href": f"/?{s.query}"} for s in saved]
