"""DHT and probe rates: our KRPC codec, DHT lookups and probes against libtorrent.

    python bench/bench_dht.py [--nodes N] [--lookups M] [--probes P] [--parts ...]

Three parts, each with its baselines in the same run:

- codec: KRPC decode and encode (`networks/bittorrent/krpc.py`) of typical
  datagrams, against our plain bencode and libtorrent's `bdecode`/`bencode`
  of the same bytes;
- lookups: iterative `get_peers` lookups through `DhtClient` in a lab DHT of
  libtorrent nodes, against a libtorrent session's own `dht_get_peers` for
  the same infohashes;
- probes: `probe_peer` against the lab's libtorrent seeders at several
  concurrencies, with CPU per probe, against a libtorrent session that
  fetches the same pieces from the same seeder.

The lab (libtorrent DHT nodes, some of them seeding synthetic random-byte
torrents) runs in a child process, so the CPU time this process measures is
the observer's (or the baseline session's) alone; the lab's is read from
/proc and shown beside it. Everything talks on 127.0.0.0/8 only. Results go
to stdout and to the `bench_dht` section of docs/benchmarks.md (or `--docs`).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import libtorrent as lt

from atalaya.lab.files import write_random_file
from atalaya.lab.libtorrent_peer import LibtorrentPeer
from atalaya.lab.torrents import infohashes, make_torrent
from atalaya.networks.bittorrent import bencode, krpc
from atalaya.networks.bittorrent.dht import (
    DEFAULT_OUTGOING,
    LookupFinished,
    NodeConfig,
    PeersFound,
)
from atalaya.networks.bittorrent.dht.ratelimit import RateLimit
from atalaya.networks.bittorrent.metainfo import Metainfo, parse_torrent
from atalaya.observe.bittorrent.dht_client import DhtClient
from atalaya.observe.bittorrent.probe import ProbeTimeouts, probe_peer
from benchdocs import ROOT, SHARED_MACHINE, add_docs_options, footer, markers, pick, publish

START, END = markers("bench_dht")

PARTS = ("codec", "lookups", "probes")
PIECE_SIZE = 16_384
Address = tuple[str, int]

# Lab nodes live on PREFIX.0.N; each contender gets its own third octet, so
# that no source address carries state (a block, a routing entry) from one
# contender to the next.
LAB_NET, OURS_DEFAULT_NET, OURS_RAISED_NET, LT_LOOKUP_NET, OURS_PROBE_NET, LT_FETCH_NET = range(6)
FIRST_NODE_HOST = 10

# Our engine's limits with the politeness taken off: the lab nodes accept this
# much (their dht_block_ratelimit is raised), the public DHT would not.
RAISED_OUTGOING = RateLimit(
    per_ip_rate=10_000.0, per_ip_burst=1_000, total_rate=100_000.0, total_burst=10_000
)

_TRAVERSAL_NEW = re.compile(r"\[(\d+)\] NEW target: ([0-9a-f]{40})")
_TRAVERSAL_DONE = re.compile(r"\[(\d+)\] COMPLETED")
_POLL_MS = 20


# --- codec -------------------------------------------------------------------


def codec_messages(seed: int) -> dict[str, krpc.Message]:
    """Typical KRPC datagrams with synthetic ids and 127/8 addresses."""
    rng = random.Random(seed)

    def ident() -> bytes:
        return rng.randbytes(20)

    def addr() -> Address:
        return (f"127.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}", 6881)

    def nodes(n: int) -> tuple[krpc.NodeInfo, ...]:
        return tuple(krpc.NodeInfo(ident(), *addr()) for _ in range(n))

    version = b"LT\x02\x01"
    return {
        "ping query": krpc.Ping(transaction_id=b"ab", sender_id=ident(), version=version),
        "get_peers query": krpc.GetPeers(
            transaction_id=b"ac", sender_id=ident(), infohash=ident(), version=version
        ),
        "find_node response, 8 nodes": krpc.Response(
            transaction_id=b"ad",
            sender_id=ident(),
            nodes=nodes(8),
            requester=addr(),
            version=version,
        ),
        "get_peers response, token, 8 nodes, 50 values": krpc.Response(
            transaction_id=b"ae",
            sender_id=ident(),
            nodes=nodes(8),
            values=tuple(addr() for _ in range(50)),
            token=rng.randbytes(8),
            requester=addr(),
            version=version,
        ),
        "sample_infohashes response, 20 samples, 8 nodes": krpc.Response(
            transaction_id=b"af",
            sender_id=ident(),
            nodes=nodes(8),
            samples=tuple(ident() for _ in range(20)),
            num=200,
            interval=21600,
            requester=addr(),
            version=version,
        ),
    }


def rate(fn: Callable[[], object], seconds: float, repeats: int) -> float:
    """Calls per second: the best of `repeats` runs of about `seconds` each."""
    timer = timeit.Timer(fn)
    number = 1
    # Bounded calibration: double until one run takes `seconds` (timeit's autorange).
    for _ in range(40):
        if timer.timeit(number) >= seconds:
            break
        number *= 2
    best = min(timer.repeat(repeat=repeats, number=number))
    return number / best if best > 0 else float("inf")


def run_codec(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for name, message in codec_messages(args.seed).items():
        data = krpc.encode_message(message)
        plain = bencode.decode(data, krpc.KRPC_LIMITS)
        lt_value = lt.bdecode(data)
        # Every contender must read and write exactly these bytes.
        if krpc.decode_message(data) != message:
            raise SystemExit(f"KRPC round trip failed for {name}")
        if bencode.encode(plain) != data or lt.bencode(lt_value) != data:
            raise SystemExit(f"a bencode baseline does not reproduce the bytes of {name}")
        contenders: dict[str, Callable[[], object]] = {
            "krpc_decode": functools.partial(krpc.decode_message, data),
            "bencode_decode": functools.partial(bencode.decode, data, krpc.KRPC_LIMITS),
            "libtorrent_bdecode": functools.partial(lt.bdecode, data),
            "krpc_encode": functools.partial(krpc.encode_message, message),
            "bencode_encode": functools.partial(bencode.encode, plain),
            "libtorrent_bencode": functools.partial(lt.bencode, lt_value),
        }
        result: dict[str, Any] = {"part": "codec", "message": name, "bytes": len(data)}
        for key, fn in contenders.items():
            result[f"{key}_per_s"] = rate(fn, args.codec_seconds, args.codec_repeats)
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


# --- the lab (a child process) ---------------------------------------------


def host(prefix: str, net: int, n: int) -> str:
    return f"{prefix}.{net}.{n}"


def lab_worker(args: argparse.Namespace) -> int:
    """Start the lab, print its description as one JSON line, serve until told to stop.

    Nodes PREFIX.0.10…: the first `--seeders` of them seed; torrent j lies
    with `--copies` seeders. Ends on "stop" or end of input, or after
    `--lab-lifetime` seconds whatever happens, and closes every session.
    """
    begin = time.monotonic()
    deadline = begin + args.lab_timeout
    workdir = Path(args.workdir)
    content = workdir / "content"
    peers: list[LibtorrentPeer] = []
    try:
        torrents: list[dict[str, Any]] = []
        for j in range(args.torrents):
            path = write_random_file(content / f"bench-{j:03d}.bin", args.file_size, args.seed + j)
            raw = make_torrent(path, version="v1", piece_size=PIECE_SIZE)
            torrent_file = workdir / "torrents" / f"bench-{j:03d}.torrent"
            torrent_file.parent.mkdir(parents=True, exist_ok=True)
            torrent_file.write_bytes(raw)
            v1 = infohashes(raw).v1
            assert v1 is not None
            owners = sorted({(j + c) % args.seeders for c in range(args.copies)})
            torrents.append({"raw": raw, "path": str(torrent_file), "v1": v1, "owners": owners})
        for i in range(args.nodes):
            peer = LibtorrentPeer(
                host(args.ip_prefix, LAB_NET, FIRST_NODE_HOST + i),
                workdir / "nodes" / f"node-{i}",
                dht_rate_limit=args.lab_rate_limit,
            )
            peers.append(peer)
            peer.start()
        for peer in peers:
            for other in peers:
                if other is not peer:
                    peer.add_dht_node(other.ip, other.port)
        for t in torrents:
            for owner in t["owners"]:
                peers[owner].seed(t["raw"], content)
        for peer in peers[: args.seeders]:
            if not peer.wait_until("seeding", max(0.0, deadline - time.monotonic())):
                raise SystemExit(f"lab seeder {peer.ip} did not finish checking its files")
        _wait_dht_formed(peers, begin + (deadline - begin) / 2)
        _wait_announced(peers, torrents, deadline)
        description = {
            "pid": os.getpid(),
            "startup_s": time.monotonic() - begin,
            "nodes": [[p.ip, p.port] for p in peers],
            "torrents": [
                {
                    "infohash": t["v1"].hex(),
                    "path": t["path"],
                    "seeders": [[peers[o].ip, peers[o].port] for o in t["owners"]],
                }
                for t in torrents
            ],
        }
        print(json.dumps(description), flush=True)
        _serve(peers, time.monotonic() + args.lab_lifetime)
    finally:
        for peer in peers:
            peer.close()
    return 0


def _wait_dht_formed(peers: list[LibtorrentPeer], deadline: float) -> None:
    """Until every node knows every other one; past `deadline`, one other node is enough."""
    want = len(peers) - 1
    while True:
        counts = [p.dht_nodes() for p in peers]
        if min(counts) >= want:
            return
        if time.monotonic() >= deadline:
            if min(counts) == 0:
                raise SystemExit("lab DHT did not form: a node knows no other node")
            return
        time.sleep(0.2)


def _wait_announced(
    peers: list[LibtorrentPeer], torrents: list[dict[str, Any]], deadline: float
) -> None:
    """Until another node holds every seeder's DHT announce of every torrent."""
    missing = {(t["v1"], peers[o].ip, peers[o].port) for t in torrents for o in t["owners"]}
    next_announce = 0.0
    while missing:
        now = time.monotonic()
        if now >= deadline:
            raise SystemExit(f"lab DHT: {len(missing)} announces were not stored in time")
        if now >= next_announce:
            # Re-announced now and then: an announce can die with an early lookup.
            for peer in {p.ip: p for p in peers if p.torrents()}.values():
                peer.force_dht_announce()
            next_announce = now + 5.0
        for peer in peers:
            missing -= {a for a in peer.dht_announces_received() if a[1] != peer.ip}
        time.sleep(0.2)


