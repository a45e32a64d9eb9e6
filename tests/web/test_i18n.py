"""Spanish and English: every visible text is marked, every msgid is translated,
the language follows the switch, then the browser, and dates read dd/mm/yyyy.

The template checker reads each template's literal text (Jinja's `data`
tokens, with every {{ … }} and {% … %} taken out) as HTML: a text node or a
visible attribute with a word in it is text a reader sees untranslated.
"""

from __future__ import annotations

import ast
import io
import re
from datetime import UTC, date, datetime
from functools import cache
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from babel.util import pathmatch
from jinja2 import Environment
from sqlalchemy import Engine

from atalaya.web import i18n
from tests.web.conftest import BASE, sign_in
from tests.web.seed import PREFIX, lead_ids_by_ip

WEB = Path(str(files("atalaya.web")))
PACKAGE = WEB.parent
TEMPLATES = WEB / "templates"
PO = WEB / "translations" / "es" / "LC_MESSAGES" / "messages.po"
REPO = Path(__file__).resolve().parents[2]
# Names and acronyms that are the same in both languages.
UNTRANSLATED = {"Atalaya", "UTC", "CSV", "JSON", "GeoJSON", "English", "Español", "AS", "km"}
VISIBLE_ATTRIBUTES = {"title", "alt", "placeholder", "aria-label", "summary"}
HOLE = "\x00"


class _Visible(HTMLParser):
    """Text nodes (outside script, style and code: a command or a hash is
    the same in both languages) and visible attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "code"):
            self._skip += 1
        for name, value in attrs:
            if value and (name in VISIBLE_ATTRIBUTES or (name == "value" and tag == "button")):
                self.found.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "code") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.found.append(data)


def unmarked_text(source: str) -> list[str]:
    """Words in a template that no _() or ngettext() will translate."""
    env = Environment(extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
    parts = []
    recent: list[str] = []
    in_class_block = False
    for _line, kind, value in env.lex(source):
        if kind == "name":
            recent = [*recent[-1:], value]
        if kind == "block_end":
            # {% block body_class %}…{% endblock %}: a class name, not text.
            if recent and recent[0] == "block" and recent[-1].endswith("_class"):
                in_class_block = True
            elif recent and recent[-1] == "endblock":
                in_class_block = False
            recent = []
        parts.append(value if kind == "data" and not in_class_block else HOLE)
    literal = "".join(parts)
    # Markup that the lexer leaves in `data` while a value fills an attribute:
    # `<a href="/x?{{ q }}">` leaves `<a href="/x?` + HOLE + `">`, still HTML.
    parser = _Visible()
    parser.feed(literal)
    parser.close()
    words = []
    for text in parser.found:
        for word in re.findall(r"[^\W\d_]{2,}", text.replace(HOLE, " ")):
            if word not in UNTRANSLATED:
                words.append(word)
    return words


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.html")))
def test_every_visible_text_of_a_template_is_marked_for_translation(template: str) -> None:
    assert unmarked_text((TEMPLATES / template).read_text(encoding="utf-8")) == []


def test_the_checker_finds_unmarked_text() -> None:
    assert unmarked_text("<p>Hello {{ name }}</p>") == ["Hello"]
    assert unmarked_text('<a title="Open it" href="{{ u }}">#1</a>') == ["Open", "it"]
    assert unmarked_text('<button value="Go">{{ _("Go") }}</button>') == ["Go"]
    assert unmarked_text('<p>{{ _("Hello") }} · 20\u201340 <code>{{ x }}</code></p>') == []
    assert unmarked_text("<script>const a = 'words';</script>") == []
    assert unmarked_text("{% if x %}<th>CSV</th>{% endif %}") == []
    assert unmarked_text("{% block main_class %}workspace{% endblock %}<p>Hi</p>") == ["Hi"]
    assert unmarked_text("<p><code>atalaya audit verify</code> Run</p>") == ["Run"]


def _catalogue() -> Any:
    with PO.open("rb") as stream:
        return read_po(stream, locale="es")


@cache
def _mapping() -> tuple[list[tuple[str, str]], dict[str, dict[str, str]]]:
    """What scripts/i18n-update.sh extracts: babel.cfg's paths under src/atalaya."""
    with (REPO / "babel.cfg").open(encoding="utf-8") as stream:
        method_map, options_map = parse_mapping_cfg(stream)
    return method_map, options_map


