"""Hand-made torrents for the metainfo tests: a valid base each, changed by keyword.

`v1_info()`, `multi_info()`, `v2_info()` and `hybrid_info()` give valid info
dictionaries that a test changes in one place; `torrent()` wraps one in a
.torrent; `ordered()` encodes a dictionary with its keys in the order given,
repeats included, as a careless maker would, which `encode` never does.
"""

from __future__ import annotations

from atalaya.networks.bittorrent.bencode import BValue, encode

HASH = b"\x11" * 20
ROOT = b"\x22" * 32


def v1_info(**info: BValue | None) -> dict[bytes, BValue]:
    base: dict[str, BValue | None] = {
        "name": b"file.bin",
        "piece length": 16384,
        "length": 20000,
        "pieces": HASH * 2,
    }
    base.update(info)
    return {k.encode(): v for k, v in base.items() if v is not None}


def multi_info(*files: tuple[list[bytes], int], **info: BValue | None) -> dict[bytes, BValue]:
    total = sum(n for _, n in files)
    entries: list[BValue] = [{b"length": n, b"path": list(p)} for p, n in files]
    defaults: dict[str, BValue | None] = {
        "length": None,
        "files": entries,
        "pieces": HASH * -(-total // 16384),
    }
    defaults.update(info)
    return v1_info(**defaults)


def v2_info(tree: BValue | None, **info: BValue | None) -> dict[bytes, BValue]:
    base: dict[str, BValue | None] = {
        "name": b"file.bin",
        "piece length": 16384,
        "meta version": 2,
        "file tree": tree,
    }
    base.update(info)
    return {k.encode(): v for k, v in base.items() if v is not None}


def leaf(length: int, root: bytes | None = ROOT) -> dict[bytes, BValue]:
    attrs: dict[bytes, BValue] = {b"length": length}
    if root is not None:
        attrs[b"pieces root"] = root
    return {b"": attrs}


def torrent(info: BValue, **top: BValue) -> bytes:
    value: dict[bytes, BValue] = {b"info": info}
    names = {"announce_list": b"announce-list", "piece_layers": b"piece layers"}
    value.update({names.get(k, k.encode()): v for k, v in top.items()})
    return encode(value)


def hybrid_tree() -> tuple[dict[bytes, BValue], list[BValue]]:
    # Two files: a (20000 bytes, padded to 32768) and b (100 bytes).
    tree: dict[bytes, BValue] = {b"a": leaf(20000), b"b": leaf(100, b"\x33" * 32)}
    files: list[BValue] = [
        {b"length": 20000, b"path": [b"a"]},
        {b"attr": b"p", b"length": 12768, b"path": [b".pad", b"12768"]},
        {b"length": 100, b"path": [b"b"]},
    ]
    return tree, files


def hybrid_info(**changes: BValue) -> dict[bytes, BValue]:
    tree, files = hybrid_tree()
    info = v2_info(tree, name=b"dir", files=files, pieces=HASH * 3)
    info.update({k.replace("_", " ").encode(): v for k, v in changes.items()})
    return info


class Raw(bytes):
    """Bytes that `ordered` places as they are: an already encoded value."""


def ordered(*items: tuple[bytes, BValue | Raw]) -> bytes:
    """A bencoded dictionary with exactly these keys, in this order, repeats kept."""
    out = [b"d"]
    for key, value in items:
        out.append(encode(key))
        out.append(bytes(value) if isinstance(value, Raw) else encode(value))
    out.append(b"e")
    return b"".join(out)
