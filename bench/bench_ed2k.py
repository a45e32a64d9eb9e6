"""eD2K probe and codec rates: proofs against a real aMule on loopback, and decode throughput.

    python bench/bench_ed2k.py [--probes N] [--concurrency C] [--parts codec,probes]

Two parts, each with its baseline in the same run:

- codec: a stream of the packets a probe reads (hello answer, file name,
  part map, hash set, AICH recovery data, 10 KiB parts) through
  `PacketDecoder` and `messages.decode`, whole and in 1,460-byte segments,
  against a bare frame splitter (header, length, slice) over the same bytes;
  and the AICH master hash of 20 MB against one flat SHA-1 of it;
- probes: `probe_peer` against aMule 2.3.3 (`atalaya.lab.amule`) sharing a
  file of two whole parts, proven by the part MD4 (one 9,728,000-byte part,
  the way before AICH) and by one AICH block (143,360 bytes), sequentially
  and C at a time: probes per second, CPU per probe in this process
  (aMule's own CPU is read from /proc beside it), bytes per proof.

aMule queues a client that asks for upload slots in quick succession, so
each probe comes from its own loopback address and user hash. Everything
talks on 127.0.0.0/8 only. Results go to stdout and to the `bench_ed2k`
section of docs/benchmarks.md (or `--docs`).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import shutil
import struct
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

from atalaya.lab.amule import AmulePeer
from atalaya.lab.ed2k_peer import Ed2kResponder
from atalaya.networks.ed2k import aich
from atalaya.networks.ed2k import messages as m
from atalaya.networks.ed2k.hashing import PART_SIZE, ed2k_hash
from atalaya.networks.ed2k.packets import PacketDecoder
from atalaya.networks.ed2k.probe import ProbeTimeouts
from atalaya.observe.ed2k.probe import Ed2kProbeResult, probe_peer
from benchdocs import add_docs_options, footer, markers, pick, publish

PARTS = ("codec", "probes")
AMULE_IP = "127.0.0.90"


def _packet_stream() -> bytes:
    """What a probe reads from an honest peer for a file of two parts, proven by AICH."""
    content = random.Random(5).randbytes(PART_SIZE + 3 * aich.BLOCK_SIZE)
    peer = Ed2kResponder(content, user_hash=bytes(range(16)), port=4662)
    file_hash = peer.file_hash
    out = bytearray(peer.hello_answer())
    out += peer.answer(m.FileRequest(m.OP_REQUESTFILENAME, file_hash).encode())
    out += peer.answer(m.FileRequest(m.OP_SETREQFILEID, file_hash).encode())
    out += peer.answer(m.FileRequest(m.OP_HASHSETREQUEST, file_hash).encode())
    out += peer.answer(m.AichRequest(file_hash, 1, peer.master).encode())
    out += peer.answer(m.FileRequest(m.OP_STARTUPLOADREQ, file_hash).encode())
    start = PART_SIZE
    ranges = tuple(
        (start + i * aich.BLOCK_SIZE, start + (i + 1) * aich.BLOCK_SIZE) for i in range(3)
    )
    out += peer.answer(m.RequestParts(file_hash, ranges).encode())
    return bytes(out)


def _decode_all(stream: bytes, segment: int) -> int:
    decoder = PacketDecoder()
    count = 0
    for at in range(0, len(stream), segment):
        for packet in decoder.feed(stream[at : at + segment]):
            m.decode(packet)
            count += 1
    return count


def _split_frames(stream: bytes) -> int:
    """The baseline: frames found by header and length, payloads sliced, nothing read."""
    at = count = 0
    while at < len(stream):
        (length,) = struct.unpack_from("<I", stream, at + 1)
        _ = stream[at + 6 : at + 5 + length]
        at += 5 + length
        count += 1
    return count


def _rate(fn: Callable[[], object], size: int) -> float:
    runs, seconds = timeit.Timer(fn).autorange()
    best = min([seconds / runs, *(timeit.timeit(fn, number=runs) / runs for _ in range(2))])
    return size / best


def bench_codec() -> list[str]:
    stream = _packet_stream()
    packets = _split_frames(stream)
    assert _decode_all(stream, len(stream)) == packets == _decode_all(stream, 1460)
    size = len(stream)
    rows = [
        ("frame split only (baseline)", _rate(lambda: _split_frames(stream), size)),
        ("PacketDecoder + decode, whole", _rate(lambda: _decode_all(stream, size), size)),
        (
            "PacketDecoder + decode, 1,460-byte segments",
            _rate(lambda: _decode_all(stream, 1460), size),
        ),
    ]
    data = random.Random(6).randbytes(2 * PART_SIZE + 12_345)
    flat = _rate(lambda: hashlib.sha1(data, usedforsecurity=False).digest(), len(data))
    tree = _rate(lambda: aich.master_hash(data), len(data))
    lines = [
        f"Codec: {packets} packets, {len(stream):,} bytes (a two-part file proven by AICH).",
        "",
        "| decoder | MB/s |",
        "| --- | ---: |",
        *(f"| {name} | {rate / 1e6:,.0f} |" for name, rate in rows),
        "",
        f"AICH master hash of {len(data):,} bytes: {tree / 1e6:,.0f} MB/s, against one flat "
        f"SHA-1 of the same bytes at {flat / 1e6:,.0f} MB/s (the tree adds a SHA-1 per node).",
    ]
    return lines


def _amule_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _probes(
    peer: AmulePeer, file_hash: bytes, size: int, master: bytes | None, ips: list[str], at_once: int
) -> list[Ed2kProbeResult]:
    gate = asyncio.Semaphore(at_once)

    async def one(ip: str) -> Ed2kProbeResult:
        async with gate:
            return await probe_peer(
                peer.ip, peer.port, file_hash, file_size=size, user_hash=os.urandom(16),
                bind_ip=ip, timeouts=ProbeTimeouts(total=120.0), aich_master=master,
            )  # fmt: skip

    return await asyncio.gather(*(one(ip) for ip in ips))


def _address(n: int) -> str:
    """The n-th probe's own loopback address (127.0.91.1 onwards)."""
    return f"127.0.{91 + n // 250}.{1 + n % 250}"


