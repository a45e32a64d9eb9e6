"""The sizes an eD2K probe needs come from the hash sets, here a CSV's `size` column."""

from __future__ import annotations

import random
from pathlib import Path

from sqlalchemy import Engine

from atalaya.hashsets.importer import import_hash_set
from atalaya.observe.ed2k.network import ED2K_NETWORK
from atalaya.observe.ed2k.observer import file_sizes
from atalaya.observe.watchlist import load_targets


def test_sizes_from_a_csv_size_column(engine: Engine, tmp_path: Path) -> None:
    rng = random.Random(7)
    sized, bare = rng.randbytes(16), rng.randbytes(16)
    (tmp_path / "made-up.csv").write_text(
        f"ed2k,category,size\n{sized.hex()},1,9728001\n{bare.hex()},1,\n"
    )
    import_hash_set(engine, tmp_path / "made-up.csv")
    targets = load_targets(engine, ED2K_NETWORK)
    assert {t.value for t in targets} == {sized, bare}
    assert file_sizes(engine, targets) == {sized: 9728001}
