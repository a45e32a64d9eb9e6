"""Which file of a torrent is the watched one, and what its streamed hashes prove."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from atalaya.lab.files import random_bytes
from atalaya.networks.bittorrent import bencode
from atalaya.networks.bittorrent.metainfo import Metainfo, parse_info
from atalaya.networks.bittorrent.probe import StreamedFile
from atalaya.observe.bittorrent.full_file import (
    FullFilePlan,
    full_file_proof,
    plan_full_file,
    watched_file,
)
from atalaya.observe.bittorrent.probe import ProbeResult

PLEN = 16384
A = random_bytes(PLEN, 1)  # fills piece 0
B = random_bytes(20_000, 2)  # starts on piece 1, ends inside piece 2
C = random_bytes(3_000, 3)  # starts inside piece 2: no fingerprint of its own
AT = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)


def v1(files: list[tuple[bytes, bytes]]) -> Metainfo:
    content = b"".join(data for _, data in files)
    pieces = b"".join(
        hashlib.sha1(content[i : i + PLEN]).digest() for i in range(0, len(content), PLEN)
    )
    info: dict[bytes, bencode.BValue] = {b"name": b"t", b"piece length": PLEN, b"pieces": pieces}
    if len(files) == 1:
        info[b"length"] = len(content)
    else:
        info[b"files"] = [{b"length": len(d), b"path": [n]} for n, d in files]
    return parse_info(bencode.encode(info))


def own(data: bytes) -> dict[str, bytes]:
    return {
        "md5": hashlib.md5(data).digest(),
        "sha1": hashlib.sha1(data).digest(),
        "sha256": hashlib.sha256(data).digest(),
    }


MULTI = v1([(b"a", A), (b"b", B), (b"c", C)])


def test_the_file_is_found_by_its_first_piece() -> None:
    assert watched_file(MULTI, {"btv1_16384": hashlib.sha1(A).digest()}) == 0
    assert watched_file(MULTI, {"btv1_16384": hashlib.sha1(B[:PLEN]).digest()}) == 1
    # A file that starts inside a piece has no fingerprint in v1 metadata.
    assert watched_file(MULTI, own(C)) is None
    assert watched_file(MULTI, {"btv1_32768": hashlib.sha1(A).digest()}) is None


def test_a_single_file_torrent_is_its_file() -> None:
    assert watched_file(v1([(b"x", B)]), own(B)) == 0


def test_plans_and_why_not() -> None:
    reference = {**own(B), "btv1_16384": hashlib.sha1(B[:PLEN]).digest()}
    plan = plan_full_file(MULTI, "sha256:b", reference, 1 << 20)
    assert plan == FullFilePlan("sha256:b", 1, len(B), own(B))
    assert "over the full-file limit of 19999 bytes" in str(
        plan_full_file(MULTI, "sha256:b", reference, 19_999)
    )
    assert "cannot be told" in str(plan_full_file(MULTI, "sha256:c", own(C), 1 << 20))
    only_roots = {"btv1_16384": hashlib.sha1(A).digest()}
    assert "no MD5, SHA-1 or SHA-256" in str(plan_full_file(MULTI, "k", only_roots, 1 << 20))


def result_with(streamed: StreamedFile[datetime] | None) -> ProbeResult:
    return ProbeResult(ip="127.0.0.2", port=1, infohash=bytes(20), full_file=streamed)


def test_what_the_stream_proves() -> None:
    plan = FullFilePlan("sha256:b", 1, len(B), own(B))
    whole = StreamedFile(1, len(B), len(B), own(B), AT, AT)
    proof = full_file_proof(plan, result_with(whole))
    assert proof is not None and proof.ok and proof.bytes == len(B) and proof.notes == ()
    wrong = StreamedFile(1, len(B), len(B), own(A), AT, AT)
    proof = full_file_proof(plan, result_with(wrong))
    assert proof is not None and not proof.ok
    short = StreamedFile(1, len(B), PLEN, {}, AT, AT)
    proof = full_file_proof(plan, result_with(short))
    assert proof is not None and not proof.ok
    assert proof.notes == (f"received {PLEN} of {len(B)} bytes in order",)
    assert full_file_proof(plan, result_with(None)) is None
    # Only an MD5 in the hash set: the MD5 alone decides.
    md5_only = FullFilePlan("md5:b", 1, len(B), {"md5": own(B)["md5"]})
    proof = full_file_proof(md5_only, result_with(whole))
    assert proof is not None and proof.ok
