"""The funnel page (/funnel): where the unit's cases die, per period, province and unit.

Figures only (no lead, case or person is named), read through
`atalaya.cases.funnel` and audited like the command (`CaseAction.FUNNEL`).
The period and place come from the query string: since, until (UTC dates),
province (INE code) and unit (a unit's name, or "all"; the user's own by
default).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import Response

from atalaya.accounts.units import list_units
from atalaya.cases.funnel import Funnel, funnel, resolve_scope
from atalaya.cases.service import CaseAction, audited
from atalaya.errors import N_, AtalayaError
from atalaya.web.i18n import _, error_text

if TYPE_CHECKING:
    from atalaya.web.app import WebApp

MAX_PARAM = 40


def _date(value: str | None, name: str) -> datetime | None:
    if value is None or not value.strip():
        return None
    text = value.strip()[:MAX_PARAM]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise AtalayaError(
            N_("%(name)s %(text)r is not a date like 2026-11-23"), name=name, text=text
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def funnel_page(web: WebApp, request: Request) -> Response:
    session = web.session(request)
    denied = web.require_leads(request, session)
    if denied is not None:
        return denied
    user = session.user
    params = request.query_params
    now = web.now()

    def work(conn: Connection) -> tuple[tuple[Funnel, list[str]], dict[str, Any]]:
        scope, name = resolve_scope(
            conn,
            (user.unit_id, user.unit_name),
            since=_date(params.get("since"), "since"),
            until=_date(params.get("until"), "until"),
            province=(params.get("province") or "")[:MAX_PARAM] or None,
            unit=(params.get("unit") or "")[:200] or None,
            now=now,
        )
        result = funnel(conn, scope, now, unit_name=name)
        units = [u.name for u in list_units(conn)]
        return (result, units), {
            "since": scope.since.isoformat(),
            "until": scope.until.isoformat(),
            "province": scope.province,
            "unit": name,
        }

    try:
        result, units = audited(
            web.engine,
            user,
            CaseAction.FUNNEL,
            work,
            object_type="funnel",
            client_address=web.client(request),
        )
    except AtalayaError as exc:
        return web.render(
            "error.html",
            {"title": _("Bad filter"), "message": error_text(exc), "retry": "/funnel"},
            session=session,
            status=400,
        )
    widest = max((s.count for s in result.steps), default=0)
    return web.render(
        "funnel.html",
        {
            "funnel": result,
            "widest": widest,
            "units": units,
            "unit_param": params.get("unit", "")[:200],
            "since_value": f"{result.scope.since:%Y-%m-%d}",
            "until_value": f"{result.scope.until:%Y-%m-%d}",
        },
        session=session,
    )
