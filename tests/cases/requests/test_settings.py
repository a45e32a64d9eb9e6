"""Request settings (courts, operators, officers) and the safety of peer strings, no store."""

from __future__ import annotations

import contextlib
import io
import unicodedata
from pathlib import Path

import pytest
from docx import Document
from hypothesis import given
from hypothesis import strategies as st

from atalaya.cases.courts import (
    CONFIG_ENV,
    TEMPLATES_ENV,
    RequestConfigError,
    load_config,
    parse_config,
    templates_folder,
)
from atalaya.cases.request_model import local_text, shown, utc_text
from atalaya.cases.requests import docx_templates
from tests.leads.helpers import NOW


def test_the_shipped_settings_are_marked_as_examples() -> None:
    config = load_config({})
    assert config.courts and config.operators
    assert all(c.example and "EJEMPLO" in c.name for c in config.courts.values())
    assert all(o.example and "inventado" in o.legal_name for o in config.operators.values())
    # Private-use AS numbers only (RFC 5398 documentation, RFC 6996 private use).
    assert all(64496 <= asn <= 65534 for asn in config.operators)


def test_a_municipality_court_comes_before_its_provinces() -> None:
    config = parse_config(
        '[[court]]\nplace = "28"\nname = "P"\naddress = "a"\n'
        '[[court]]\nplace = "28079"\nname = "M"\naddress = "b"\n',
        "unit.toml",
    )
    assert config.court_for("28079", "28", "x").name == "M"
    assert config.court_for("28005", "28", "x").name == "P"
    with pytest.raises(
        RequestConfigError, match=r"no court configured for Sevilla .* in unit\.toml"
    ):
        config.court_for("41091", "41", "Sevilla")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[[court]]\nplace = 'Madrid'\nname = 'x'\naddress = 'y'\n", "INE province"),
        ("[[court]]\nplace = '28'\nname = ''\naddress = 'y'\n", "court 1: name"),
        ("[[operator]]\nasn = 'AS1'\nlegal_name = 'x'\naddress = 'y'\n", "asn must be"),
        ("[[operator]]\nasn = 1\nlegal_name = 'x'\n", "operator 1: address"),
        ("[requests]\nresponse_days = 0\n", "response_days"),
        ("[requests]\natestado = '{nope}'\n", None),
        ("court = 3", r"\[\[court\]\] must be a list"),
        ("not toml = = 1", "is not valid TOML"),
    ],
)
def test_bad_settings_are_one_clear_error(text: str, match: str | None) -> None:
    if match is None:
        config = parse_config(text, "unit.toml")
        with pytest.raises(RequestConfigError, match="atestado format"):
            config.atestado_number(year=2026, unit_id=1, case=1)
        return
    with pytest.raises(RequestConfigError, match=match):
        parse_config(text, "unit.toml")


@given(st.text(max_size=300))
def test_any_settings_text_parses_or_is_one_clear_error(text: str) -> None:
    with contextlib.suppress(RequestConfigError):
        parse_config(text, "unit.toml")


def test_settings_from_the_environment(tmp_path: Path) -> None:
    with pytest.raises(RequestConfigError, match=f"{CONFIG_ENV}=.*cannot read it"):
        load_config({CONFIG_ENV: str(tmp_path / "absent.toml")})
    with pytest.raises(RequestConfigError, match=f"{TEMPLATES_ENV}=.*no such folder"):
        templates_folder({TEMPLATES_ENV: str(tmp_path / "absent")})
    assert templates_folder({TEMPLATES_ENV: str(tmp_path)}) == tmp_path
    assert templates_folder({}) is None


@given(st.text(max_size=400))
def test_shown_leaves_no_control_or_format_character(text: str) -> None:
    result = shown(text)
    assert not any(unicodedata.category(ch)[0] == "C" for ch in result)
    assert len(result) <= 160
    if len(text) <= 40 and all(unicodedata.category(ch)[0] != "C" for ch in text):
        assert result == text


def test_times_to_the_microsecond_with_the_offset_stated() -> None:
    at = NOW.replace(microsecond=7)
    assert utc_text(at) == "2026-11-20 12:00:00.000007 UTC"
    assert (
        local_text(at, "Europe/Madrid") == "2026-11-20 13:00:00.000007 (UTC+01:00, Europe/Madrid)"
    )
    assert local_text(at, "Atlantic/Canary").endswith("(UTC+00:00, Atlantic/Canary)")
    assert local_text(at, "Not/AZone").startswith("zona horaria desconocida")


def _text(body: bytes) -> list[str]:
    doc = Document(io.BytesIO(body))
    return [p.text for p in doc.paragraphs] + [
        c.text for t in doc.tables for r in t.rows for c in r.cells
    ]


def test_the_shipped_docx_templates_are_those_their_source_makes(tmp_path: Path) -> None:
    for made in docx_templates.write(tmp_path):
        shipped = docx_templates.TEMPLATES / made.name
        assert _text(made.read_bytes()) == _text(shipped.read_bytes()), made.name
