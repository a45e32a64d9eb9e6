"""The pages' language: Spanish for browsers that ask for it, English otherwise.

The English text in templates and in this package is the msgid, and so is
the N_()-marked message of an error raised by a stage below (atalaya.errors;
`error_text` shows it); the Spanish is a gettext catalogue kept as text,
`translations/es/LC_MESSAGES/messages.po`, read when the application starts
(no compiled .mo in the repository). Update it after changing any text with

    scripts/i18n-update.sh

(pybabel extract with babel.cfg, then pybabel update), then translate every
new or fuzzy entry: tests/web/test_i18n.py fails while one is missing.

The language of a request is the `lang` cookie that the switch in the page
header sets, else the first of Spanish and English that Accept-Language
names with the highest weight, else English. It is held in a context
variable for the request, so that `gettext` in handlers, in error pages and
in templates all speak the same language without passing it along.
"""

from __future__ import annotations

import gettext as _gettext
import io
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from datetime import date, datetime, tzinfo
from functools import cache
from importlib.resources import files
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date as _babel_date
from babel.dates import format_datetime as _babel_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from starlette.types import ASGIApp, Receive, Scope, Send

from atalaya.accounts.roles import Role
from atalaya.cases.answers import Step
from atalaya.cases.states import State
from atalaya.errors import Alternatives, AtalayaError, Listed, Msgid

SPANISH = "es"
ENGLISH = "en"
LOCALES = (SPANISH, ENGLISH)
DEFAULT_LOCALE = ENGLISH
LANG_COOKIE = "lang"
# Times beside UTC: the units are Spanish; the place's own zone is shown
# separately where a lead has one.
UNIT_TIME_ZONE = "Europe/Madrid"
DOMAIN = "messages"
MAX_ACCEPT_LANGUAGE = 400

_locale: ContextVar[str] = ContextVar("atalaya_web_locale", default=DEFAULT_LOCALE)
# The request's path and query, for the switch's way back.
_here: ContextVar[str] = ContextVar("atalaya_web_here", default="/")
MAX_HERE = 4000


def N_(message: str) -> str:  # noqa: N802 (the gettext convention)
    """Marks text for extraction that is translated later, where it is shown."""
    return message


