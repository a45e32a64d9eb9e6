"""The Starlette application: pages, small JSON APIs, assets.

Every page and API but the login form needs a session (atalaya.accounts);
leads, the map, charts and exports need the view_leads permission and show
only the leads the user's unit holds (`visible_lead_ids_clause`). A lead of
another unit answers 404 exactly like a lead that does not exist, and the
attempt is audited as denied. Every consultation is recorded with
atalaya.audit's `log_event`: searches (the list), map queries, lead views,
chart views, exports, changes; logins and logouts are recorded by accounts.

Handlers are plain functions: Starlette runs them in its thread pool, where
the synchronous SQLAlchemy engine belongs.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from hmac import compare_digest
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from atalaya.accounts.roles import Permission, has_permission
from atalaya.accounts.session_purpose import get_session_purpose
from atalaya.accounts.sessions import (
    LoginBusyError,
    LoginError,
    LoginThrottledError,
    Session,
    check_csrf,
    csrf_token,
    login,
    logout,
    session_user,
)
from atalaya.accounts.visibility import (
    conflict_clause,
    conflicts_for,
    unit_holds,
    visible_lead_ids_clause,
)
from atalaya.audit.log import (
    Action,
    Outcome,
    log_event,
)
from atalaya.audit.purpose import current_purpose, use_purpose
from atalaya.audit.shown import shown_details
from atalaya.cases.deadlines import lead_clock
from atalaya.cases.records import list_cases
from atalaya.enrich.store import attribution_of
from atalaya.errors import AtalayaError
from atalaya.hashsets.categories import Category
from atalaya.leads import (
    MAP_FIELDS,
    SCORE_BANDS,
    SORT_KEYS,
    STATUSES,
    LeadRow,
    Selected,
    chart_data,
    check_override_score,
    csv_parts,
    gather,
    geojson_parts,
    lead_exists,
    lead_records,
    lead_rows,
    lead_sightings,
    local_time,
    map_points,
    moved,
    override_score,
    page_of,
    period_figures,
    row_record,
    score_band,
    select_leads,
    sighting_csv_parts,
    sighting_json_parts,
    sighting_record,
    urgent_counts,
    urgent_municipality_counts,
)
from atalaya.observe import registry
from atalaya.web import (
    answer_pages,
    audit_pages,
    bulk_pages,
    case_pages,
    funnel_pages,
    i18n,
    override_pages,
    purpose_page,
    search_pages,
)
from atalaya.web.chart_links import chart_links
from atalaya.web.filters import MAX_LEAD_ID, FilterError, Filters, parse_filters
from atalaya.web.i18n import _, error_text
from atalaya.web.places import Places
from atalaya.web.query_limit import is_timeout, limit_statements
from atalaya.web.security import LOGIN_CSRF_COOKIE, SESSION_COOKIE, SecurityHeaders
from atalaya.web.settings import LIBRARIES, WebSettings, tile_origin
from atalaya.web.ui_text import ui_text

Clock = Callable[[], datetime]
LOG = logging.getLogger("atalaya.web")
MAX_FORM_BYTES = 16_384
# An override's reason: a sentence a reviewer can weigh, not a keystroke.
MIN_OVERRIDE_REASON = 15
MIN_REASON_LETTERS = 8
MIN_REASON_WORDS = 2
MAX_CHART_DAYS = 3_660


def _now() -> datetime:
    return datetime.now(UTC)


def _int_param(value: str | None) -> int | None:
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 18:
        return None
    return int(value)


def _safe_next(target: str | None) -> str:
    # Only paths on this site: "//host" and "/\\host" would leave it.
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def json_for_html(value: Any) -> str:
    """JSON safe inside a <script type="application/json"> block."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _parse_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class LeadIdConvertor(Convertor[int]):
    """A lead id in a path: 1 to 20 digits (int() of thousands of digits fails)."""

    regex = "[0-9]{1,20}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(int(value))


register_url_convertor("lead_id", LeadIdConvertor())


class ExportFormatConvertor(Convertor[str]):
    regex = "csv|json"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("export_format", ExportFormatConvertor())


class NotSignedInError(Exception):
    """No live session: pages go to the login form, APIs answer 401."""