@cache
def _extracted() -> set[Any]:
    found: set[Any] = set()
    method_map, options_map = _mapping()
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(PACKAGE), method_map=method_map, options_map=options_map, keywords=keywords
    ):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def _marks(source: str) -> bool:
    """Whether the module calls N_() on a literal (a docstring's example does not count)."""
    return any(
        isinstance(node, ast.Call)
        and getattr(node.func, "id", "") == "N_"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        for node in ast.walk(ast.parse(source))
    )


def test_every_module_that_marks_messages_is_extracted() -> None:
    # An error raised with N_() in a module babel.cfg leaves out would reach
    # Spanish pages in English, and the catalogue test would not notice.
    method_map, _options = _mapping()
    left_out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if _marks(path.read_text(encoding="utf-8")) and not any(
            pathmatch(pattern, relative) for pattern, _method in method_map
        ):
            left_out.append(relative)
    assert left_out == [], "add them to babel.cfg, run scripts/i18n-update.sh and translate"


def test_errors_raised_below_the_web_are_in_the_catalogue() -> None:
    # A few of them, as a check that the extraction reaches the stages.
    extracted = _extracted()
    assert "the case is %(state)s, a final state: it cannot move" in extracted
    assert "give the search a name" in extracted
    assert "type an IP address or prefix, a hash or a peer id" in extracted


def test_every_message_has_a_spanish_translation_and_the_catalogue_is_current() -> None:
    catalogue = _catalogue()
    ids = {m.id[0] if isinstance(m.id, tuple) else m.id for m in catalogue if m.id}
    missing_from_catalogue = sorted(_extracted() - ids)
    assert missing_from_catalogue == [], "run scripts/i18n-update.sh and translate"
    untranslated = []
    for message in catalogue:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy or not all(s.strip() for s in strings):
            untranslated.append(message.id)
    assert untranslated == []


PLACEHOLDER = r"%\(\w+\)[sdrg]"


def test_spanish_keeps_every_placeholder_of_the_english() -> None:
    wrong = []
    for message in _catalogue():
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(re.findall(PLACEHOLDER, ids[-1]))
        for text in strings:
            if set(re.findall(PLACEHOLDER, text)) - wanted or (
                len(ids) == 1 and set(re.findall(PLACEHOLDER, text)) != wanted
            ):
                wrong.append((message.id, text))
    assert wrong == []


def test_the_committed_catalogue_is_text_only() -> None:
    assert not list((WEB / "translations").rglob("*.mo"))
    assert "scripts/i18n-update.sh" in (WEB / "i18n.py").read_text(encoding="utf-8")
    assert (REPO / "babel.cfg").is_file()


# Messages the web package builds for readers must go through _():
# a plain string as an error page's title or message, a form error, or an
# HTTPException's detail would stay English.
_SHOWN_KEYS = {"title", "message", "error"}


def _unmarked_messages(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(key, ast.Constant)
                    and key.value in _SHOWN_KEYS
                    and isinstance(value, ast.Constant | ast.JoinedStr)
                    and isinstance(getattr(value, "value", ""), str)
                ):
                    found.append(ast.unparse(value))
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            args = list(node.args)
            args += [k.value for k in node.keywords if k.arg in ("error", "detail", "message")]
            if name in ("HTTPException", "FilterError") or any(
                k.arg == "error" for k in node.keywords
            ):
                found.extend(
                    ast.unparse(a)
                    for a in args
                    if isinstance(a, ast.JoinedStr)
                    or (isinstance(a, ast.Constant) and isinstance(a.value, str))
                )
    return found


@pytest.mark.parametrize(
    "module",
    [
        "app.py",
        "case_pages.py",
        "answer_pages.py",
        "funnel_pages.py",
        "search_pages.py",
        "override_pages.py",
    ],
)
def test_messages_built_in_python_are_marked(module: str) -> None:
    assert _unmarked_messages((WEB / module).read_text(encoding="utf-8")) == []


def test_the_python_checker_finds_plain_messages() -> None:
    source = (
        'render("e", {"title": "Oops", "message": _("ok")})\n'
        'raise HTTPException(403, "no")\n'
        'respond(error=f"bad {x}")\n'
    )
    assert sorted(_unmarked_messages(source)) == sorted(["'Oops'", "'no'", "f'bad {x}'"])


