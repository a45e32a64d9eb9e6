"""CSV cells a spreadsheet will not run as formulas.

Exports carry strings peers wrote (client names, advertised file names) and
analysts wrote (override reasons). Excel, LibreOffice and Google Sheets take
a cell that begins with `=`, `+`, `-` or `@` as a formula, and a leading tab
or carriage return can hide one: `=HYPERLINK("http://…"&B2&C2, "open")`
opened by an analyst would send the row elsewhere (OWASP, "CSV Injection").
Such text cells get a leading apostrophe, which spreadsheets show as text
and which a reader of the raw file sees for what it is. Numbers are left as
they are: -3.7 is a longitude, not a formula.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """`value` as a CSV cell: text that would start a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def neutralise_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """Every cell of a csv.DictWriter row through `neutralise`."""
    return {key: neutralise(value) for key, value in row.items()}