def bench_probes(count: int, concurrency: int) -> list[str]:
    if shutil.which("amuled") is None:
        return ["Probes: skipped, amule-daemon is not installed."]
    folder = Path(tempfile.mkdtemp(prefix="bench-ed2k-"))
    try:
        path = folder / "files" / "dos-partes.bin"
        path.parent.mkdir(parents=True)
        content = random.Random(7).randbytes(2 * PART_SIZE)
        path.write_bytes(content)
        file_hash, master = ed2k_hash(content), aich.master_hash(content)
        rows: list[tuple[str, int, float, float, float, float]] = []
        address = 0
        with AmulePeer(AMULE_IP, folder / "amule", [path]) as peer:
            assert peer.pid is not None
            for label, used in (("part MD4 (before)", None), ("AICH block (new)", master)):
                for at_once in (1, concurrency):
                    ips = [_address(address + i) for i in range(count)]
                    address += count
                    cpu, amule, wall = (
                        time.process_time(),
                        _amule_cpu(peer.pid),
                        time.perf_counter(),
                    )
                    results = asyncio.run(
                        _probes(peer, file_hash, len(content), used, ips, at_once)
                    )
                    wall = time.perf_counter() - wall
                    cpu = time.process_time() - cpu
                    amule = _amule_cpu(peer.pid) - amule
                    proven = [r for r in results if r.proof]
                    per = sum(r.bytes_downloaded for r in proven) / max(1, len(proven))
                    rows.append(
                        (
                            f"{label}, {at_once} at a time",
                            len(proven),
                            count / wall,
                            cpu / count * 1e3,
                            amule / count * 1e3,
                            per,
                        )
                    )
        return [
            f"Probes: aMule 2.3.3 on loopback sharing a file of two whole parts ({len(content):,} "
            f"bytes); {count} probes per row, each from its own address and user hash.",
            "",
            "| proof | proven | probes/s | our CPU ms/probe | aMule CPU ms/probe | bytes/proof |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            *(
                f"| {n} | {p}/{count} | {r:.2f} | {c:.1f} | {a:.1f} | {b:,.0f} |"
                for n, p, r, c, a, b in rows
            ),
        ]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=8, help="probes per row")
    parser.add_argument("--concurrency", type=int, default=4, help="probes at once")
    parser.add_argument("--parts", default=",".join(PARTS), help="codec,probes")
    add_docs_options(parser)
    args = parser.parse_args()
    chosen = pick(parser, args.parts, PARTS, "part")
    start, end = markers("bench_ed2k")
    lines: list[str] = [start, "## eD2K probes and codecs (bench/bench_ed2k.py)", ""]
    if "probes" in chosen:
        lines += [*bench_probes(args.probes, args.concurrency), ""]
    if "codec" in chosen:
        lines += [*bench_codec(), ""]
    lines += [*footer({"aMule": "2.3.3"}), end]
    publish("\n".join(lines) + "\n", args)


if __name__ == "__main__":
    sys.exit(main())
