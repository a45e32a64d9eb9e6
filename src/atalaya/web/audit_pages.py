"""The audit log for auditors: filters (user, action, object, period), pages
newest first, objects as links, details in words, and an export.

Every reading goes through `atalaya.audit.log.read_audit`, which decides the
scope (a unit's auditor sees the unit's records only) and records the read
itself; an export is recorded once more as an export.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from atalaya.audit.log import (
    Action,
    AuditAccessDeniedError,
    AuditEntry,
    AuditQuery,
    Outcome,
    read_audit,
)
from atalaya.csv_cells import neutralise_row
from atalaya.web.filters import FilterError
from atalaya.web.i18n import ACTION_LABELS, N_, _

if TYPE_CHECKING:
    from atalaya.web.app import WebApp

PAGE_SIZE = 100
EXPORT_LIMIT = 100_000
MAX_TEXT = 100
MAX_SEQ = 2**63 - 1
EXPORT_FIELDS = (
    "seq",
    "at",
    "username",
    "unit",
    "client_address",
    "action",
    "object_type",
    "object_id",
    "outcome",
    "details",
    "hash",
)
# Object types whose ids open a page of their own.
OBJECT_PAGES = {"lead": "/leads/", "case": "/cases/"}
DETAIL_LABELS: Mapping[str, str] = {
    "filters": N_("filters"),
    "results": N_("results"),
    "page": N_("page"),
    "reason": N_("reason"),
    "format": N_("format"),
    "leads": N_("leads"),
    "shown": N_("leads shown"),
    "override": N_("override"),
    "score": N_("score"),
    "computed_score": N_("computed score"),
    "sightings": N_("sightings"),
    "method": N_("method"),
    "query": N_("query"),
    "error": N_("error"),
    "records": N_("records"),
    "scope": N_("scope"),
    "role": N_("role"),
    "case": N_("case"),
    "lead": N_("lead"),
    "from": N_("from"),
    "to": N_("to"),
    "length": N_("length"),
}


@dataclass(frozen=True)
class AuditFilters:
    user: str = ""
    action: str = ""
    object: str = ""  # "lead" or "lead:12"
    since: date | None = None
    until: date | None = None  # inclusive
    before: int | None = None  # paging: records older than this seq

    def query(self, limit: int) -> AuditQuery:
        object_type, _, object_id = self.object.partition(":")
        return AuditQuery(
            username=self.user or None,
            action=self.action or None,
            object_type=object_type.strip() or None,
            object_id=object_id.strip() or None,
            since=datetime.combine(self.since, time(), UTC) if self.since else None,
            until=(
                datetime.combine(self.until + timedelta(days=1), time(), UTC)
                if self.until
                else None
            ),
            before_seq=self.before,
            limit=limit,
            newest_first=True,
        )

    def params(self, *, before: int | None = None) -> dict[str, str]:
        out = {
            "user": self.user,
            "action": self.action,
            "object": self.object,
            "from": self.since.isoformat() if self.since else "",
            "to": self.until.isoformat() if self.until else "",
        }
        if before is not None:
            out["before"] = str(before)
        return {k: v for k, v in out.items() if v}


def _day(value: str, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise FilterError(_("%(name)s must be a date (yyyy-mm-dd)", name=name)) from None


def parse_audit_filters(params: Mapping[str, str]) -> AuditFilters:
    """The audit view's filters from a query string; FilterError when one is not valid."""
    before_text = params.get("before", "")
    before = None
    if before_text:
        if not (before_text.isascii() and before_text.isdigit() and len(before_text) <= 19):
            raise FilterError(_("the page must be a record number"))
        before = min(int(before_text), MAX_SEQ)
    action = params.get("action", "")[:MAX_TEXT]
    if action and not all(c.isascii() and (c.isalnum() or c == "_") for c in action):
        raise FilterError(_("the action must be one of the list"))
    found = AuditFilters(
        user=params.get("user", "").strip()[:MAX_TEXT],
        action=action,
        object=params.get("object", "").strip()[:MAX_TEXT],
        since=_day(params.get("from", ""), _("the first day")),
        until=_day(params.get("to", ""), _("the last day")),
        before=before,
    )
    if found.since and found.until and found.until < found.since:
        raise FilterError(_("the last day comes before the first"))
    return found


