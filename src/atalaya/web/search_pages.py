"""Search from one box: /search (a page) and /api/search (JSON).

The box takes an IP address or prefix, an info-hash, eD2K or file hash, or
a peer id (atalaya.leads.search reads which from its shape). Only the leads
the user's unit holds are searched; every search is recorded in the audit
log as a read (action `search`, object `search`), with the leads it showed.
Input the box does not understand is a 400 that says what it accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from atalaya.accounts.sessions import Session
from atalaya.accounts.visibility import visible_lead_ids_clause
from atalaya.audit.log import Action, Outcome
from atalaya.audit.shown import shown_details
from atalaya.leads import lead_rows, row_record, score_band
from atalaya.leads.search import MAX_QUERY, SearchError, SearchResult, parse_query, search_leads

if TYPE_CHECKING:
    from atalaya.web.app import WebApp

Handler = Callable[[Request], Response]


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
        return None, str(exc)
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
        return JSONResponse({"error": "your role does not view leads"}, status_code=403)
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


def routes(
    web: WebApp, page: Callable[[Handler], Handler], api: Callable[[Handler], Handler]
) -> list[Route]:
    return [
        Route("/search", page(lambda r: search_page(web, r))),
        Route("/api/search", api(lambda r: api_search(web, r))),
    ]