class WebApp:
    def __init__(self, engine: Engine, settings: WebSettings, clock: Clock = _now) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.places = Places.load(settings.spain_atlas)
        templates = files("atalaya.web").joinpath("templates")
        self.jinja = Environment(
            loader=FileSystemLoader(str(templates)),
            autoescape=select_autoescape(("html",)),
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=["jinja2.ext.i18n"],
        )
        # Templates mark their text with _(…) (new-style gettext); the
        # callables read the request's language (atalaya.web.i18n), so one
        # environment serves every language.
        self.jinja.install_gettext_callables(  # type: ignore[attr-defined]
            gettext=lambda text: i18n.translations(i18n.current_locale()).gettext(text),
            ngettext=lambda one, many, n: i18n.translations(i18n.current_locale()).ngettext(
                one, many, n
            ),
            newstyle=True,
        )
        self.jinja.globals.update(
            ui_text=ui_text,
            score_band=score_band,
            utc=i18n.utc_text,
            utc_micro=lambda at: i18n.utc_text(at, micro=True),
            unit_time=i18n.unit_text,
            zoned=i18n.zoned_text,
            day=i18n.day_text,
            locale=i18n.current_locale,
            here=i18n.here,
            category_label=i18n.labeller(i18n.CATEGORY_LABELS),
            status_label=i18n.labeller(i18n.STATUS_LABELS),
            state_label=i18n.labeller(i18n.STATE_LABELS),
            action_label=i18n.labeller(i18n.ACTION_LABELS),
            outcome_label=i18n.labeller(i18n.OUTCOME_LABELS),
            role_label=i18n.labeller(i18n.ROLE_LABELS),
            found_by_label=i18n.labeller(i18n.FOUND_BY_LABELS),
            factor_label=i18n.labeller(i18n.FACTOR_LABELS),
            flag_label=i18n.labeller(i18n.FLAG_LABELS),
            local_time=local_time,
            parse_iso=_parse_iso,
            categories=[c.label for c in Category],
            # Read at each page, so that the menu is the registry's of the moment.
            networks=registry.networks,
            statuses=STATUSES,
        )
        self.jinja.filters["network_label"] = registry.label_of
        self.jinja.filters["flag_word"] = i18n.labeller(i18n.FLAG_LABELS)
        self._attributions: dict[str, str | None] = {}

    # --- plumbing -------------------------------------------------------------

    @property
    def too_slow_message(self) -> str:
        return _(
            "This selection took longer than %(seconds)s s to read: "
            "narrow the dates, the area or the province.",
            seconds=f"{self.settings.query_timeout:g}",
        )

    def now(self) -> datetime:
        return self.clock()

    @staticmethod
    def client(request: Request) -> str | None:
        return request.client.host if request.client else None

    def session(self, request: Request) -> Session:
        found = session_user(
            self.engine, request.cookies.get(SESSION_COOKIE), self.now(), self.settings.policy
        )
        if found is None:
            raise NotSignedInError
        # What this request reads for: every audit record it makes carries it.
        use_purpose(get_session_purpose(self.engine, found))
        return found

    def audit(
        self,
        request: Request,
        session: Session | None,
        action: str,
        *,
        outcome: str = Outcome.OK,
        object_type: str | None = None,
        object_id: str | int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        actor = session.actor(self.client(request)) if session is not None else None
        log_event(
            self.engine,
            action,
            actor=actor,
            outcome=outcome,
            object_type=object_type,
            object_id=object_id,
            details=details,
            at=self.now(),
        )

    def audit_failure(self, request: Request, exc: Exception, reason: str | None = None) -> None:
        """Record a request that failed inside the application (outcome error).

        The exception's class only: its text can hold SQL and parameters.
        """
        try:
            token = request.cookies.get(SESSION_COOKIE)
            session = session_user(self.engine, token, self.now(), self.settings.policy)
        except Exception:
            session = None
        try:
            self.audit(
                request,
                session,
                Action.REQUEST,
                outcome=Outcome.ERROR,
                object_type="page",
                object_id=request.url.path[:200],
                details={
                    "method": request.method[:10],
                    "query": request.url.query[:2000],
                    "error": type(exc).__name__,
                    **({"reason": reason} if reason else {}),
                },
            )
        except Exception:
            LOG.exception("a failed request could not be recorded in the audit log")

    def render(
        self,
        name: str,
        context: dict[str, Any],
        *,
        session: Session | None = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> HTMLResponse:
        if session is not None:
            context = {
                **context,
                "user": session.user,
                "csrf": csrf_token(session),
                "can_view_leads": has_permission(session.user.role, Permission.VIEW_LEADS),
                "can_change_leads": has_permission(session.user.role, Permission.CHANGE_LEADS),
                "can_read_audit": has_permission(session.user.role, Permission.READ_AUDIT),
                "purpose": current_purpose(),
            }
        # The switch brings the reader back here; an error page sends it to the
        # start instead, so that a 404 says nothing of the URL that was asked.
        context = {**context, "switch_next": i18n.here() if status < 400 else "/"}
        html = self.jinja.get_template(name).render(**context)
        headers = {
            **(headers or {}),
            "Content-Language": i18n.current_locale(),
            "Vary": "Accept-Language, Cookie",
        }
        return HTMLResponse(html, status_code=status, headers=headers)

    def require_leads(self, request: Request, session: Session) -> Response | None:
        """A 403 page (audited) for roles that do not see leads, else None."""
        if has_permission(session.user.role, Permission.VIEW_LEADS):
            return None
        self.audit(
            request,
            session,
            Action.VIEW,
            outcome=Outcome.DENIED,
            object_type="page",
            object_id=request.url.path,
            details={"reason": f"the {session.user.role} role does not view leads"},
        )
        return self.render(
            "error.html",
            {"title": _("Not allowed"), "message": _("Your role does not give access to leads.")},
            session=session,
            status=403,
        )

    def filters(self, request: Request) -> Filters:
        return parse_filters(request.query_params, today=self.now().date())

    def selection(self, session: Session, flt: Filters) -> list[Selected]:
        unit_id = session.user.unit_id
        with self.engine.connect() as conn:
            return select_leads(
                conn,
                flt,
                visible=visible_lead_ids_clause(unit_id),
                now=self.now(),
                conflicts=conflict_clause(unit_id),
            )

    def attributions(self, rows: Sequence[Selected] | Sequence[LeadRow]) -> list[str]:
        versions = {r.facts_version for r in rows if r.facts_version}
        missing = [v for v in versions if v not in self._attributions]
        if missing:
            with self.engine.connect() as conn:
                for v in missing:
                    self._attributions[v] = attribution_of(conn, v)
        return sorted({a for v in versions if (a := self._attributions.get(v))})

    # --- login ----------------------------------------------------------------

    def login_page(self, request: Request) -> Response:
        try:
            self.session(request)
            return RedirectResponse("/", status_code=303)
        except NotSignedInError:
            pass
        return self._login_form(request, error=None, status=200)

    def _login_form(self, request: Request, *, error: str | None, status: int) -> Response:
        token = secrets.token_urlsafe(32)
        response = self.render(
            "login.html",
            {
                "login_csrf": token,
                "next": _safe_next(request.query_params.get("next")),
                "error": error,
            },
            status=status,
        )
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            path="/login",
            httponly=True,
            samesite="strict",
            secure=self.settings.secure_cookies,
        )
        return response

    async def login_submit(self, request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=10, max_part_size=MAX_FORM_BYTES)
        sent = str(form.get("csrf", ""))
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not sent or not expected or not compare_digest(sent.encode(), expected.encode()):
            return self._login_form(
                request, error=_("the form expired: please sign in again"), status=400
            )
        username = str(form.get("username", ""))[:200]
        password = str(form.get("password", ""))[: self.settings.policy.max_password_length + 1]
        target = _safe_next(str(form.get("next", "/")))
        try:
            _session, token = await run_in_threadpool(
                login,
                self.engine,
                username,
                password,
                self.client(request),
                self.now(),
                self.settings.policy,
            )
        except LoginThrottledError as exc:
            # The accounts stage words its refusals in English; the form says
            # the same in the reader's language.
            minutes = max(1, math.ceil(exc.retry_after.total_seconds() / 60))
            throttled = i18n.ngettext(
                "too many failed sign-ins from this address: try again in %(num)d minute",
                "too many failed sign-ins from this address: try again in %(num)d minutes",
                minutes,
            )
            response = self._login_form(request, error=throttled, status=429)
            response.headers["Retry-After"] = str(int(exc.retry_after.total_seconds()) + 1)
            return response
        except LoginBusyError:
            busy = _("too many sign-ins at once: try again in a moment")
            response = self._login_form(request, error=busy, status=503)
            response.headers["Retry-After"] = "5"
            return response
        except LoginError:
            refused = _("wrong username or password, or the account is locked or disabled")
            return self._login_form(request, error=refused, status=401)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            path="/",
            httponly=True,
            samesite="strict",
            secure=self.settings.secure_cookies,
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return response

    async def logout_submit(self, request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=10, max_part_size=MAX_FORM_BYTES)
        session = await run_in_threadpool(self.session, request)
        if not check_csrf(session, str(form.get("csrf", ""))):
            raise HTTPException(403, _("the form's CSRF token does not match this session"))
        await run_in_threadpool(
            logout,
            self.engine,
            request.cookies.get(SESSION_COOKIE),
            self.now(),
            self.client(request),
        )
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def language(self, request: Request) -> Response:
        """The switch in the header: remember the language a year, go back."""
        chosen = request.path_params["code"]
        if chosen not in i18n.LOCALES:
            return self._not_found(None)
        response = RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
        response.set_cookie(
            i18n.LANG_COOKIE,
            chosen,
            max_age=365 * 86400,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.settings.secure_cookies,
        )
        return response

    # --- the map and the list -------------------------------------------------

    def home(self, request: Request) -> Response:
        session = self.session(request)
        if not has_permission(session.user.role, Permission.VIEW_LEADS):
            if has_permission(session.user.role, Permission.READ_AUDIT):
                return RedirectResponse("/audit", status_code=303)
            denied = self.require_leads(request, session)
            assert denied is not None
            return denied
        flt = self.filters(request)
        rows = self.selection(session, flt)
        page = page_of(rows, flt.page)
        with self.engine.connect() as conn:
            shown = lead_rows(conn, [r.id for r in page.rows])
            conflicts = conflicts_for(conn, session.user.unit_id, [r.id for r in shown])
            period = period_figures(conn, [r.id for r in shown], flt.start, flt.end)
        placed = sum(1 for r in rows if r.lat is not None and r.lon is not None)
        since, saved = search_pages.looked(self, session)
        self.audit(
            request,
            session,
            Action.SEARCH,
            object_type="leads",
            details={
                "filters": flt.params(),
                "results": len(rows),
                "page": page.number,
                **shown_details(r.id for r in shown),
            },
        )
        base = flt.query(page=False)
        return self.render(
            "map.html",
            {
                "flt": flt,
                "page": page,
                "shown": shown,
                "period": period,
                "new_since": since,
                "saved": search_pages.saved_links(saved),
                "sort_keys": SORT_KEYS,
                "sort_query": urlencode([(k, v) for k, v in flt.pairs(page=False) if k != "sort"]),
                "urgent_score": session.user.urgent_score,
                "province_names": [self.places.province_name(c) or c for c in flt.provinces],
                "total": len(rows),
                "placed": placed,
                "conflicts": conflicts,
                "query": base,
                "nav_query": base,
                "map_api": f"/api/map?{base}",
                "prev_query": flt.with_page(page.number - 1).query() if page.number > 1 else None,
                "next_query": (
                    flt.with_page(page.number + 1).query() if page.number < page.pages else None
                ),
                "clear_area_query": urlencode(
                    [(k, v) for k, v in flt.pairs(page=False) if k != "area"]
                ),
                "provinces": self.places.provinces,
                "municipalities": self.places.municipalities(flt.province),
                "province_name": self.places.province_name(flt.province),
                "municipality_name": self.places.municipality_name(flt.municipality),
                "attributions": self.attributions(rows),
                "tile_url": self.settings.tile_url or "",
                "tile_attribution": self.settings.tile_attribution or "",
                "area_text": flt.params().get("area", ""),
            },
            session=session,
        )

    def api_map(self, request: Request) -> Response:
        session = self.session(request)
        denied = self.require_leads(request, session)
        if denied is not None:
            return JSONResponse({"error": _("your role does not view leads")}, status_code=403)
        flt = self.filters(request)
        rows = self.selection(session, flt)
        points = map_points(rows)
        self.audit(
            request,
            session,
            Action.MAP_QUERY,
            object_type="leads",
            details={
                "filters": flt.params(page=False),
                "results": len(rows),
                **shown_details(int(p[0]) for p in points),
            },
        )
        return JSONResponse(
            {
                "count": len(rows),
                "placed": len(points),
                "fields": list(MAP_FIELDS),
                "points": points,
                "bands": list(SCORE_BANDS),
                "urgent_score": session.user.urgent_score,
                # Urgent leads per province, and the window's length in
                # weeks, for the shading by urgent leads per week.
                "urgent_by_province": urgent_counts(rows, session.user.urgent_score),
                # The same per municipality, for the finer shading: only
                # those the atlas outlines (at most its 8,213), so the
                # answer stays bounded whatever the store holds.
                "urgent_by_municipality": {
                    code: n
                    for code, n in urgent_municipality_counts(
                        rows, session.user.urgent_score
                    ).items()
                    if self.places.municipality_name(code) is not None
                },
                "weeks": flt.days / 7,
            }
        )

    def api_leads(self, request: Request) -> Response:
        session = self.session(request)
        denied = self.require_leads(request, session)
        if denied is not None:
            return JSONResponse({"error": _("your role does not view leads")}, status_code=403)
        flt = self.filters(request)
        rows = self.selection(session, flt)
        page = page_of(rows, flt.page)
        with self.engine.connect() as conn:
            shown = lead_rows(conn, [r.id for r in page.rows])
            conflicts = conflicts_for(conn, session.user.unit_id, [r.id for r in shown])
            period = period_figures(conn, [r.id for r in shown], flt.start, flt.end)
        since = search_pages.new_since(self, session)
        self.audit(
            request,
            session,
            Action.SEARCH,
            object_type="leads",
            details={
                "filters": flt.params(),
                "results": len(rows),
                "page": page.number,
                **shown_details(r.id for r in shown),
            },
        )
        placed = sum(1 for r in rows if r.lat is not None and r.lon is not None)
        return JSONResponse(
            {
                "total": page.total,
                "placed": placed,
                "page": page.number,
                "pages": page.pages,
                "query": flt.query(page=False),
                "since": flt.since.isoformat(),
                "until": flt.until.isoformat(),
                "sort": flt.sort,
                "provinces": [
                    {"code": c, "name": self.places.province_name(c) or c} for c in flt.provinces
                ],
                "municipality": self.places.municipality_name(flt.municipality),
                "leads": [
                    {
                        **row_record(r, period.get(r.id)),
                        "band": score_band(r.score),
                        "new": since is not None and r.first_seen > since,
                        "conflict": [c.unit for c in conflicts.get(r.id, [])],
                    }
                    for r in shown
                ],
            }
        )

    def export(self, request: Request) -> Response:
        session = self.session(request)
        denied = self.require_leads(request, session)
        if denied is not None:
            return denied
        fmt = request.query_params.get("format", "csv")
        if fmt not in ("csv", "geojson"):
            raise FilterError(_("format must be csv or geojson"))
        flt = self.filters(request)
        rows = self.selection(session, flt)
        stamp = self.now().strftime("%Y%m%dT%H%M%SZ")
        with self.engine.connect() as conn:
            records = lead_records(conn, [r.id for r in rows], factors=True)
        self.audit(
            request,
            session,
            Action.EXPORT,
            object_type="leads",
            details={
                "filters": flt.params(page=False),
                "format": fmt,
                "results": len(records),
                **shown_details(int(r["id"]) for r in records),
            },
        )
        if fmt == "csv":
            body: Iterator[str] = csv_parts(records)
            media, name = "text/csv; charset=utf-8", f"atalaya-leads-{stamp}.csv"
        else:
            body = geojson_parts(records)
            media, name = "application/geo+json", f"atalaya-leads-{stamp}.geojson"
        return StreamingResponse(
            body,
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    # --- a lead ---------------------------------------------------------------

    def lead_page(self, request: Request) -> Response:
        session = self.session(request)
        denied = self.require_leads(request, session)
        if denied is not None:
            return denied
        lead_id = request.path_params["lead_id"]
        where, held = None, False
        if lead_id <= MAX_LEAD_ID:  # larger is no lead, and no database integer
            with self.engine.connect() as conn:
                where = moved(conn, lead_id)
                held = where is not None and unit_holds(conn, session.user.unit_id, where.current)
        if where is not None and held:
            # A lead merged away lives on in the one it went into (its records
            # with it); a unit that does not hold that one gets the same 404.
            query = urlencode(
                {"merged_from": lead_id, "back": request.query_params.get("back", "")}
            )
            return RedirectResponse(f"/leads/{where.current}?{query}", status_code=303)
        return self._lead_response(request, session, lead_id, error=None, status=200)

    def _not_found(self, session: Session | None) -> Response:
        return self.render(
            "error.html",
            {"title": _("Not found"), "message": _("There is no such page.")},
            session=session,
            status=404,
        )

    def _lead_response(
        self,
        request: Request,
        session: Session,
        lead_id: int,
        *,
        error: str | None,
        status: int,
        back: str | None = None,
    ) -> Response:
        unit_id = session.user.unit_id
        held = exists = False
        if lead_id <= MAX_LEAD_ID:
            with self.engine.connect() as conn:
                held = unit_holds(conn, unit_id, lead_id)
                exists = held or lead_exists(conn, lead_id)
        if not held:
            # Same answer for another unit's lead and for no lead at all: a
            # guessed URL must not confirm that a lead exists.
            self.audit(
                request,
                session,
                Action.VIEW,
                outcome=Outcome.DENIED,
                object_type="lead",
                object_id=lead_id,
                details={"reason": "held by another unit" if exists else "no such lead"},
            )
            return self._not_found(session)
        if back is None:
            back = _checked_back(request.query_params.get("back", ""), self.now())
        dossier = gather(self.engine, lead_id, visible=visible_lead_ids_clause(unit_id))
        if dossier is None:  # rebuilt away between the two reads
            return self._not_found(session)
        with self.engine.connect() as conn:
            contacts = conflicts_for(conn, unit_id, [lead_id]).get(lead_id, [])
            merged_from = _int_param(request.query_params.get("merged_from"))
            arrived = moved(conn, merged_from) if merged_from is not None else None
            lead_cases = list_cases(conn, session.user, lead_id=lead_id)
            clock = lead_clock(conn, lead_id, self.now())
        self.audit(request, session, Action.VIEW, object_type="lead", object_id=lead_id)
        return self.render(
            "lead.html",
            {
                "d": dossier,
                "lead": dossier.detail,
                "contacts": contacts,
                # Only the unit's own claims: other units show as contacts.
                "claims": [c for c in dossier.detail["claims"] if c["unit_id"] == unit_id],
                "arrived": arrived if arrived is not None and arrived.current == lead_id else None,
                "error": error,
                "cases": lead_cases,
                "open_case": next((c for c in lead_cases if not c.closed), None),
                "clock": clock,
                "per_day_json": json_for_html(every_day(dossier.per_day)),
                "min_reason": MIN_OVERRIDE_REASON,
                "can_approve": has_permission(session.user.role, Permission.APPROVE_OVERRIDES),
                "back": back,
                "nav_query": back,
            },
            session=session,
            status=status,
        )

    async def lead_override(self, request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=10, max_part_size=MAX_FORM_BYTES)
        return await run_in_threadpool(self._override, request, dict(form))

    def _override(self, request: Request, form: dict[str, Any]) -> Response:
        session = self.session(request)
        lead_id = request.path_params["lead_id"]

        def deny(reason: str) -> None:
            """Audit a refused override; every refusal is recorded the same way."""
            self.audit(
                request,
                session,
                Action.CHANGE,
                outcome=Outcome.DENIED,
                object_type="lead",
                object_id=lead_id,
                details={"reason": reason},
            )

        if not check_csrf(session, str(form.get("csrf", ""))):
            deny("CSRF token missing or wrong")
            raise HTTPException(403, _("the form's CSRF token does not match this session"))
        # The role first: a role that may not change leads must get the same
        # answer for a lead its unit holds and for any other id, or the
        # difference tells it which leads its unit holds.
        if not has_permission(session.user.role, Permission.CHANGE_LEADS):
            deny("role")
            return self.require_leads_change(session)
        held = False
        if lead_id <= MAX_LEAD_ID:
            with self.engine.connect() as conn:
                held = unit_holds(conn, session.user.unit_id, lead_id)
                where = moved(conn, lead_id)
                stale_for = (
                    where
                    if where is not None and unit_holds(conn, session.user.unit_id, where.current)
                    else None
                )
            if stale_for is not None:
                # A page opened before a build merged the lead away.
                stale = _(
                    "Lead %(lead)s was merged into this lead by build %(build)s after "
                    "the page was opened; the override was not recorded. Review this lead "
                    "and record it again.",
                    lead=lead_id,
                    build=stale_for.build,
                )
                deny(f"merged into lead {stale_for.current}")
                return self._lead_response(
                    request, session, stale_for.current, error=stale, status=409
                )
        if not held:
            deny("not held by the unit")
            return self._not_found(session)
        try:
            score = float(str(form.get("score", "")))
        except ValueError:
            score = float("nan")
        reason = str(form.get("reason", ""))
        back = _checked_back(str(form.get("back", "")), self.now())
        # The score first, then the reason; each refusal in the page's words.
        if not (math.isfinite(score) and 0 <= score <= 100):
            lacking: str | None = _("the score must be a number from 0 to 100")
        else:
            lacking = reason_lacks(reason)
        if lacking is not None:
            return self._lead_response(
                request, session, lead_id, error=lacking, status=400, back=back
            )
        try:
            check_override_score(score)
            entry = override_score(
                self.engine,
                lead_id,
                score,
                reason,
                session.user.username,
                now=self.now(),
                unit_id=session.user.unit_id,
                urgent_score=session.user.urgent_score,
            )
        except AtalayaError as exc:
            message = error_text(exc).replace("--reason", _("the reason"))
            return self._lead_response(
                request, session, lead_id, error=message, status=400, back=back
            )
        self.audit(
            request,
            session,
            Action.CHANGE,
            object_type="lead",
            object_id=lead_id,
            details={
                "override": entry["id"],
                "score": entry["score"],
                "computed_score": entry["computed_score"],
                "reason": entry["reason"],
                "state": entry["state"],
            },
        )
        target = f"/leads/{lead_id}" + (f"?{urlencode({'back': back})}" if back else "")
        return RedirectResponse(target, status_code=303)

    def lead_export(self, request: Request) -> Response:
        """Every sighting of one lead, CSV or JSON, for the request's annex."""
        session = self.session(request)
        denied = self.require_leads(request, session)
        if denied is not None:
            return denied
        lead_id = request.path_params["lead_id"]
        fmt = request.path_params["fmt"]
        held = False
        if lead_id <= MAX_LEAD_ID:
            with self.engine.connect() as conn:
                held = unit_holds(conn, session.user.unit_id, lead_id)
        if not held:
            self.audit(
                request,
                session,
                Action.EXPORT,
                outcome=Outcome.DENIED,
                object_type="lead",
                object_id=lead_id,
                details={"reason": "not held by the unit", "format": fmt},
            )
            return self._not_found(session)
        with self.engine.connect() as conn:
            records = lead_records(conn, [lead_id], factors=True)
        self.audit(
            request,
            session,
            Action.EXPORT,
            object_type="lead",
            object_id=lead_id,
            details={"format": fmt, "sightings": True},
        )
        rows = (sighting_record(e) for e in lead_sightings(self.engine, lead_id))
        stamp = self.now().strftime("%Y%m%dT%H%M%SZ")
        name = f"atalaya-lead-{lead_id}-sightings-{stamp}.{fmt}"
        if fmt == "csv":
            body: Iterator[str] = sighting_csv_parts(rows)
            media = "text/csv; charset=utf-8"
        else:
            body = sighting_json_parts(records[0] if records else {"id": lead_id}, rows)
            media = "application/json"
        return StreamingResponse(
            body,
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    def require_leads_change(self, session: Session) -> Response:
        return self.render(
            "error.html",
            {"title": _("Not allowed"), "message": _("Your role does not change leads.")},
            session=session,
            status=403,
        )

    # --- charts and audit -----------------------------------------------------

    def charts(self, request: Request) -> Response:
        session = self.session(request)
        denied = self.require_leads(request, session)
        if denied is not None:
            return denied
        flt = self.filters(request)
        unit_id = session.user.unit_id
        with self.engine.connect() as conn:
            data = chart_data(
                conn,
                flt,
                visible=visible_lead_ids_clause(unit_id),
                now=self.now(),
                conflicts=conflict_clause(unit_id),
            )
        self.audit(
            request,
            session,
            Action.VIEW,
            object_type="charts",
            details={"filters": flt.params(page=False), "leads": data.leads},
        )
        links = chart_links(flt, data)
        return self.render(
            "charts.html",
            {
                "flt": flt,
                "data": data,
                "links": links,
                "data_json": json_for_html({**data.as_dict(), "links": links}),
                "query": flt.query(page=False),
                "nav_query": flt.query(page=False),
                "province_name": self.places.province_name(flt.province),
            },
            session=session,
        )

    # --- reference data -------------------------------------------------------

    def geo(self, request: Request) -> Response:
        self.session(request)
        name = request.path_params["name"]
        path = {"spain": self.settings.spain_atlas, "world": self.settings.world_atlas}.get(name)
        if path is None:
            return self._not_found(None)
        return FileResponse(
            path,
            media_type="application/json",
            headers={"Cache-Control": "private, max-age=86400"},
        )

    def municipalities(self, request: Request) -> Response:
        self.session(request)
        province = request.query_params.get("province", "")[:2]
        return JSONResponse(
            [{"code": m.code, "name": m.name} for m in self.places.municipalities(province)],
            headers={"Cache-Control": "private, max-age=86400"},
        )


def create_app(engine: Engine, settings: WebSettings, *, clock: Clock = _now) -> Starlette:
    """The application for `atalaya serve` (and tests)."""
    settings.check()
    limit_statements(engine, settings.query_timeout)
    web = WebApp(engine, settings, clock)
    static_dir = Path(str(files("atalaya.web").joinpath("static")))

    def page(handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def wrapped(request: Request) -> Response:
            try:
                return handler(request)
            except NotSignedInError:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
            except FilterError as exc:
                return _bad_filter(web, request, error_text(exc))
            except DBAPIError as exc:
                if not is_timeout(exc):
                    raise
                web.audit_failure(request, exc, reason="query time limit")
                return web.render(
                    "error.html",
                    {"title": _("Too slow"), "message": web.too_slow_message},
                    status=503,
                )

        return wrapped

    def api(handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def wrapped(request: Request) -> Response:
            try:
                return handler(request)
            except NotSignedInError:
                return JSONResponse({"error": _("sign in first")}, status_code=401)
            except FilterError as exc:
                return JSONResponse({"error": error_text(exc)}, status_code=400)
            except DBAPIError as exc:
                if not is_timeout(exc):
                    raise
                web.audit_failure(request, exc, reason="query time limit")
                return JSONResponse({"error": web.too_slow_message}, status_code=503)

        return wrapped

    async def post(request: Request, handler: Callable[[Request], Any]) -> Response:
        try:
            response: Response = await handler(request)
            return response
        except NotSignedInError:
            return RedirectResponse("/login", status_code=303)

    async def login_post(request: Request) -> Response:
        return await web.login_submit(request)

    async def logout_post(request: Request) -> Response:
        return await post(request, web.logout_submit)

    async def override_post(request: Request) -> Response:
        return await post(request, web.lead_override)

    def form_post(
        handler: Callable[[WebApp, Request, dict[str, Any]], Response],
        *,
        max_fields: int = 10,
        lists: tuple[str, ...] = (),
    ) -> Callable[[Request], Any]:
        """A POST form's handler; the fields named in `lists` (repeated in the form,
        like a list's checkboxes) come as lists of strings, the others as one value."""

        async def read(request: Request) -> Response:
            form = await request.form(
                max_files=0, max_fields=max_fields, max_part_size=MAX_FORM_BYTES
            )
            fields: dict[str, Any] = dict(form)
            for name in lists:
                fields[name] = form.getlist(name)
            return await run_in_threadpool(handler, web, request, fields)

        async def wrapped(request: Request) -> Response:
            return await post(request, read)

        return wrapped

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return web._not_found(None)
        return web.render(
            "error.html",
            {"title": _("Refused"), "message": exc.detail},
            status=exc.status_code,
        )

    routes = [
        Route("/", page(web.home)),
        Route("/login", web.login_page, methods=["GET"]),
        Route("/login", login_post, methods=["POST"]),
        Route("/logout", logout_post, methods=["POST"]),
        Route("/language/{code}", web.language, methods=["GET"]),
        Route("/leads/{lead_id:lead_id}", page(web.lead_page)),
        Route("/leads/{lead_id:lead_id}/override", override_post, methods=["POST"]),
        Route(
            "/leads/{lead_id:lead_id}/override/decision",
            form_post(override_pages.decide_submit),
            methods=["POST"],
        ),
        Route("/leads/{lead_id:lead_id}/sightings.{fmt:export_format}", page(web.lead_export)),
        Route(
            "/leads/{lead_id:lead_id}/cases", form_post(case_pages.open_submit), methods=["POST"]
        ),
        Route("/cases", page(lambda r: case_pages.cases_page(web, r))),
        Route(
            "/cases/open",
            form_post(
                bulk_pages.open_cases_submit,
                max_fields=bulk_pages.BULK_FORM_FIELDS,
                lists=("lead",),
            ),
            methods=["POST"],
        ),
        Route(
            "/cases/requests",
            form_post(
                bulk_pages.draft_cases_submit,
                max_fields=bulk_pages.BULK_FORM_FIELDS,
                lists=("case",),
            ),
            methods=["POST"],
        ),
        Route("/cases/{case_id:case_id}", page(lambda r: case_pages.case_page(web, r))),
        Route("/cases/{case_id:case_id}/move", form_post(case_pages.move_submit), methods=["POST"]),
        Route("/cases/{case_id:case_id}/note", form_post(case_pages.note_submit), methods=["POST"]),
        Route(
            "/cases/{case_id:case_id}/request", form_post(case_pages.draft_submit), methods=["POST"]
        ),
        Route(
            "/cases/{case_id:case_id}/documents",
            page(lambda r: case_pages.document_download(web, r)),
        ),
        Route("/funnel", page(lambda r: funnel_pages.funnel_page(web, r))),
        Route(
            "/cases/{case_id:case_id}/answer",
            form_post(answer_pages.answer_submit),
            methods=["POST"],
        ),
        Route(
            "/cases/{case_id:case_id}/step", form_post(answer_pages.step_submit), methods=["POST"]
        ),
        Route(
            "/cases/{case_id:case_id}/identity", page(lambda r: answer_pages.identity_page(web, r))
        ),
        Route("/charts", page(web.charts)),
        Route("/purpose", page(lambda r: purpose_page.purpose_page(web, r))),
        Route("/purpose", form_post(purpose_page.purpose_submit), methods=["POST"]),
        *search_pages.routes(web, page, api, post),
        Route("/audit", page(lambda r: audit_pages.audit_page(web, r))),
        Route("/audit/export", page(lambda r: audit_pages.audit_export(web, r))),
        Route("/export", page(web.export)),
        Route("/api/map", api(web.api_map)),
        Route("/api/leads", api(web.api_leads)),
        Route("/api/municipalities", api(web.municipalities)),
        Route("/geo/{name}.json", api(web.geo)),
        Mount("/static", StaticFiles(directory=static_dir), name="static"),
        *(
            Mount(f"/lib/{prefix}", StaticFiles(directory=settings.assets_dir / folder))
            for prefix, folder in LIBRARIES.items()
        ),
    ]

    async def server_error(request: Request, exc: Exception) -> Response:
        # Starlette re-raises `exc` after this answer, so the server logs it.
        await run_in_threadpool(web.audit_failure, request, exc)
        try:
            return web.render(
                "error.html",
                {
                    "title": _("Something went wrong"),
                    "message": _("The server could not answer this request; it has been recorded."),
                },
                status=500,
            )
        except Exception:  # the page itself failed: a plain answer still goes out
            return Response("internal error", status_code=500, media_type="text/plain")

    origin = tile_origin(settings.tile_url) if settings.tile_url else None
    return _Application(
        headers=SecurityHeaders.factory(
            tile_origin=origin,
            hsts=settings.secure_cookies,
            trusted_proxies=settings.trusted_proxies,
        ),
        routes=routes,
        middleware=[Middleware(GZipMiddleware, minimum_size=1024, compresslevel=5)],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )


class _Application(Starlette):
    """Starlette with the security headers outside everything else.

    Starlette puts its 500 answer (ServerErrorMiddleware) outside the user's
    middleware: headers added as ordinary middleware would be missing from
    exactly the answers an attacker provokes.
    """

    def __init__(self, *, headers: Callable[[ASGIApp], ASGIApp], **kwargs: Any) -> None:
        self._headers = headers
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        # The language too, so that the 500 page speaks the request's.
        return self._headers(i18n.LocaleMiddleware(super().build_middleware_stack()))


def _checked_back(back: str, now: datetime) -> str:
    """The selection to go back to, when it is one (else none)."""
    back = back[:MAX_FORM_BYTES]
    try:
        parse_filters(dict(parse_qsl(back)), today=now.date())
    except FilterError:
        return ""
    return back


def reason_lacks(reason: str) -> str | None:
    """Why an override's reason is not enough (translated), or None when it is."""
    text = " ".join(reason.split())
    words = [w for w in text.split() if sum(c.isalpha() for c in w) >= 3]
    if (
        len(text) < MIN_OVERRIDE_REASON
        or sum(c.isalpha() for c in text) < MIN_REASON_LETTERS
        or len(words) < MIN_REASON_WORDS
    ):
        return _(
            "the reason must say why, in at least %(min)s characters of words",
            min=MIN_OVERRIDE_REASON,
        )
    return None


def every_day(per_day: Sequence[tuple[str, int]]) -> dict[str, list[Any]]:
    """Days from the first to the last with sightings, empty ones as 0, as dd/mm/yyyy."""
    if not per_day:
        return {"days": [], "counts": [], "iso": []}
    counts = dict(per_day)
    first = datetime.fromisoformat(per_day[0][0]).date()
    last = datetime.fromisoformat(per_day[-1][0]).date()
    span = min((last - first).days, MAX_CHART_DAYS)
    days = [first + timedelta(days=n) for n in range(span + 1)]
    iso = [d.isoformat() for d in days]
    return {
        "days": [i18n.day_text(d) for d in days],
        "counts": [counts.get(d, 0) for d in iso],
        "iso": iso,
    }


def _bad_filter(web: WebApp, request: Request, message: str) -> Response:
    return web.render(
        "error.html",
        {"title": _("Bad filter"), "message": message, "retry": request.url.path},
        status=400,
    )
