"""The sighting writer and the watch list wait for other writers, on both engines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select

from atalaya.hashsets.algorithms import BTIH
from atalaya.observe.sightings import Sighting, SightingWriter, new_run_id
from atalaya.observe.watchlist import add_watch_item
from atalaya.store.tables import sighting, watch_item
from tests.support.parallel import in_parallel
from tests.support.writers import while_another_writes

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def _sightings(first: int, n: int) -> list[Sighting]:
    run = new_run_id()
    return [
        Sighting(
            network="bittorrent",
            item_kind="btih",
            item_value=f"{first + i:040x}",  # made up
            ip=f"10.8.{first % 200}.{i % 250 + 1}",
            port=6881,
            seen_at=T0 + timedelta(seconds=first + i),
            found_by="dht",
            run_id=run,
        )
        for i in range(n)
    ]


def _count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(table)) or 0  # type: ignore[arg-type]


def test_a_sighting_batch_waits_for_another_writer(engine: Engine) -> None:
    # The writer reads first on purpose: that is what made SQLite refuse.
    writer = SightingWriter(engine)
    with engine.connect() as conn:
        conn.scalar(select(func.count()).select_from(sighting))
    while_another_writes(engine, lambda: writer.write(_sightings(0, 20)))
    assert _count(engine, sighting) == 20


def test_two_sighting_writers_at_once_both_land(engine: Engine) -> None:
    writers = [SightingWriter(engine) for _ in range(2)]
    failures = in_parallel(2, lambda n: [writers[n].write(_sightings(1000 * n, 500)) for _ in "ab"])
    assert not failures, failures
    assert _count(engine, sighting) == 2 * 2 * 500
    assert [w.written for w in writers] == [1000, 1000]


def test_a_watch_item_waits_for_another_writer(engine: Engine) -> None:
    value = bytes(range(20))  # made up
    added: list[bool] = []
    while_another_writes(
        engine,
        lambda: added.append(
            add_watch_item(
                engine,
                "bittorrent",
                BTIH,
                value,
                origin="operator",
                reason="test",
                hash_set_name="none",
            )
        ),
    )
    assert added == [True]
    assert _count(engine, watch_item) == 1


def test_two_operators_adding_the_same_item_at_once_add_it_once(engine: Engine) -> None:
    values = [bytes([n]) * 20 for n in range(3)]  # made up
    results: list[bool] = []

    def add(n: int) -> None:
        for value in values:
            results.append(
                add_watch_item(
                    engine, "bittorrent", BTIH, value, origin="operator", reason=f"op {n}"
                )
            )

    failures = in_parallel(2, add)
    assert not failures, failures
    assert sorted(results) == [False] * 3 + [True] * 3
    assert _count(engine, watch_item) == 3
