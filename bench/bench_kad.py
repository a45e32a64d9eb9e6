"""Kad source searches per second and CPU per search of our Kad client (observe.ed2k.kad_search).

    python bench/bench_kad.py [--parts codec,loopback,lab] [--searches N] [--clients C]

Three parts, the first two the baselines of the third in the same run:

- codec: the client's side of one search (lookup and source requests
  encoded, their answers decoded, 3 sources an answer) by `networks.ed2k.kad`
  alone: the least CPU a search can cost;
- loopback: `KadClient.find_sources` against a made-up Kad network of
  instant nodes on 127.x, served by a child process (so this process's CPU
  is the client's alone), with the shipped pacing and results window, then
  without pacing and with a short window, one client and C at once: the
  client's own ceiling. The rate limiter is off there (these nodes set no
  limits; aMule does);
- lab: against the Kad lab of five real aMule 2.3.3 daemons
  (`atalaya.lab.amule_kad`; root, network namespaces; ready in ~130 s, its
  sources in Kad ~100 s later). After the watched file's sources appear,
  one search at rest (latency), then N back to back with the shipped rate
  limiter, which keeps every node under aMule's flood limits (a node takes 3
  source searches a minute from one address; we ask at most 2): what one
  observer address can really get from the same nodes.

Results go to stdout and to the `bench_kad` section of docs/benchmarks.md
(or `--docs`). Everything talks on 127.0.0.0/8 or in the lab's namespaces.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import cast

from atalaya.networks.ed2k import kad
from atalaya.networks.ed2k.tags import Tag
from atalaya.observe.ed2k.kad_search import (
    KadClient,
    KadSearchConfig,
    KadSearchResult,
    RateLimiter,
)
from benchdocs import add_docs_options, footer, markers, pick, publish

PARTS = ("codec", "loopback", "lab")
SOURCES_PER_FILE = 3
BOOTSTRAP_CONTACTS = 20
DEFAULT_PREFIX = "127.0.93"
CLIENT_PREFIX = "127.0.94"  # client i binds CLIENT_PREFIX.(i + 1)
SHIPPED = KadSearchConfig()
LAB_NOTE = (
    "The shipped limiter lets each node take 2 source searches a minute from one address "
    "(aMule tolerates 3), so back to back against the same five nodes a search waits for "
    "their tokens: that row is what one observer address gets from one set of nodes. In Kad "
    "at large, files' Kad ids fall on different nodes, and one client's rate is bounded by "
    "its search time (the loopback rows) rather than by a node's limit."
)
SOURCES_TIMEOUT = 420.0  # after the lab is ready, for aMule to publish
SEARCH_EVERY = 35.0  # over aMule's flood limit for source searches from one address


# ------------------------------------------------------------------ the made-up network


def _sources(target: int) -> tuple[kad.SearchResult, ...]:
    """The same few HighID sources for a file every time it is asked."""
    rng = random.Random(target)
    out = []
    for _ in range(SOURCES_PER_FILE):
        ip = f"100.64.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        tags = (
            Tag.uint(kad.TAG_SOURCETYPE, 1),
            Tag.uint(kad.TAG_SOURCEIP, kad.ip_to_kad(ip)),
            Tag.uint(kad.TAG_SOURCEPORT, 4662),
            Tag.uint(kad.TAG_SOURCEUPORT, 4672),
        )
        out.append(kad.SearchResult(rng.getrandbits(128), tags))
    return tuple(out)


class _FakeNode(asyncio.DatagramProtocol):
    """An instant, honest Kad node: contacts toward any target, sources for any file."""

    def __init__(self, node_id: int, everyone: list[kad.Contact]) -> None:
        self.node_id = node_id
        self.everyone = everyone
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = kad.decode(data)
        reply: kad.KadMessage | None = None
        if isinstance(message, kad.BootstrapReq):
            reply = kad.BootstrapRes(
                self.node_id, 4662, 8, tuple(self.everyone[:BOOTSTRAP_CONTACTS])
            )
        elif isinstance(message, kad.Req):
            target = message.target
            ranked = sorted(self.everyone, key=lambda c: c.node_id ^ target)
            reply = kad.Res(target, tuple(ranked[: message.kind]))
        elif isinstance(message, kad.SearchSourceReq):
            reply = kad.SearchRes(self.node_id, message.target, _sources(message.target))
        if reply is not None and self.transport is not None:
            self.transport.sendto(kad.encode(reply), addr)


def _same(protocol: _FakeNode) -> _FakeNode:
    return protocol


async def _serve_fake(nodes: int, prefix: str) -> None:
    """Serve `nodes` nodes on PREFIX.1.. (child process): their endpoints on stdout, then
    answer until stdin closes."""
    loop = asyncio.get_running_loop()
    rng = random.Random(93)
    protocols = [_FakeNode(rng.getrandbits(128), []) for _ in range(nodes)]
    everyone: list[kad.Contact] = []
    for i, protocol in enumerate(protocols):
        ip = f"{prefix}.{1 + i}"
        transport, _ = await loop.create_datagram_endpoint(
            functools.partial(_same, protocol), local_addr=(ip, 0)
        )
        port = transport.get_extra_info("sockname")[1]
        everyone.append(kad.Contact(protocol.node_id, ip, port, 4662, 8))
    for protocol in protocols:
        protocol.everyone = everyone
    print(json.dumps([[c.ip, c.udp_port] for c in everyone]), flush=True)
    await loop.run_in_executor(None, sys.stdin.read)


class FakeNetwork:
    """The made-up network in a child process (this very script with --serve-fake)."""

    def __init__(self, nodes: int, prefix: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-fake", str(nodes), "--ip-prefix", prefix],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.close()
            raise SystemExit("the made-up Kad network did not start")
        self.bootstrap = [(str(ip), int(port)) for ip, port in json.loads(line)]

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


# ------------------------------------------------------------------ measuring searches


@dataclasses.dataclass
class Row:
    label: str
    searches: int
    wall: float
    cpu: float  # this process
    datagrams: int  # sent by us
    with_sources: int
    other_cpu: float | None = None  # the nodes' (made-up network or aMule)

    def line(self) -> str:
        other = "" if self.other_cpu is None else f"{self.other_cpu / self.searches * 1e3:.1f}"
        return (
            f"| {self.label} | {self.searches} | {self.searches / self.wall:.2f} | "
            f"{self.wall / self.searches:.2f} | {self.cpu / self.searches * 1e3:.2f} | "
            f"{other} | {self.datagrams / self.searches:.1f} | "
            f"{self.with_sources}/{self.searches} |"
        )


HEADER = [
    "| searches | n | searches/s | s/search | our CPU ms/search | nodes' CPU ms/search "
    "| datagrams sent/search | with sources |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
]


def _sent(result: KadSearchResult, bootstraps: int) -> int:
    return bootstraps + result.queries + result.source_requests


async def _run_searches(
    clients: list[KadClient], files: list[bytes], bootstrap: list[tuple[str, int]]
) -> tuple[list[KadSearchResult], int]:
    """Each client searches its share of `files`, one after another; results and bootstraps."""
    results: list[KadSearchResult] = []
    bootstraps = 0

    async def one(client: KadClient, mine: list[bytes]) -> None:
        nonlocal bootstraps
        for file_hash in mine:
            if not client.known:
                bootstraps += len(bootstrap)
            results.append(await client.find_sources(file_hash, 1_000_000, bootstrap))

    shares = [files[i :: len(clients)] for i in range(len(clients))]
    await asyncio.gather(*(one(c, s) for c, s in zip(clients, shares, strict=True)))
    return results, bootstraps


def _loopback_row(
    label: str, network: FakeNetwork, config: KadSearchConfig, searches: int, clients: int
) -> Row:
    files = [random.Random(i).randbytes(16) for i in range(searches)]

    async def body() -> tuple[list[KadSearchResult], int, float, float]:
        # One address per client: a node's limits, and aMule's, are per address.
        made = [
            KadClient(f"{CLIENT_PREFIX}.{1 + i}", config=config, limiter=RateLimiter({}))
            for i in range(clients)
        ]
        for client in made:
            await client.start()
        try:
            # The first search of each client bootstraps it: not timed.
            await _run_searches(made, files[:clients], network.bootstrap)
            cpu, wall = time.process_time(), time.perf_counter()
            results, bootstraps = await _run_searches(made, files, network.bootstrap)
            return (
                results,
                bootstraps,
                time.perf_counter() - wall,
                time.process_time() - cpu,
            )
        finally:
            for client in made:
                client.close()

    nodes_cpu = network.cpu_seconds()
    results, bootstraps, wall, cpu = asyncio.run(body())
    return Row(
        label,
        len(results),
        wall,
        cpu,
        sum(_sent(r, 0) for r in results) + bootstraps,
        sum(1 for r in results if len(r.sources) >= SOURCES_PER_FILE),
        network.cpu_seconds() - nodes_cpu,
    )


def bench_loopback(searches: int, clients: int, nodes: int, prefix: str) -> list[str]:
    network = FakeNetwork(nodes, prefix)
    try:
        base = dataclasses.replace(SHIPPED, allow_loopback=True)
        fast = dataclasses.replace(base, send_interval=0.0, results_window=0.2)
        rows = [
            _loopback_row(
                "shipped pacing (50 datagrams/s) and 4 s results window, 1 client",
                network, base, max(2, searches // 4), 1,
            ),
            _loopback_row("no pacing, 0.2 s results window, 1 client", network, fast, searches, 1),
            _loopback_row(
                f"no pacing, 0.2 s results window, {clients} clients at once",
                network, fast, searches, clients,
            ),
        ]  # fmt: skip
    finally:
        network.close()
    return [
        f"Loopback: a made-up Kad network of {nodes} instant nodes on 127.x in a child process "
        f"(every node knows every other; {SOURCES_PER_FILE} sources per file); our rate "
        "limiter off, as these nodes have no flood limits. Each client on its own address, "
        "bootstrapped before the timing.",
        "",
        *HEADER,
        *(row.line() for row in rows),
    ]


# ------------------------------------------------------------------ the codec alone


def _client_side(
    lookups: int, source_nodes: int
) -> tuple[list[kad.KadMessage], list[bytes], bytes]:
    """What a bootstrapped client does in one search: the requests it encodes and the
    answers it decodes (`lookups` REQ/RES, `source_nodes` SEARCH_SOURCE_REQ/RES),
    and a bootstrap answer, decoded once per client."""
    rng = random.Random(4)
    contacts = tuple(
        kad.Contact(rng.getrandbits(128), f"100.64.{i}.{1 + i}", 4672, 4662, 8)
        for i in range(BOOTSTRAP_CONTACTS)
    )
    target = rng.getrandbits(128)
    requests: list[kad.KadMessage] = []
    answers: list[bytes] = []
    for i in range(lookups):
        requests.append(kad.Req(kad.FIND_VALUE, target, contacts[i].node_id))
        answers.append(kad.encode(kad.Res(target, contacts[i + 1 : i + 1 + kad.FIND_VALUE])))
    for i in range(source_nodes):
        requests.append(kad.SearchSourceReq(target, 0, 1_000_000))
        answers.append(kad.encode(kad.SearchRes(contacts[i].node_id, target, _sources(target))))
    bootstrap = kad.encode(kad.BootstrapRes(rng.getrandbits(128), 4662, 8, contacts))
    return requests, answers, bootstrap


def _best(fn: Callable[[], object]) -> float:
    runs, seconds = timeit.Timer(fn).autorange()
    return min([seconds / runs, *(timeit.timeit(fn, number=runs) / runs for _ in range(2))])


def bench_codec(lookups: int = 6, source_nodes: int = SHIPPED.source_nodes) -> list[str]:
    requests, answers, bootstrap = _client_side(lookups, source_nodes)
    assert all(kad.decode(a) is not None for a in [*answers, bootstrap])

    def encode_requests() -> None:
        for message in requests:
            kad.encode(message)

    def decode_answers() -> None:
        for answer in answers:
            kad.decode(answer)

    encode = _best(encode_requests)
    decode = _best(decode_answers)
    once = _best(lambda: kad.decode(bootstrap))
    return [
        f"Codec alone, the client's side of one search as in the loopback rows: "
        f"{len(requests)} requests encoded ({lookups} lookups, {source_nodes} source "
        f"searches) in {encode * 1e6:,.0f} µs, their {len(answers)} answers "
        f"({sum(map(len, answers)):,} bytes; {kad.FIND_VALUE} contacts a lookup answer, "
        f"{SOURCES_PER_FILE} sources a source answer) decoded in {decode * 1e6:,.0f} µs: "
        f"{(encode + decode) * 1e3:.2f} ms of CPU a search at the least "
        f"({1 / (encode + decode):,.0f} searches/s on one core if nothing else cost "
        f"anything). A bootstrap answer of {BOOTSTRAP_CONTACTS} contacts, read once per "
        f"client, decodes in {once * 1e6:,.0f} µs.",
    ]


# ------------------------------------------------------------------ the aMule Kad lab


def _proc_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def bench_lab(searches: int) -> list[str]:
    if os.geteuid() != 0 or shutil.which("amuled") is None or shutil.which("ip") is None:
        return ["Lab: skipped (needs root, iproute2 and amule-daemon for network namespaces)."]
    from atalaya.lab.amule_kad import AmuleKadLab  # noqa: PLC0415 - root-only part

    folder = Path(tempfile.mkdtemp(prefix="bench-kad-"))
    begin = time.monotonic()
    try:
        with AmuleKadLab(folder / "lab") as lab:
            assert lab.files is not None
            ready = time.monotonic() - begin
            pids = [n.pid for n in lab.nodes.values() if n.pid is not None]
            watched, size = lab.files.watched_hash, lab.files.watched.stat().st_size
            lines = asyncio.run(
                _lab_searches(lab.observer_ip, lab.bootstrap, watched, size, pids, searches)
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return [
        f"Lab: five aMule 2.3.3 Kad nodes in network namespaces, ready in {ready:.0f} s; "
        f"{lines[0]}",
        "",
        *HEADER,
        *lines[1:],
        "",
        LAB_NOTE,
    ]


async def _lab_searches(
    bind: str,
    bootstrap: list[tuple[str, int]],
    watched: bytes,
    size: int,
    pids: list[int],
    searches: int,
) -> list[str]:
    # A longer time limit than the shipped 30 s: back to back, a search waits
    # for a node's source-search token (one per 30 s) rather than skip it.
    config = dataclasses.replace(SHIPPED, total_timeout=60.0)
    async with KadClient(bind, config=config) as client:
        waited = time.monotonic()
        while True:
            found = await client.find_sources(watched, size, bootstrap)
            if len(found.reachable) >= 2:
                break
            if time.monotonic() - waited > SOURCES_TIMEOUT:
                raise SystemExit(f"the lab's sources did not appear in Kad ({found})")
            await asyncio.sleep(SEARCH_EVERY)
        published = time.monotonic() - waited
        await asyncio.sleep(SEARCH_EVERY)  # every node's limits full again
        rows = []
        for label, count in (
            ("one search, limits at rest", 1),
            (f"{searches} back to back, shipped rate limiter", searches),
        ):
            cpu, amule, wall = time.process_time(), _proc_cpu(pids), time.perf_counter()
            results = [await client.find_sources(watched, size, bootstrap) for _ in range(count)]
            wall = time.perf_counter() - wall
            rows.append(
                Row(
                    label,
                    count,
                    wall,
                    time.process_time() - cpu,
                    sum(_sent(r, 0) for r in results),
                    sum(1 for r in results if len(r.reachable) >= 2),
                    _proc_cpu(pids) - amule,
                ).line()
            )
    return [
        f"the watched file's two sources (seed and partial node) found {published:.0f} s later. "
        "Nodes' CPU is the five aMule daemons'.",
        *rows,
    ]


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default=",".join(PARTS), help="codec,loopback,lab")
    parser.add_argument("--searches", type=int, default=40, help="timed searches per row")
    parser.add_argument("--clients", type=int, default=8, help="clients at once (loopback)")
    parser.add_argument("--nodes", type=int, default=64, help="made-up nodes (loopback)")
    parser.add_argument("--lab-searches", type=int, default=4, help="back-to-back (lab)")
    parser.add_argument("--ip-prefix", default=DEFAULT_PREFIX, help="made-up nodes' 127.x.y")
    parser.add_argument("--serve-fake", type=int, default=0, help=argparse.SUPPRESS)
    add_docs_options(parser)
    args = parser.parse_args(argv)
    if args.serve_fake:
        asyncio.run(_serve_fake(args.serve_fake, args.ip_prefix))
        return
    chosen = pick(parser, args.parts, PARTS, "part")
    start, end = markers("bench_kad")
    lines: list[str] = [start, "## Kad source searches (bench/bench_kad.py)", ""]
    if "lab" in chosen:
        lines += [*bench_lab(args.lab_searches), ""]
    if "loopback" in chosen:
        lines += [*bench_loopback(args.searches, args.clients, args.nodes, args.ip_prefix), ""]
    if "codec" in chosen:
        lines += [*bench_codec(), ""]
    lines += [*footer({"aMule": "2.3.3"}), end]
    publish("\n".join(lines) + "\n", args)


if __name__ == "__main__":
    main()
