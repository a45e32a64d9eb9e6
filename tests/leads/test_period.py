"""The list's figures for the selected days (`period_figures`), through the
real pipeline on both engines: a week shows that week's sightings, not the
lead's lifetime."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, select

from atalaya.leads.build import build_leads
from atalaya.leads.config import LeadsConfig
from atalaya.leads.selection import period_figures
from atalaya.store.tables import lead
from tests.leads.helpers import HOME, NOW, T0, facts, item, sighting, write

V4 = "192.0.2.10"
V6 = "2001:db8:7::5"
V6_OTHER = "2001:db8:7::6"  # the same /64: the same presence


def test_figures_count_the_window_only(engine: Engine) -> None:
    day = 24.0
    write(
        engine,
        [
            # Week 1 (from T0): 3 sightings of 2 files; week 3: 1 of a third file.
            sighting(V4, item(1), 1, file_key="sha1:" + "1" * 40),
            sighting(V4, item(1), 2, file_key="sha1:" + "1" * 40),
            sighting(V4, item(2), 3, file_key="sha1:" + "2" * 40),
            sighting(V4, item(3), 15 * day, file_key="sha1:" + "3" * 40),
            # IPv6 (a /64 presence): two addresses, week 1.
            sighting(V6, item(4), 5),
            sighting(V6_OTHER, item(4), 6),
            sighting(V6, item(5), 20 * day),
        ],
    )
    build_leads(engine, facts({V4: HOME, V6: HOME, V6_OTHER: HOME}), LeadsConfig(), now=NOW)
    with engine.connect() as conn:
        found = conn.execute(select(lead.c.ip, lead.c.id).order_by(lead.c.first_seen)).all()
        # An address seen two weeks apart is two presences, here two leads.
        v4, v4_later = [i for ip, i in found if ip == V4]
        (v6, _v6_later) = [i for ip, i in found if ip == "2001:db8:7::/64"]
        ids = [v4, v4_later, v6]
        week1 = period_figures(conn, ids, T0, T0 + timedelta(days=7))
        always = period_figures(conn, ids, T0, NOW)
        assert period_figures(conn, [], T0, NOW) == {}
    assert (week1[v4].sightings, week1[v4].known_files, week1[v4].items) == (3, 2, 2)
    assert week1[v4].last_seen == T0 + timedelta(hours=3)
    # Both addresses of the /64 count.
    assert (week1[v6].sightings, week1[v6].known_files, week1[v6].items) == (2, 0, 1)
    # Nothing in the window: zeros.
    assert (week1[v4_later].sightings, week1[v4_later].last_seen) == (0, None)
    assert (always[v4_later].sightings, always[v4_later].known_files) == (1, 1)