def _accepted(header: str) -> list[tuple[float, int, str]]:
    """(weight, position, primary tag) of each language range, bounded in size."""
    ranges = []
    for position, part in enumerate(header[:MAX_ACCEPT_LANGUAGE].split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                weight = float(params[2:])
            except ValueError:
                weight = 0.0
        if weight > 0 and tag:
            ranges.append((weight, position, tag.split("-")[0].strip().lower()))
    return ranges


def choose_locale(cookie: str | None, accept_language: str | None) -> str:
    """The switch's choice, else the browser's preference among ours, else English."""
    if cookie in LOCALES:
        return str(cookie)
    ranges = sorted(_accepted(accept_language or ""), key=lambda r: (-r[0], r[1]))
    for _weight, _position, primary in ranges:
        if primary in LOCALES:
            return primary
    return DEFAULT_LOCALE


def current_locale() -> str:
    return _locale.get()


def here() -> str:
    """The path and query of the request being answered."""
    return _here.get()


def set_locale(locale: str) -> None:
    _locale.set(locale if locale in LOCALES else DEFAULT_LOCALE)


@cache
def translations(locale: str) -> _gettext.NullTranslations:
    """The catalogue of `locale`, read from its .po once; English is the msgids."""
    if locale == ENGLISH:
        return _gettext.NullTranslations()
    po = files("atalaya.web").joinpath("translations", locale, "LC_MESSAGES", f"{DOMAIN}.po")
    with po.open("rb") as stream:
        catalog = read_po(stream, locale=locale, domain=DOMAIN)
    buffer = io.BytesIO()
    # Fuzzy entries are not translations yet: the test that checks the
    # catalogue refuses them, and English is shown meanwhile.
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def gettext(message: str, **values: Any) -> str:
    """`message` in the request's language, %(name)s placeholders filled."""
    text = translations(current_locale()).gettext(message)
    return text % values if values else text


def ngettext(singular: str, plural: str, count: int, **values: Any) -> str:
    text = translations(current_locale()).ngettext(singular, plural, count)
    return text % {"num": count, **values}


_ = gettext


# --- dates and times ----------------------------------------------------------


def _zone(name: str | None) -> tzinfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def day_text(value: date | str | None) -> str:
    """dd/mm/yyyy (both languages: the Spanish way of writing a date)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    return _babel_date(value, "dd/MM/yyyy", locale=current_locale())


def utc_text(value: datetime | None, *, micro: bool = False) -> str:
    """dd/mm/yyyy HH:MM:SS[.ffffff] UTC."""
    if value is None:
        return ""
    at = value if value.tzinfo is not None else value.replace(tzinfo=ZoneInfo("UTC"))
    at = at.astimezone(ZoneInfo("UTC"))
    pattern = "dd/MM/yyyy HH:mm:ss.SSSSSS" if micro else "dd/MM/yyyy HH:mm:ss"
    return _babel_datetime(at, pattern, tzinfo=ZoneInfo("UTC"), locale=current_locale()) + " UTC"


def zoned_text(value: datetime | None, zone_name: str | None, *, micro: bool = False) -> str:
    """The instant in a zone: dd/mm/yyyy HH:MM:SS ABBR (+hhmm); a placeholder when unknown."""
    if value is None:
        return ""
    zone = _zone(zone_name)
    if zone is None:
        return gettext("(time zone unknown)")
    at = value if value.tzinfo is not None else value.replace(tzinfo=ZoneInfo("UTC"))
    local = at.astimezone(zone)
    stamp = "%d/%m/%Y %H:%M:%S.%f" if micro else "%d/%m/%Y %H:%M:%S"
    return local.strftime(stamp + " ") + (local.tzname() or "") + local.strftime(" (%z)")


def unit_text(value: datetime | None) -> str:
    """The instant in the unit's zone (peninsular Spain)."""
    return zoned_text(value, UNIT_TIME_ZONE)


# --- labels for identifiers ---------------------------------------------------

CATEGORY_LABELS: Mapping[str, str] = {
    "not_pertinent": N_("not pertinent"),
    "unrated": N_("unrated"),
    "exploitative": N_("exploitative (not abuse material)"),
    "abuse": N_("abuse material"),
    "severe_abuse": N_("severe abuse material"),
}

STATUS_LABELS: Mapping[str, str] = {
    "active": N_("active"),
    "dormant": N_("dormant"),
    "overridden": N_("score overridden"),
    "conflict": N_("held by another unit too"),
}

STATE_LABELS: Mapping[str, str] = {
    "triage": N_("in triage"),
    "request_drafted": N_("request drafted"),
    "sent_to_court": N_("sent to the court"),
    "authorised": N_("authorised"),
    "refused": N_("refused"),
    "sent_to_isp": N_("sent to the ISP"),
    "isp_answered": N_("answered by the ISP"),
    "search_authorised": N_("search authorised"),
    "search_done": N_("search carried out"),
    "charged": N_("charged"),
    "archived": N_("archived"),
    "referred": N_("referred"),
}

FOUND_BY_LABELS: Mapping[str, str] = {
    "dht": N_("DHT"),
    "tracker": N_("tracker"),
    "pex": N_("peer exchange"),
    "operator": N_("operator"),
}

OUTCOME_LABELS: Mapping[str, str] = {
    "ok": N_("done"),
    "denied": N_("denied"),
    "error": N_("error"),
}

ACTION_LABELS: Mapping[str, str] = {
    "login": N_("sign in"),
    "login_failed": N_("failed sign-in"),
    "logout": N_("sign out"),
    "view": N_("view"),
    "search": N_("search"),
    "map_query": N_("map query"),
    "change": N_("change"),
    "export": N_("export"),
    "audit_read": N_("audit log read"),
    "user_add": N_("user added"),
    "user_disable": N_("user disabled"),
    "unit_add": N_("unit added"),
    "lead_claim": N_("lead claimed"),
    "lead_release": N_("lead released"),
    "request": N_("failed request"),
    "audit_key": N_("audit key"),
    "case_open": N_("case opened"),
    "case_view": N_("case viewed"),
    "case_list": N_("case list"),
    "case_move": N_("case moved"),
    "case_note": N_("case note"),
    "case_assign": N_("case assigned"),
    "deadlines": N_("deadlines"),
}

ROLE_LABELS: Mapping[str, str] = {
    "analyst": N_("analyst"),
    "supervisor": N_("supervisor"),
    "auditor": N_("auditor"),
    "national_auditor": N_("national auditor"),
    "administrator": N_("administrator"),
}

# The steps after the ISP's answer, as error messages name them.
STEP_LABELS: Mapping[str, str] = {
    "search": N_("house search"),
    "seizure": N_("seizure"),
    "charges": N_("charges"),
    "outcome": N_("court's outcome"),
}

FACTOR_LABELS: Mapping[str, str] = {
    "known_files": N_("known files offered"),
    "highest_category": N_("most severe category"),
    "verified_downloads": N_("verified downloads"),
    "days_active": N_("days active"),
    "recency": N_("recency"),
    "rare_items": N_("rare items"),
    "networks_used": N_("networks used"),
    "flag_hosting": N_("hosting address"),
    "flag_vpn": N_("VPN address"),
    "flag_cgnat": N_("shared address (CGNAT)"),
    "flag_mobile": N_("mobile network"),
}

FLAG_LABELS: Mapping[str, str] = {
    "hosting": N_("hosting"),
    "vpn": N_("VPN"),
    "cgnat": N_("CGNAT"),
    "mobile": N_("mobile"),
}


def labeller(labels: Mapping[str, str]) -> Callable[[object], str]:
    """A function from an identifier to its words; unknown ones shown with
    underscores as spaces rather than hidden."""

    def label(value: object) -> str:
        key = str(getattr(value, "value", value) or "")
        known = labels.get(key)
        return gettext(known) if known else key.replace("_", " ")

    return label


def _shown(value: object) -> object:
    """A value of an error's message as the page words it: identifiers by their labels."""
    if isinstance(value, Msgid):
        return gettext(value)
    if isinstance(value, Alternatives) and len(value) > 1:
        words = [str(_shown(v)) for v in value]
        return gettext("%(some)s or %(last)s", some=", ".join(words[:-1]), last=words[-1])
    if isinstance(value, Listed):
        return ", ".join(str(_shown(v)) for v in value)
    if isinstance(value, State):
        return labeller(STATE_LABELS)(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        return day_text(value)
    if isinstance(value, Step):
        return labeller(STEP_LABELS)(value)
    if isinstance(value, Role):
        return labeller(ROLE_LABELS)(value)
    return value


def error_text(exc: Exception) -> str:
    """The message of an error raised below the web, in the request's language.

    Errors raised with an N_() message (atalaya.errors) are translated; any
    other keeps its English text rather than being hidden.
    """
    if isinstance(exc, AtalayaError) and exc.template is not None:
        return gettext(exc.template, **{k: _shown(v) for k, v in exc.params.items()})
    return str(exc)


class LocaleMiddleware:
    """Sets the request's language (see the module docstring) for everything inside."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookie = None
        accept = None
        for name, value in scope.get("headers", []):
            if name == b"accept-language":
                accept = value.decode("latin-1")
            elif name == b"cookie":
                for part in value.decode("latin-1").split(";"):
                    key, _, val = part.strip().partition("=")
                    if key == LANG_COOKIE:
                        cookie = val
        query = scope.get("query_string", b"").decode("latin-1")
        path = scope.get("path", "/") + (f"?{query}" if query else "")
        token = _locale.set(choose_locale(cookie, accept))
        where = _here.set(path[:MAX_HERE])
        try:
            await self.app(scope, receive, send)
        finally:
            _here.reset(where)
            _locale.reset(token)