def _serve(peers: list[LibtorrentPeer], until: float) -> None:
    while time.monotonic() < until:
        ready, _, _ = select.select([sys.stdin], [], [], 0.5)
        if ready:
            line = sys.stdin.readline()
            if not line or line.strip() == "stop":
                return
        for peer in peers:
            peer.poll()  # keeps libtorrent's alert queues short


@dataclass(frozen=True)
class LabTorrent:
    infohash: bytes
    path: Path
    metainfo: Metainfo
    seeders: tuple[Address, ...]


class LabProcess:
    """The lab child: started by `start`, stopped by `stop` (also on failure)."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.proc: subprocess.Popen[str] | None = None
        self.nodes: list[Address] = []
        self.torrents: list[LabTorrent] = []
        self.startup_s = 0.0

    def start(self) -> None:
        a = self.args
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            "lab",
            "--workdir",
            str(self.workdir),
            "--ip-prefix",
            a.ip_prefix,
            "--nodes",
            str(a.nodes),
            "--seeders",
            str(a.seeders),
            "--torrents",
            str(a.torrents),
            "--copies",
            str(a.copies),
            "--file-size",
            str(a.file_size),
            "--seed",
            str(a.seed),
            "--lab-rate-limit",
            str(a.lab_rate_limit),
            "--lab-timeout",
            str(a.lab_timeout),
            "--lab-lifetime",
            str(a.lab_lifetime),
        ]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])
            ),
        }
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        assert self.proc.stdout is not None
        line = _read_line(self.proc.stdout, a.lab_timeout + 30)
        if not line:
            try:
                status = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                status = None
            raise SystemExit(f"the lab did not start in time (exit status {status})")
        described = json.loads(line)
        self.startup_s = float(described["startup_s"])
        self.nodes = [(str(ip), int(port)) for ip, port in described["nodes"]]
        for t in described["torrents"]:
            path = Path(t["path"])
            self.torrents.append(
                LabTorrent(
                    bytes.fromhex(t["infohash"]),
                    path,
                    parse_torrent(path.read_bytes()),
                    tuple((str(ip), int(port)) for ip, port in t["seeders"]),
                )
            )

    def cpu_seconds(self) -> float:
        """User and system CPU of the lab process so far, all its threads."""
        if self.proc is None:
            return 0.0
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        # utime and stime are fields 14 and 15; the split drops the first two.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            assert proc.stdin is not None
            proc.stdin.write("stop\n")
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _read_line(stream: IO[str], timeout: float) -> str:
    """One line from a child's stdout, or "" if none comes within `timeout` seconds."""
    ready, _, _ = select.select([stream], [], [], timeout)
    return stream.readline() if ready else ""


