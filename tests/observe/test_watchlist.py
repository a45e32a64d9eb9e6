"""The watch list asks each network which hash set rows it watches, and how."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from atalaya.hashsets.algorithms import BTIH, BTIH2, MD5, SHA256
from atalaya.hashsets.importer import import_hash_set
from atalaya.observe.bittorrent.network import BITTORRENT
from atalaya.observe.watchlist import OPERATOR_REASON, add_watch_item, load_targets
from atalaya.store import create_store_engine, upgrade
from atalaya.store.tables import hash_set
from tests.support.quiet_network import QuietNetwork


@dataclass(frozen=True)
class Row:
    md5: str
    sha256: str
    btih: str
    btih2: str


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'w.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def import_rows(engine: Engine, tmp_path: Path, seed: int, name: str) -> list[Row]:
    rng = random.Random(seed)
    rows = [
        Row(*(rng.randbytes(n).hex() for n in (16, 32, 20, 32))) for _ in range(rng.randint(2, 6))
    ]
    text = "md5,sha256,btih,btih2,category\n"
    text += "".join(f"{r.md5},{r.sha256},{r.btih},{r.btih2},B\n" for r in rows)
    path = tmp_path / f"{name}.csv"
    path.write_text(text, encoding="utf-8")
    import_hash_set(engine, path, name=name)
    return rows


def digest_of(engine: Engine, name: str) -> str:
    with engine.connect() as conn:
        found = conn.execute(select(hash_set.c.file_sha256).where(hash_set.c.name == name))
        return str(found.scalar_one())


@pytest.mark.parametrize("seed", range(3))
def test_bittorrent_watches_the_infohashes_of_each_record(
    engine: Engine, tmp_path: Path, seed: int
) -> None:
    rows = import_rows(engine, tmp_path, seed, "set-a")
    targets = load_targets(engine, BITTORRENT)
    want = {(BTIH, bytes.fromhex(r.btih), r.sha256) for r in rows}
    want |= {(BTIH2, bytes.fromhex(r.btih2), r.sha256) for r in rows}
    assert {(t.kind, t.value, t.file_key.split(":")[1]) for t in targets if t.file_key} == want
    assert len(targets) == len(want)
    digest = digest_of(engine, "set-a")
    for t in targets:
        assert (t.network, t.hash_set, t.hash_set_sha256) == ("bittorrent", "set-a", digest)
        assert t.file_key == f"sha256:{t.file_key.split(':')[1]}" if t.file_key else False
        assert t.reason == f"{t.kind} in hash set set-a"


@dataclass(frozen=True)
class FilesByDigest(QuietNetwork):
    """A network that asks for files by SHA-256 and by a prefix of their MD5."""

    name: str = "bydigest"
    kinds: tuple[str, ...] = (SHA256, "md5-prefix")
    sources: tuple[str, ...] = (SHA256, MD5)

    def derive(self, algorithm: str, value: bytes) -> tuple[str, bytes] | None:
        if algorithm == SHA256:
            return SHA256, value
        if algorithm == MD5:
            return "md5-prefix", value[:4]
        return None


def test_another_network_derives_its_own_kinds_from_the_same_rows(
    engine: Engine, tmp_path: Path
) -> None:
    rows = import_rows(engine, tmp_path, 7, "set-b")
    targets = load_targets(engine, FilesByDigest())
    assert {(t.network, t.kind, t.value) for t in targets} == {
        ("bydigest", SHA256, bytes.fromhex(r.sha256)) for r in rows
    } | {("bydigest", "md5-prefix", bytes.fromhex(r.md5)[:4]) for r in rows}
    assert all(t.file_key == f"sha256:{t.hex}" for t in targets if t.kind == SHA256)
    # A network that derives nothing watches nothing, whatever the hash sets hold.
    assert load_targets(engine, QuietNetwork()) == []


def test_watch_items_belong_to_their_network_and_the_first_reason_wins(
    engine: Engine, tmp_path: Path
) -> None:
    rows = import_rows(engine, tmp_path, 11, "set-c")
    in_set = bytes.fromhex(rows[0].btih)
    item = hashlib.sha1(b"an item named by discovery").digest()
    other = hashlib.sha256(b"an item of another network").digest()
    assert add_watch_item(engine, "bittorrent", BTIH, item, origin="operator", reason="told")
    assert not add_watch_item(engine, "bittorrent", BTIH, item, origin="operator", reason="again")
    assert add_watch_item(engine, "bittorrent", BTIH, in_set, origin="discovery", reason="late")
    assert add_watch_item(engine, "bydigest", SHA256, other, origin="operator", reason="mine")
    named = hashlib.sha1(b"named for this run").digest()
    targets = {t.value: t for t in load_targets(engine, BITTORRENT, [(BTIH, named)])}
    assert targets[item].reason == "told" and targets[item].kind == BTIH
    assert targets[in_set].reason == "btih in hash set set-c"
    assert targets[named].reason == OPERATOR_REASON and targets[named].hash_set is None
    assert other not in targets
    mine = load_targets(engine, FilesByDigest())
    assert [t.reason for t in mine if t.value == other] == ["mine"]
