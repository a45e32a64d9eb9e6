"""BitTorrent's reading of watch targets: infohashes, their DHT keys, a hybrid's two names."""

from __future__ import annotations

from collections.abc import Iterable

from atalaya.hashsets.algorithms import infohash_kind
from atalaya.observe.bittorrent.network import BITTORRENT
from atalaya.observe.watchlist import WatchTarget

NETWORK = BITTORRENT.name
V1_SIZE = 20  # SHA-1
V2_SIZE = 32  # SHA-256


def infohash_target(
    infohash: bytes,
    reason: str,
    file_key: str | None = None,
    category: int | None = None,
    hash_set: str | None = None,
    hash_set_sha256: str | None = None,
) -> WatchTarget:
    """A BitTorrent target for `infohash`, with the file and hash set it stands for, if any."""
    kind = infohash_kind(infohash)
    return WatchTarget(
        NETWORK, kind, infohash, reason, file_key, category, hash_set, hash_set_sha256
    )


def dht_key(target: WatchTarget) -> bytes:
    """The 20-byte key the DHT and trackers use (v2 hashes are truncated, BEP 52)."""
    return target.value[:V1_SIZE]


def twins_on_one_record(targets: Iterable[WatchTarget]) -> list[tuple[bytes, bytes]]:
    """(v1, v2) names that one hash set record gives to one file: a hybrid's two, likely.

    Only a hint, taken where a record of a hash set carries exactly one
    name of each kind: it lets a first probe ask under one name only, and
    accept an answer under the other. The torrent's metadata, once known,
    confirms it or undoes it; the name a sighting is recorded under never
    rests on it alone.
    """
    by_record: dict[tuple[str, str], list[bytes]] = {}
    for target in targets:
        if target.hash_set is not None and target.file_key is not None:
            names = by_record.setdefault((target.hash_set, target.file_key), [])
            if target.value not in names:
                names.append(target.value)
    pairs = []
    for names in by_record.values():
        v1 = [n for n in names if len(n) == V1_SIZE]
        v2 = [n for n in names if len(n) == V2_SIZE]
        if len(v1) == 1 and len(v2) == 1:
            pairs.append((v1[0], v2[0]))
    return pairs