# --- lookups -------------------------------------------------------------------


def lookup_jobs(lab: LabProcess, count: int) -> list[bytes]:
    """`count` lookups cycling over the lab's infohashes."""
    hashes = [t.infohash for t in lab.torrents]
    return [hashes[i % len(hashes)] for i in range(count)]


def summarise_lookups(
    contender: str,
    done: list[dict[str, Any]],
    jobs: int,
    wall: float,
    cpu: float,
    lab_cpu: float,
    expected: dict[bytes, set[Address]],
    extra: dict[str, Any],
) -> dict[str, Any]:
    finished = [d for d in done if d["finished_s"] is not None]
    first = [d["first_peers_s"] for d in done if d["first_peers_s"] is not None]
    return {
        "part": "lookups",
        "contender": contender,
        "lookups": jobs,
        "finished": len(finished),
        "found_all_seeders": sum(1 for d in done if expected[d["infohash"]] <= d["peers"]),
        "found_any": len(first),
        "wall_s": wall,
        "lookups_per_s": jobs / wall if wall else None,
        "median_lookup_s": statistics.median(d["finished_s"] for d in finished)
        if finished
        else None,
        "median_first_peers_s": statistics.median(first) if first else None,
        "peers_per_lookup": statistics.mean(len(d["peers"]) for d in done) if done else 0.0,
        "queries_per_lookup": statistics.mean(d["queries"] for d in done) if done else 0.0,
        "cpu_s": cpu,
        "cpu_ms_per_lookup": 1000 * cpu / jobs,
        "lab_cpu_s": lab_cpu,
        "lab_cpu_ms_per_lookup": 1000 * lab_cpu / jobs,
        **extra,
    }


async def our_lookups(
    lab: LabProcess,
    args: argparse.Namespace,
    *,
    contender: str,
    net: int,
    config: NodeConfig,
) -> dict[str, Any]:
    """M get_peers lookups through DhtClient, `--lookup-concurrency` at a time."""
    jobs = lookup_jobs(lab, args.lookups)
    expected = {t.infohash: set(t.seeders) for t in lab.torrents}
    bind = host(args.ip_prefix, net, 1)
    pool = [host(args.ip_prefix, net, 2 + i) for i in range(args.pool - 1)]
    bootstrap = lab.nodes[:2]
    async with DhtClient(bind=bind, bootstrap=bootstrap, pool=pool, config=config) as dht:
        await dht.bootstrap(timeout=15)
        table = len(dht.engine.routing)
        sent_before = dht.engine.stats.queries_sent
        semaphore = asyncio.Semaphore(args.lookup_concurrency)
        loop = asyncio.get_running_loop()
        reasons: Counter[str] = Counter()

        async def one(infohash: bytes) -> dict[str, Any]:
            async with semaphore:
                started = loop.time()
                record: dict[str, Any] = {
                    "infohash": infohash,
                    "peers": set(),
                    "first_peers_s": None,
                    "finished_s": None,
                    "queries": 0,
                }
                async for arrival in dht.get_peers(infohash, timeout=args.lookup_timeout):
                    event = arrival.event
                    if isinstance(event, PeersFound):
                        if record["first_peers_s"] is None:
                            record["first_peers_s"] = loop.time() - started
                        record["peers"].update(event.peers)
                    elif isinstance(event, LookupFinished):
                        reasons[event.stats.reason] += 1
                        record["queries"] = event.stats.queries_sent
                        if event.stats.reason != "cancelled":
                            record["finished_s"] = loop.time() - started
                return record

        lab_cpu = lab.cpu_seconds()
        cpu = time.process_time()
        began = time.perf_counter()
        done = await asyncio.wait_for(asyncio.gather(*(one(ih) for ih in jobs)), args.phase_timeout)
        wall = time.perf_counter() - began
        cpu = time.process_time() - cpu
        lab_cpu = lab.cpu_seconds() - lab_cpu
        extra = {
            "routing_table": table,
            "sources": 1 + len(pool),
            "datagrams_sent": dht.engine.stats.queries_sent - sent_before,
            "reasons": dict(reasons),
        }
    return summarise_lookups(contender, done, len(jobs), wall, cpu, lab_cpu, expected, extra)


