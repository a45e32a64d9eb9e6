"""What the namespace DHT labs share: their torrents, their hash set, their DHT.

The torrents are trackerless (the DHT is the only way to find their peers),
each of one random-byte file. The hash set lists the watched ones in the CSV
form `atalaya hashsets import --format csv` reads, like the loopback lab's.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from atalaya.errors import AtalayaError
from atalaya.hashsets.algorithms import BTIH, BTIH2
from atalaya.hashsets.fingerprint import CATEGORY_COLUMN, NAME_COLUMN
from atalaya.lab.content import (
    CATEGORIES,
    BuiltTorrent,
    PlannedFile,
    PlannedTorrent,
    Purpose,
    build,
)
from atalaya.lab.libtorrent_peer import LibtorrentPeer
from atalaya.lab.manifest import HASH_SET_COLUMNS
from atalaya.lab.torrents import TorrentVersion

Endpoint = tuple[str, int]
# Lab nodes take many queries from one observer address; libtorrent's
# default would ignore it for minutes after five a second (lab notes).
DHT_RATE_LIMIT = 100
_LOOKUP_SECONDS = 3.0
_PAUSE_SECONDS = 1.0


def single_file_torrent(
    name: str,
    version: TorrentVersion,
    purpose: Purpose,
    *,
    size: int,
    seed: int,
    piece_size: int = 32_768,
) -> PlannedTorrent:
    """A planned torrent of one random file `name`.bin; watched unless `purpose` is
    "unwatched" (watched files get a made-up category)."""
    watched = purpose != "unwatched"
    category = CATEGORIES[seed % len(CATEGORIES)] if watched else None
    planned = PlannedFile(f"{name}.bin", size, seed, watched, category)
    return PlannedTorrent(name, version, piece_size, purpose, (planned,))


def build_trackerless(
    plans: Iterable[PlannedTorrent], content_dir: Path
) -> dict[str, BuiltTorrent]:
    """Write each planned torrent's file under `content_dir`; the torrents by name."""
    return {plan.name: build(plan, content_dir, trackers=()) for plan in plans}


def write_hash_set(torrents: Iterable[BuiltTorrent], path: Path) -> Path:
    """Write the hash set of the watched files (and their torrents' info-hashes)."""
    rows = []
    for built in torrents:
        for planned in built.plan.files:
            if not planned.watched:
                continue
            digests = built.fingerprints[planned.path].digests
            row = dict.fromkeys(HASH_SET_COLUMNS, "")
            for column in HASH_SET_COLUMNS:
                if column in digests:
                    row[column] = digests[column].hex()
            if built.plan.infohash_watched:
                row[BTIH] = built.hashes.v1.hex() if built.hashes.v1 else ""
                row[BTIH2] = built.hashes.v2.hex() if built.hashes.v2 else ""
            row[CATEGORY_COLUMN] = planned.category or ""
            row[NAME_COLUMN] = planned.path.rsplit("/", 1)[-1]
            rows.append(row)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=HASH_SET_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(text.getvalue(), encoding="utf-8")
    return path


class Closable(Protocol):
    def close(self) -> None: ...


def close_all(parts: Iterable[Closable]) -> None:
    """Close every part, in order, even when one fails or an interrupt comes; then
    raise the first failure."""
    failure: BaseException | None = None
    for part in parts:
        try:
            part.close()
        except BaseException as exc:
            failure = failure or exc
    if failure is not None:
        raise failure


def join_dht(nodes: Iterable[LibtorrentPeer], others: Iterable[Endpoint] = ()) -> None:
    """Make every libtorrent node know every other one and each of `others`."""
    peers = list(nodes)
    extra = list(others)
    for peer in peers:
        for other in peers:
            if other is not peer:
                peer.add_dht_node(other.ip, other.port)
        for ip, port in extra:
            peer.add_dht_node(ip, port)


def wait_dht_formed(nodes: Mapping[str, LibtorrentPeer], deadline: float) -> None:
    """Until every libtorrent node's routing table holds another node."""
    pending = dict(nodes)
    while pending:
        pending = {name: p for name, p in pending.items() if p.dht_nodes() == 0}
        if pending and time.monotonic() >= deadline:
            raise AtalayaError(f"lab DHT did not form: {', '.join(sorted(pending))} know no node")
        if pending:
            time.sleep(0.2)


def wait_announced(
    finder: LibtorrentPeer,
    expected: Mapping[bytes, set[Endpoint]],
    deadline: float,
    *,
    describe: Mapping[Endpoint, str] | None = None,
) -> dict[bytes, set[Endpoint]]:
    """Until `finder`'s get_peers lookups return every expected peer of each info-hash.

    Keys are info-hashes (v2 ones are looked up truncated, as they are
    announced); the peers found so far for each, once all are there.
    AtalayaError naming the missing peers at `deadline`.
    """
    found: dict[bytes, set[Endpoint]] = {ih: set() for ih in expected}
    while True:
        missing = {ih: want - found[ih] for ih, want in expected.items() if want - found[ih]}
        if not missing:
            return found
        left = deadline - time.monotonic()
        if left <= 0:
            names = describe or {}
            text = "; ".join(
                f"{ih.hex()[:12]}…: " + ", ".join(names.get(e, f"{e[0]}:{e[1]}") for e in sorted(m))
                for ih, m in missing.items()
            )
            raise AtalayaError(f"lab DHT: not announced in time: {text}")
        for ih in missing:
            found[ih] |= finder.dht_get_peers(ih, min(_LOOKUP_SECONDS, max(0.1, left)))
        # Spaced out: Transmission's DHT answers about four queries a second in all.
        time.sleep(max(0.0, min(_PAUSE_SECONDS, deadline - time.monotonic())))
