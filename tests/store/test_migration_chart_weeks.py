"""Migration 0022 down and up on a built store: the weekly chart counts come back as built."""

from __future__ import annotations

from typing import Any

from alembic import command
from sqlalchemy import Engine, func, inspect, select

from atalaya.leads.build import build_leads
from atalaya.leads.config import LeadsConfig
from atalaya.store import create_store_engine, upgrade
from atalaya.store.migrate import alembic_config, current_revision
from atalaya.store.tables import lead_presence_day, lead_presence_week
from tests.leads.helpers import CGNAT, ELSEWHERE, HOME, NOW, facts, item, write
from tests.leads.helpers import sighting as s


def _weeks(engine: Engine) -> list[tuple[Any, ...]]:
    w = lead_presence_week.c
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(w.presence_id, w.week, w.sightings))]


def test_0021_fills_the_weekly_counts_from_the_daily_ones(db_url: str) -> None:
    eng = create_store_engine(db_url)
    try:
        upgrade(eng)
        # Days on both sides of a Monday (2026-10-05), a shared address told
        # apart by port, two provinces.
        hours = (0, 30, 60, 90, 95, 100, 200, 400)
        write(
            eng,
            [s("10.7.0.1", item(1), h) for h in hours]
            + [s("10.7.0.3", item(2), h + 3) for h in hours[:5]]
            + [s("100.64.7.1", item(3), h, port=40000 + n % 2) for n, h in enumerate(hours)],
        )
        mapping = {"10.7.0.1": HOME, "10.7.0.3": ELSEWHERE, "100.64.7.1": CGNAT}
        build_leads(eng, facts(mapping), LeadsConfig(), now=NOW)
        built = sorted(_weeks(eng))
        d = lead_presence_day.c
        with eng.connect() as conn:
            summed = sorted(
                tuple(r)
                for r in conn.execute(
                    select(d.presence_id, d.week, func.sum(d.sightings)).group_by(
                        d.presence_id, d.week
                    )
                )
            )
        assert built == summed
        assert len({week for _, week, _ in built}) > 1

        command.downgrade(alembic_config(eng), "0021")
        assert current_revision(eng) == "0021"
        assert "lead_presence_week" not in inspect(eng).get_table_names()
        indexes = {ix["name"] for ix in inspect(eng).get_indexes("lead_presence")}
        assert "ix_lead_presence_lead_id_province" not in indexes

        upgrade(eng)
        assert sorted(_weeks(eng)) == built
        indexes = {ix["name"] for ix in inspect(eng).get_indexes("lead_presence")}
        assert "ix_lead_presence_lead_id_province" in indexes
    finally:
        eng.dispose()