@pytest.mark.parametrize(
    ("cookie", "header", "chosen"),
    [
        (None, None, "en"),
        (None, "es-ES,es;q=0.9,en;q=0.8", "es"),
        (None, "en-GB,en;q=0.9,es;q=0.8", "en"),
        (None, "fr-FR, es;q=0.5", "es"),
        (None, "fr-FR, de;q=0.5", "en"),
        (None, "en;q=0.2, es-MX;q=0.7", "es"),
        (None, "es;q=0", "en"),
        ("en", "es-ES", "en"),
        ("es", "en-US", "es"),
        ("xx", "es", "es"),
        (None, "es;q=nonsense, en", "en"),
        (None, "," * 5000 + "es", "en"),  # bounded: nothing past the limit is read
    ],
)
def test_the_language_is_the_switch_then_the_browser_then_english(
    cookie: str | None, header: str | None, chosen: str
) -> None:
    assert i18n.choose_locale(cookie, header) == chosen


def test_dates_are_day_month_year_and_times_sit_beside_utc() -> None:
    at = datetime(2026, 7, 15, 12, 0, 0, 123456, tzinfo=UTC)
    assert i18n.day_text(date(2026, 7, 5)) == "05/07/2026"
    assert i18n.day_text("2026-07-05") == "05/07/2026"
    assert i18n.utc_text(at) == "15/07/2026 12:00:00 UTC"
    assert i18n.utc_text(at, micro=True) == "15/07/2026 12:00:00.123456 UTC"
    assert i18n.unit_text(at) == "15/07/2026 14:00:00 CEST (+0200)"
    assert i18n.zoned_text(at, "Atlantic/Canary", micro=True) == (
        "15/07/2026 13:00:00.123456 WEST (+0100)"
    )
    assert i18n.zoned_text(at, "Nowhere/Else") == "(time zone unknown)"


def test_labels_are_words_in_the_requests_language() -> None:
    label = i18n.labeller(i18n.CATEGORY_LABELS)
    i18n.set_locale("es")
    try:
        assert label("severe_abuse") == "material de abuso grave"
        assert i18n.labeller(i18n.STATE_LABELS)("request_drafted") == "solicitud redactada"
        assert label("something_new") == "something new"  # unknown: shown, not hidden
    finally:
        i18n.set_locale("en")
    assert label("severe_abuse") == "severe abuse material"


def test_a_spanish_browser_gets_spanish_pages_and_the_switch_changes_it(
    app: Any, world: Engine
) -> None:
    from starlette.testclient import TestClient

    with TestClient(app, base_url=BASE, headers={"Accept-Language": "es-ES,es;q=0.9"}) as client:
        login = client.get("/login")
        assert '<html lang="es">' in login.text and "Iniciar sesión" in login.text
        assert login.headers["content-language"] == "es"
        assert sign_in(client, "ana").status_code == 303
        lead_id = lead_ids_by_ip(world)[f"{PREFIX}.10"]
        page = client.get(f"/leads/{lead_id}").text
        assert f"Pista n.º {lead_id}" in page
        assert "Avistamientos" in page and "puntuación calculada" in page
        assert "10/11/2026 08:00:00 UTC" in page
        missing = client.get("/leads/99999999")
        assert missing.status_code == 404 and "Esa página no existe." in missing.text

        switched = client.get(
            "/language/en", params={"next": f"/leads/{lead_id}"}, follow_redirects=False
        )
        assert switched.status_code == 303
        assert switched.headers["location"] == f"/leads/{lead_id}"
        english = client.get(f"/leads/{lead_id}").text
        assert f"Lead #{lead_id}" in english and '<html lang="en">' in english
        # Only this site's paths: the switch is no open redirect.
        away = client.get("/language/es", params={"next": "//elsewhere.example/"})
        assert away.url.path == "/"
        assert client.get("/language/fr").status_code == 404


def test_the_switch_stores_the_choice_in_a_cookie(anonymous: Any) -> None:
    answer = anonymous.get("/language/es", params={"next": "/login"}, follow_redirects=False)
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{i18n.LANG_COOKIE}=es;") and "HttpOnly" in cookie
    page = anonymous.get("/login")
    assert "Contraseña" in page.text


def test_the_catalogue_loads_from_its_text_form() -> None:
    spanish = i18n.translations("es")
    assert spanish.gettext("Sign in") == "Iniciar sesión"
    assert spanish.ngettext("%(num)d day left", "%(num)d days left", 3) == "Quedan %(num)d días"
    assert isinstance(PO.read_bytes(), bytes) and io.BytesIO(PO.read_bytes()).read(1)