def object_link(object_type: str | None, object_id: str | None) -> str | None:
    """The page of a record's object, when it has one (ids are digits only)."""
    prefix = OBJECT_PAGES.get(object_type or "")
    if prefix and object_id and object_id.isascii() and object_id.isdigit():
        return f"{prefix}{int(object_id)}"
    return None


def readable(value: Any) -> str:
    """A detail's value as text: lists joined, mappings as key: value, the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict) and all(isinstance(v, str | int | float) for v in value.values()):
        return "; ".join(f"{k}: {v}" for k, v in value.items())
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def detail_label(key: str) -> str:
    known = DETAIL_LABELS.get(key)
    return _(known) if known else key.replace("_", " ")


def _denied(web: WebApp, session: Any) -> Response:
    return web.render(
        "error.html",
        {"title": _("Not allowed"), "message": _("Only auditors read the audit log.")},
        session=session,
        status=403,
    )


def audit_page(web: WebApp, request: Request) -> Response:
    session = web.session(request)
    flt = parse_audit_filters(request.query_params)
    try:
        entries = read_audit(
            web.engine,
            session.actor(web.client(request)),
            flt.query(PAGE_SIZE + 1),
            at=web.now(),
            context={"view": "page"},
        )
    except AuditAccessDeniedError:
        return _denied(web, session)
    more = len(entries) > PAGE_SIZE
    entries = entries[:PAGE_SIZE]
    older = flt.params(before=entries[-1].fields.seq) if more and entries else None
    return web.render(
        "audit.html",
        {
            "entries": entries,
            "flt": flt,
            "actions": sorted(ACTION_LABELS),
            "older_query": urlencode(older) if older is not None else None,
            "newest_query": urlencode(flt.params()) if flt.before is not None else None,
            "export_query": urlencode(flt.params()),
            "object_link": object_link,
            "readable": readable,
            "detail_label": detail_label,
            "page_size": PAGE_SIZE,
        },
        session=session,
    )


def _csv(entries: list[AuditEntry]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for entry in entries:
        record = entry.as_dict()
        row = {k: record.get(k) for k in EXPORT_FIELDS}
        row["details"] = json.dumps(row["details"], ensure_ascii=False, sort_keys=True)
        writer.writerow(neutralise_row(row))
        if buffer.tell() > 65_536:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def audit_export(web: WebApp, request: Request) -> Response:
    session = web.session(request)
    fmt = request.query_params.get("format", "csv")
    if fmt not in ("csv", "json"):
        raise FilterError(_("format must be csv or json"))
    flt = parse_audit_filters(request.query_params)
    try:
        entries = read_audit(
            web.engine,
            session.actor(web.client(request)),
            flt.query(EXPORT_LIMIT),
            at=web.now(),
            context={"view": "export", "format": fmt},
        )
    except AuditAccessDeniedError:
        return _denied(web, session)
    web.audit(
        request,
        session,
        Action.EXPORT,
        outcome=Outcome.OK,
        object_type="audit",
        details={"filters": flt.params(), "format": fmt, "records": len(entries)},
    )
    stamp = web.now().strftime("%Y%m%dT%H%M%SZ")
    name = f"atalaya-audit-{stamp}.{fmt}"
    if fmt == "csv":
        body: Iterator[str] = _csv(entries)
        media = "text/csv; charset=utf-8"
    else:
        body = iter([json.dumps([e.as_dict() for e in entries], ensure_ascii=False) + "\n"])
        media = "application/json"
    return StreamingResponse(
        body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
