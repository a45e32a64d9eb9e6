"""A row read back from either engine encodes exactly as the values that were written."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from sqlalchemy import Engine, insert, select

from atalaya.evidence.stamping import encode_row
from atalaya.store.tables import sighting
from tests.evidence.rows import sighting_rows


def test_rows_encode_alike_after_the_database(engine: Engine) -> None:
    @settings(
        max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(sighting_rows(with_id=False))
    def check(row: dict[str, Any]) -> None:
        for column in sighting.columns:
            if not column.nullable and row.get(column.name, 0) is None:
                return
        with engine.begin() as conn:
            new_id = conn.execute(
                insert(sighting).values(row).returning(sighting.c.id)
            ).scalar_one()
            back = conn.execute(select(sighting).where(sighting.c.id == new_id)).mappings().one()
        assert encode_row(back) == encode_row({**row, "id": new_id})

    check()