def libtorrent_lookups(lab: LabProcess, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """The same lookups by a libtorrent session's own DHT (`dht_get_peers`).

    libtorrent posts no alert when a lookup ends; its traversal log (a
    `dht_log_alert` per step) names the lookup's target when it starts and
    says when it completes, so the log is on while this runs, and the Python
    loop reading it counts in the CPU figure. `dht_get_peers_reply_alert`
    gives the peers and the time to the first of them.
    """
    jobs = lookup_jobs(lab, args.lookups)
    expected = {t.infohash: set(t.seeders) for t in lab.torrents}
    ip = host(args.ip_prefix, LT_LOOKUP_NET, 1)
    with LibtorrentPeer(ip, workdir / "lt-lookups", dht_rate_limit=args.lab_rate_limit) as peer:
        session = peer.session
        session.apply_settings({"dht_read_only": True})
        for node_ip, node_port in lab.nodes[:2]:
            peer.add_dht_node(node_ip, node_port)
        # Let its routing table fill as far as ours did after its bootstrap.
        deadline = time.monotonic() + 15
        table = 0
        while time.monotonic() < deadline:
            table = peer.dht_nodes()
            if table >= len(lab.nodes) - 1:
                break
            time.sleep(0.2)
        cat = lt.alert.category_t
        session.apply_settings(
            {
                "alert_mask": cat.dht_notification
                | cat.dht_operation_notification
                | cat.dht_log_notification
                | cat.error_notification,
                "alert_queue_size": 100_000,
            }
        )
        session.pop_alerts()
        pending = list(jobs)
        inflight: dict[bytes, dict[str, Any]] = {}
        traversals: dict[int, bytes] = {}
        done: list[dict[str, Any]] = []
        dropped = 0
        lab_cpu = lab.cpu_seconds()
        cpu = time.process_time()
        began = time.perf_counter()
        phase_end = time.monotonic() + args.phase_timeout
        while (pending or inflight) and time.monotonic() < phase_end:
            now = time.perf_counter()
            while pending and len(inflight) < args.lookup_concurrency:
                # One lookup per infohash at a time: the log names lookups by target.
                pick = next((k for k, ih in enumerate(pending) if ih not in inflight), None)
                if pick is None:
                    break
                infohash = pending.pop(pick)
                inflight[infohash] = {
                    "infohash": infohash,
                    "started": now,
                    "peers": set(),
                    "first_peers_s": None,
                    "finished_s": None,
                    "queries": 0,
                    "traversal": None,
                }
                session.dht_get_peers(lt.sha1_hash(infohash))
            for ih, running in list(inflight.items()):
                if now - running["started"] > args.lookup_timeout:
                    done.append(inflight.pop(ih))
            session.wait_for_alert(_POLL_MS)
            for alert in session.pop_alerts():
                if isinstance(alert, lt.dht_log_alert):
                    if str(alert.module) != "traversal":
                        continue
                    message = alert.log_message()
                    if started := _TRAVERSAL_NEW.search(message):
                        ih = bytes.fromhex(started.group(2))
                        record = inflight.get(ih)
                        if record is not None and record["traversal"] is None:
                            record["traversal"] = int(started.group(1))
                            traversals[int(started.group(1))] = ih
                    elif ended := _TRAVERSAL_DONE.search(message):
                        ih = traversals.pop(int(ended.group(1)), b"")
                        record = inflight.pop(ih, None)
                        if record is not None:
                            record["finished_s"] = time.perf_counter() - record["started"]
                            done.append(record)
                elif isinstance(alert, lt.dht_outgoing_get_peers_alert):
                    record = inflight.get(alert.info_hash.to_bytes())
                    if record is not None:
                        record["queries"] += 1
                elif isinstance(alert, lt.dht_get_peers_reply_alert):
                    record = inflight.get(alert.info_hash.to_bytes())
                    if record is not None:
                        if record["first_peers_s"] is None:
                            record["first_peers_s"] = time.perf_counter() - record["started"]
                        record["peers"].update((str(i), int(p)) for i, p in alert.peers())
                elif isinstance(alert, lt.alerts_dropped_alert):
                    dropped += 1
        wall = time.perf_counter() - began
        cpu = time.process_time() - cpu
        lab_cpu = lab.cpu_seconds() - lab_cpu
        done.extend(inflight.values())
        # Lookups the phase bound left unstarted count as not found.
        done.extend(
            {
                "infohash": ih,
                "peers": set(),
                "first_peers_s": None,
                "finished_s": None,
                "queries": 0,
            }
            for ih in pending
        )
    extra = {"routing_table": table, "sources": 1, "alerts_dropped": dropped}
    return summarise_lookups("libtorrent", done, len(jobs), wall, cpu, lab_cpu, expected, extra)


# --- probes --------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeJob:
    torrent: LabTorrent
    seeder: Address
    pieces: tuple[int, ...]  # for the libtorrent fetch; the probe draws its own


def probe_jobs(lab: LabProcess, count: int, pieces: int, seed: int) -> list[ProbeJob]:
    """`count` (torrent, seeder) pairs, cycling over torrents and then their seeders."""
    rng = random.Random(seed)
    jobs = []
    for i in range(count):
        torrent = lab.torrents[i % len(lab.torrents)]
        seeder = torrent.seeders[(i // len(lab.torrents)) % len(torrent.seeders)]
        n = torrent.metainfo.num_pieces
        jobs.append(ProbeJob(torrent, seeder, tuple(rng.sample(range(n), min(pieces, n)))))
    return jobs


def summarise_probes(
    contender: str,
    concurrency: int,
    durations: list[float],
    after_connect: list[float],
    proofs: int,
    failures: Counter[str],
    wall: float,
    cpu: float,
    lab_cpu: float,
) -> dict[str, Any]:
    count = len(durations)
    return {
        "part": "probes",
        "contender": contender,
        "concurrency": concurrency,
        "probes": count,
        "proofs": proofs,
        "failures": dict(failures),
        "wall_s": wall,
        "probes_per_s": count / wall if wall else None,
        "median_probe_s": statistics.median(durations) if durations else None,
        "median_after_connect_s": statistics.median(after_connect) if after_connect else None,
        "cpu_s": cpu,
        "cpu_ms_per_probe": 1000 * cpu / count if count else None,
        "lab_cpu_s": lab_cpu,
        "lab_cpu_ms_per_probe": 1000 * lab_cpu / count if count else None,
    }


async def our_probes(
    lab: LabProcess, args: argparse.Namespace, jobs: list[ProbeJob], concurrency: int
) -> dict[str, Any]:
    """probe_peer on every job, `concurrency` at a time, from a pool of source addresses."""
    sources = [host(args.ip_prefix, OURS_PROBE_NET, 1 + i) for i in range(args.pool)]
    timeouts = ProbeTimeouts(total=args.probe_timeout)
    semaphore = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()
    durations: list[float] = []
    after_connect: list[float] = []
    failures: Counter[str] = Counter()
    proofs = 0

    async def one(index: int, job: ProbeJob) -> None:
        nonlocal proofs
        async with semaphore:
            started = loop.time()
            result = await probe_peer(
                job.seeder[0],
                job.seeder[1],
                job.torrent.infohash,
                torrent=job.torrent.metainfo,
                bind_ip=sources[index % len(sources)],
                peer_id=b"-AY0001-" + random.Random(index).randbytes(12),
                pieces_to_verify=args.pieces,
                rng=random.Random(args.seed + index),
                timeouts=timeouts,
                client_name="atalaya-bench",
            )
            durations.append(loop.time() - started)
            if result.connected_at is not None and result.finished_at is not None:
                after_connect.append((result.finished_at - result.connected_at).total_seconds())
            if result.error is not None:
                failures[str(result.error.kind)] += 1
            elif result.proof and result.pieces_verified == len(job.pieces):
                proofs += 1
            else:
                failures["no proof"] += 1

    lab_cpu = lab.cpu_seconds()
    cpu = time.process_time()
    began = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(*(one(i, job) for i, job in enumerate(jobs))), args.phase_timeout
    )
    wall = time.perf_counter() - began
    return summarise_probes(
        "probe_peer",
        concurrency,
        durations,
        after_connect,
        proofs,
        failures,
        wall,
        time.process_time() - cpu,
        lab.cpu_seconds() - lab_cpu,
    )


def libtorrent_fetches(
    lab: LabProcess,
    args: argparse.Namespace,
    jobs: list[ProbeJob],
    concurrency: int,
    workdir: Path,
) -> dict[str, Any]:
    """A libtorrent session fetching the same pieces from the same seeder, per job.

    Each job adds the torrent (metadata given, as the probe is given it) with
    only the job's pieces wanted and the seeder as its one peer (no DHT, PEX
    or LSD), waits until those pieces have passed libtorrent's hash check,
    and removes the torrent with its files.
    """
    ip = host(args.ip_prefix, LT_FETCH_NET, 1)
    save_root = workdir / f"lt-fetch-{concurrency}"
    durations: list[float] = []
    after_connect: list[float] = []
    failures: Counter[str] = Counter()
    proofs = 0
    with LibtorrentPeer(ip, workdir / f"lt-fetcher-{concurrency}", dht=False) as peer:
        session = peer.session
        cat = lt.alert.category_t
        session.apply_settings(
            {
                "alert_mask": cat.status_notification
                | cat.error_notification
                | cat.connect_notification,
                # Its default paces new connections at 30 a second.
                "connection_speed": 1000,
            }
        )
        session.pop_alerts()
        idle = idle_cpu_per_s(session, 1.0)
        pending = list(enumerate(jobs))
        inflight: dict[bytes, tuple[Any, float, ProbeJob]] = {}
        connected: dict[bytes, float] = {}
        removing: set[bytes] = set()
        lab_cpu = lab.cpu_seconds()
        cpu = time.process_time()
        began = time.perf_counter()
        phase_end = time.monotonic() + args.phase_timeout
        while (pending or inflight) and time.monotonic() < phase_end:
            while pending and len(inflight) < concurrency:
                busy = inflight.keys() | removing
                pick = next(
                    (k for k, (_, j) in enumerate(pending) if j.torrent.infohash not in busy),
                    None,
                )
                if pick is None:
                    break
                index, job = pending.pop(pick)
                params = lt.add_torrent_params()
                params.ti = lt.torrent_info(str(job.torrent.path))
                params.save_path = str(save_root / f"job-{index}")
                wanted = [0] * job.torrent.metainfo.num_pieces
                for piece in job.pieces:
                    wanted[piece] = 4
                params.piece_priorities = wanted
                params.peers = [job.seeder]
                params.flags &= ~lt.torrent_flags.auto_managed
                params.flags &= ~lt.torrent_flags.paused
                params.flags |= (
                    lt.torrent_flags.disable_dht
                    | lt.torrent_flags.disable_lsd
                    | lt.torrent_flags.disable_pex
                )
                started = time.perf_counter()
                handle = session.add_torrent(params)
                inflight[job.torrent.infohash] = (handle, started, job)
            now = time.perf_counter()
            for ih, (handle, started, _) in list(inflight.items()):
                if now - started > args.probe_timeout:
                    del inflight[ih]
                    connected.pop(ih, None)
                    durations.append(now - started)
                    failures["timeout"] += 1
                    session.remove_torrent(handle, lt.session.delete_files)
                    removing.add(ih)
            session.wait_for_alert(_POLL_MS)
            for alert in session.pop_alerts():
                if isinstance(alert, lt.torrent_removed_alert):
                    removing.discard(alert.info_hashes.v1.to_bytes())
                elif isinstance(alert, lt.peer_connect_alert):
                    connected.setdefault(
                        alert.handle.info_hashes().v1.to_bytes(), time.perf_counter()
                    )
                elif isinstance(alert, lt.torrent_finished_alert | lt.hash_failed_alert):
                    ih = alert.handle.info_hashes().v1.to_bytes()
                    entry = inflight.pop(ih, None)
                    if entry is None:
                        continue
                    handle, started, _ = entry
                    now = time.perf_counter()
                    durations.append(now - started)
                    if ih in connected:
                        after_connect.append(now - connected.pop(ih))
                    if isinstance(alert, lt.torrent_finished_alert):
                        proofs += 1
                    else:
                        failures["hash failed"] += 1
                    session.remove_torrent(handle, lt.session.delete_files)
                    removing.add(ih)
        wall = time.perf_counter() - began
        cpu = time.process_time() - cpu
        lab_cpu = lab.cpu_seconds() - lab_cpu
        failures["not finished"] += len(pending) + len(inflight)
        failures = +failures  # drops zero counts
        # Untimed: let the last removals finish before the session closes.
        settle = time.monotonic() + 10
        while removing and time.monotonic() < settle:
            session.wait_for_alert(_POLL_MS)
            for alert in session.pop_alerts():
                if isinstance(alert, lt.torrent_removed_alert):
                    removing.discard(alert.info_hashes.v1.to_bytes())
    shutil.rmtree(save_root, ignore_errors=True)
    result = summarise_probes(
        "libtorrent", concurrency, durations, after_connect, proofs, failures, wall, cpu, lab_cpu
    )
    result["idle_cpu_ms_per_s"] = 1000 * idle
    return result


def idle_cpu_per_s(session: Any, seconds: float) -> float:
    """CPU seconds a second this process spends with the session idle and polled as in a run."""
    cpu = time.process_time()
    began = time.perf_counter()
    end = began + seconds
    while time.perf_counter() < end:
        session.wait_for_alert(_POLL_MS)
        session.pop_alerts()
    return (time.process_time() - cpu) / (time.perf_counter() - began)


# --- report --------------------------------------------------------------------


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


LOOKUP_LABELS = {
    "ours-default": "`DhtClient`, default politeness",
    "ours-raised": "`DhtClient`, limits raised for the lab",
    "libtorrent": "libtorrent session, `dht_get_peers`",
}
PROBE_LABELS = {
    "probe_peer": "`probe_peer`",
    "libtorrent": "libtorrent session fetch",
}


def render(
    args: argparse.Namespace,
    codec: list[dict[str, Any]],
    lookups: list[dict[str, Any]],
    probes: list[dict[str, Any]],
    lab_startup_s: float | None,
) -> str:
    lines = [START, "## DHT and probes (`bench/bench_dht.py`)", ""]
    if codec:
        lines += [
            "### KRPC codec",
            "",
            "Messages per second, one message at a time, best of "
            f"{args.codec_repeats} runs of at least {args.codec_seconds:g} s each.",
            "",
            "| message | bytes | KRPC decode | bencode decode | libtorrent `bdecode` "
            "| KRPC encode | bencode encode | libtorrent `bencode` |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in codec:
            lines.append(
                f"| {r['message']} | {r['bytes']} | {_n(r['krpc_decode_per_s'])} | "
                f"{_n(r['bencode_decode_per_s'])} | {_n(r['libtorrent_bdecode_per_s'])} | "
                f"{_n(r['krpc_encode_per_s'])} | {_n(r['bencode_encode_per_s'])} | "
                f"{_n(r['libtorrent_bencode_per_s'])} |"
            )
        lines += [
            "",
            "- KRPC decode is `krpc.decode_message`: bencode2 and our KRPC limits (any "
            "refusal decoded again by our own decoder; see bench_krpc), then every field "
            "checked and bounded and a typed message built "
            "(compact nodes and peers unpacked into tuples). KRPC encode is "
            "`krpc.encode_message` from that typed message, checks included.",
            "- bencode decode/encode is `networks/bittorrent/bencode.py` alone on the "
            "same bytes (same limits, so the compiled path) and on the plain dictionary "
            "they decode to.",
            "- libtorrent is `libtorrent.bdecode`/`libtorrent.bencode` of the Python "
            "binding on the same bytes and dictionary: C++ parsing plus conversion to "
            "and from Python objects, which is what a Python caller would get. Every "
            "contender was checked to reproduce the exact bytes before timing.",
            "",
        ]
    if lookups or probes:
        torrent_kib = args.file_size / 1024
        lines += [
            f"The lab: {args.nodes} libtorrent {lt.__version__} DHT nodes on "
            f"{args.ip_prefix}.0.x, each bootstrapped from all the others, with "
            f"`dht_block_ratelimit` raised to {args.lab_rate_limit} (libtorrent's default "
            f"blocks a source after 5 messages a second); {args.seeders} of them seed "
            f"{args.torrents} synthetic v1 torrents of {torrent_kib:,.0f} KiB "
            f"({PIECE_SIZE // 1024} KiB pieces), each torrent on {args.copies} seeder(s) "
            "and announced to the DHT before any timing starts. The lab runs in a child "
            "process"
            + (f" (ready in {lab_startup_s:.1f} s)" if lab_startup_s is not None else "")
            + "; the CPU columns are this process's own time (all threads), and "
            '"lab CPU" is the child\'s at the same time.',
            "",
        ]
    if lookups:
        lines += [
            "### DHT lookups",
            "",
            f"{args.lookups} `get_peers` lookups cycling over the {args.torrents} "
            f"announced infohashes, {args.lookup_concurrency} at a time, each bounded by "
            f"{args.lookup_timeout:g} s; every contender first bootstraps from two lab "
            "nodes (not timed).",
            "",
            "| contender | lookups / s | median lookup | median to first peers | "
            "peers per lookup | found every seeder | `get_peers` sent per lookup "
            "| CPU per lookup | lab CPU per lookup |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in lookups:
            label = LOOKUP_LABELS[r["contender"]]
            if r.get("sources", 1) > 1:
                label += f" ({r['sources']} source addresses)"
            lines.append(
                f"| {label} | {r['lookups_per_s']:,.1f} | {_ms(r['median_lookup_s'])} | "
                f"{_ms(r['median_first_peers_s'])} | {r['peers_per_lookup']:.2f} | "
                f"{r['found_all_seeders']}/{r['lookups']} | {r['queries_per_lookup']:.1f} | "
                f"{r['cpu_ms_per_lookup']:.2f} ms | {r['lab_cpu_ms_per_lookup']:.2f} ms |"
            )
        lines += [
            "",
            "- A lookup ends for `DhtClient` at its `LookupFinished` (the k = 8 closest "
            "nodes have answered: alpha 3, k 8); for libtorrent when its traversal log "
            "says COMPLETED (branch factor 5, k 8). libtorrent has no alert for the end "
            "of a lookup, so its DHT debug log is on for this run and its CPU includes "
            "the Python loop reading that log.",
            "- Default politeness is `NodeConfig`'s: 2 queries a second per remote IP "
            f"(burst 8) and {DEFAULT_OUTGOING.total_rate:g} in all (libtorrent's 8,000 "
            "bytes a second), the per-IP rate times the source addresses in the pool; it is "
            "what keeps an observer off the public DHT's block lists, and it, not the "
            "engine, sets that row's rate. The raised row takes the limits off "
            f"({RAISED_OUTGOING.per_ip_rate:,.0f} a second per IP): the engine and its "
            "asyncio layer at full speed.",
            "- Every contender's DHT node is read-only (BEP 43; libtorrent's "
            "`dht_read_only`), so that none leaves itself in the lab's routing tables as a "
            "dead contact for the next contender to time out on.",
            "- Default politeness spends most of each lookup waiting for the rate "
            "limit: the first queries go out in the burst (hence the early first peers), "
            "the rest are paced.",
            "- Peers per lookup counts distinct peers; every seeder of a torrent is "
            "expected, the lab has no others. `get_peers` sent counts queries per "
            "lookup (libtorrent: its `dht_outgoing_get_peers_alert`s).",
            "",
        ]
    if probes:
        idle = [r["idle_cpu_ms_per_s"] for r in probes if "idle_cpu_ms_per_s" in r]
        idle_note = (
            f"idle, that session and the loop polling it used {min(idle):.1f} to "
            f"{max(idle):.1f} ms of CPU a second (measured for a second before each level)."
            if idle
            else ""
        )
        lines += [
            "### Probes",
            "",
            f"{args.probes} probes per concurrency level ({args.baseline_probes} for the "
            "libtorrent baseline, the first of the same list), cycling over the torrents and "
            f"their seeders; each one connects, handshakes (with the extension "
            f"handshake), reads the seeder's possession message, downloads "
            f"{args.pieces} random whole piece(s) and verifies them against the piece "
            "hashes. The torrent's metadata is given, as the observer has it for a "
            "watched infohash.",
            "",
            "| contender | concurrency | probes / s | median probe | median from connect "
            "| CPU per probe | lab CPU per probe | proofs |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in probes:
            failures = ", ".join(f"{k}: {v}" for k, v in sorted(r["failures"].items()))
            lines.append(
                f"| {PROBE_LABELS[r['contender']]} | {r['concurrency']} | "
                f"{r['probes_per_s']:,.1f} | {_ms(r['median_probe_s'])} | "
                f"{_ms(r['median_after_connect_s'])} | "
                f"{r['cpu_ms_per_probe']:.2f} ms | {r['lab_cpu_ms_per_probe']:.2f} ms | "
                f"{r['proofs']}/{r['probes']}" + (f" ({failures})" if failures else "") + " |"
            )
        lines += [
            "",
            f"- `probe_peer` runs in this process's asyncio loop, from {args.pool} "
            "source addresses; CPU per probe is this process's CPU time over the run "
            "divided by the probes, so it includes the event loop, TCP, SHA-1 and all.",
            "- The libtorrent baseline is the nearest thing libtorrent does: a session "
            "in this process adds the torrent with only the same number of pieces "
            "wanted and the same seeder as its only peer (DHT, PEX, LSD off), and one "
            "fetch ends when those pieces have passed its hash check "
            "(`torrent_finished_alert`); the torrent is then removed. It writes the "
            "pieces to disk (a temporary folder) where the probe hashes them in memory, "
            "and its `connection_speed` is raised to 1000 a second. As many "
            "torrents are in the session at once as the concurrency says.",
            "- libtorrent connects a newly added torrent to its peer on its own timer, "
            "not at once (in trials, 0.5 to 1 s after the add; lowering `tick_interval` "
            "did not shorten it), so a fetch takes about a second whatever the "
            'transfer takes, and its rate grows with the concurrency. "Median from '
            "connect\" compares the work itself: from the TCP connection (the probe's "
            "`connected_at`, libtorrent's `peer_connect_alert`) to the verified pieces.",
            "- CPU per fetch includes what the idle session costs while it waits: "
            + idle_note
            + " Lab CPU is what the seeders (and the idle DHT nodes) spent meanwhile.",
            "",
        ]
    lab_remark = "the lab shares the same CPUs, and " if lookups or probes else ""
    lines += [
        *footer({"libtorrent": lt.__version__}, f"{lab_remark}the machine was {SHARED_MACHINE}"),
        END,
    ]
    return "\n".join(lines) + "\n"


# --- main ----------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add = parser.add_argument
    add("--parts", default=",".join(PARTS), help=f"comma-separated, from {', '.join(PARTS)}")
    add("--seed", type=int, default=2024)
    add("--codec-seconds", type=float, default=0.2, help="length of one timed codec run")
    add("--codec-repeats", type=int, default=5, help="timed runs per codec figure; best counts")
    add("--nodes", type=int, default=16, help="libtorrent DHT nodes in the lab")
    add("--seeders", type=int, default=4, help="how many of the nodes seed")
    add("--torrents", type=int, default=32)
    add("--copies", type=int, default=2, help="seeders per torrent")
    add("--file-size", type=int, default=256 * 1024, help="bytes per torrent")
    add("--lab-rate-limit", type=int, default=5000, help="lab nodes' dht_block_ratelimit")
    add("--ip-prefix", default="127.71", help="two octets in 127/8; PREFIX.0.x is the lab")
    add("--pool", type=int, default=4, help="source addresses for our DHT client and probes")
    add("--lookups", type=int, default=500)
    add("--lookup-concurrency", type=int, default=8)
    add("--lookup-timeout", type=float, default=20.0)
    add("--probes", type=int, default=400, help="probes per concurrency level")
    add("--baseline-probes", type=int, default=48, help="libtorrent fetches per level")
    add("--probe-concurrency", type=_int_list, default=[1, 4, 16])
    add("--pieces", type=int, default=2, help="pieces each probe downloads and verifies")
    add("--probe-timeout", type=float, default=30.0)
    add("--phase-timeout", type=float, default=180.0, help="bound on each timed run")
    add("--lab-timeout", type=float, default=120.0, help="bound on the lab's start")
    add_docs_options(parser)
    add("--workdir", help=argparse.SUPPRESS)
    add("--worker", choices=["lab"], help=argparse.SUPPRESS)
    add("--lab-lifetime", type=float, default=1800.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.part_list = pick(parser, args.parts, PARTS, "parts")
    octets = args.ip_prefix.split(".")
    if len(octets) != 2 or octets[0] != "127" or not octets[1].isdigit() or int(octets[1]) > 255:
        parser.error("--ip-prefix must be two octets in 127/8, e.g. 127.71")
    if not 2 <= args.nodes <= 200 or not 1 <= args.seeders <= args.nodes:
        parser.error("--nodes must be 2 to 200 and --seeders 1 to --nodes")
    if not 1 <= args.copies <= args.seeders or args.torrents < 1:
        parser.error("--copies must be 1 to --seeders, --torrents at least 1")
    if not PIECE_SIZE <= args.file_size <= 64 << 20:
        parser.error(f"--file-size must be {PIECE_SIZE} bytes to 64 MiB")
    counts = (args.pool, args.lookups, args.lookup_concurrency, args.pieces)
    if min(*counts, args.probes, args.baseline_probes) < 1:
        parser.error(
            "--pool, --lookups, --lookup-concurrency, --pieces, --probes and "
            "--baseline-probes must be at least 1"
        )
    if args.lookup_concurrency > 64 or not args.probe_concurrency:
        parser.error("--lookup-concurrency is at most 64; --probe-concurrency needs a level")
    if (
        args.worker is None
        and not 1 <= min(args.probe_concurrency) <= max(args.probe_concurrency) <= args.torrents
    ):
        parser.error("each --probe-concurrency level must be 1 to --torrents")
    if args.codec_seconds <= 0 or args.codec_repeats < 1:
        parser.error("--codec-seconds must be positive, --codec-repeats at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker == "lab":
        return lab_worker(args)
    codec: list[dict[str, Any]] = []
    lookups: list[dict[str, Any]] = []
    probes: list[dict[str, Any]] = []
    lab_startup: float | None = None
    if "codec" in args.part_list:
        print("timing the KRPC codec …", file=sys.stderr, flush=True)
        codec = run_codec(args)
    if "lookups" in args.part_list or "probes" in args.part_list:
        with tempfile.TemporaryDirectory(prefix="bench_dht-") as tmp:
            workdir = Path(tmp)
            lab = LabProcess(args, workdir / "lab")
            try:
                print("starting the lab …", file=sys.stderr, flush=True)
                lab.start()
                lab_startup = lab.startup_s
                if "lookups" in args.part_list:
                    lookups = run_lookups(lab, args, workdir)
                if "probes" in args.part_list:
                    probes = run_probes(lab, args, workdir)
            finally:
                lab.stop()
    publish(render(args, codec, lookups, probes, lab_startup), args)
    return 0


def run_lookups(lab: LabProcess, args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    results = []
    for contender, net, config in (
        ("ours-default", OURS_DEFAULT_NET, NodeConfig(read_only=True)),
        ("ours-raised", OURS_RAISED_NET, NodeConfig(read_only=True, outgoing=RAISED_OUTGOING)),
    ):
        print(f"lookups: {contender} …", file=sys.stderr, flush=True)
        result = asyncio.run(our_lookups(lab, args, contender=contender, net=net, config=config))
        print(json.dumps(result), flush=True)
        results.append(result)
    print("lookups: libtorrent …", file=sys.stderr, flush=True)
    result = libtorrent_lookups(lab, args, workdir)
    print(json.dumps(result), flush=True)
    results.append(result)
    return results


def run_probes(lab: LabProcess, args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    results = []
    jobs = probe_jobs(lab, args.probes, args.pieces, args.seed)
    for concurrency in args.probe_concurrency:
        print(f"probes: probe_peer x{concurrency} …", file=sys.stderr, flush=True)
        ours = asyncio.run(our_probes(lab, args, jobs, concurrency))
        print(json.dumps(ours), flush=True)
        print(f"probes: libtorrent x{concurrency} …", file=sys.stderr, flush=True)
        theirs = libtorrent_fetches(lab, args, jobs[: args.baseline_probes], concurrency, workdir)
        print(json.dumps(theirs), flush=True)
        results += [ours, theirs]
    return results


if __name__ == "__main__":
    sys.exit(main())
