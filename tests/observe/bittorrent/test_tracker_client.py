"""Tracker clients against the real opentracker and a real libtorrent seeder (marked lab),
and against hostile trackers on loopback (plain sockets, unmarked).
"""

from __future__ import annotations

import asyncio
import gzip
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from atalaya.lab.files import write_random_file
from atalaya.lab.libtorrent_peer import LibtorrentPeer
from atalaya.lab.opentracker import OpenTracker
from atalaya.lab.ports import free_port
from atalaya.lab.torrents import InfoHashes, infohashes, make_torrent
from atalaya.networks.bittorrent.tracker import (
    AnnounceRequest,
    AnnounceResponse,
    Peer,
    TrackerError,
    TrackerRefusedError,
)
from atalaya.networks.bittorrent.tracker_udp import (
    AnnounceReply,
    ConnectReply,
    ConnectRequest,
    decode_request,
    encode_reply,
)
from atalaya.observe.bittorrent.tracker_client import (
    ScrapeResult,
    TrackerUnavailableError,
    UdpTracker,
    announce,
    scrape,
)

TRACKER_IP = "127.0.41.1"
SEEDER_IP = "127.0.41.2"
OBSERVER_IP = "127.0.41.3"
HOSTILE_IP = "127.0.41.4"
OBSERVER_ID = b"-AT0001-observer0001"
SIZE = 300_000


@dataclass
class Swarm:
    tracker: OpenTracker
    seeder: LibtorrentPeer
    hashes: InfoHashes


@pytest.fixture
def swarm(tmp_path: Path) -> Iterator[Swarm]:
    """opentracker serving one hybrid torrent that a libtorrent session seeds."""
    content = write_random_file(tmp_path / "seed" / "lab.bin", SIZE, seed=41)
    port = free_port(TRACKER_IP)
    urls = [f"http://{TRACKER_IP}:{port}/announce", f"udp://{TRACKER_IP}:{port}/announce"]
    torrent = make_torrent(content, version="hybrid", piece_size=65536, trackers=urls)
    hashes = infohashes(torrent)
    tracker = OpenTracker(TRACKER_IP, tmp_path / "tracker", hashes.tracker_hashes, port=port)
    with tracker, LibtorrentPeer(SEEDER_IP, tmp_path / "seeder", dht=False) as seeder:
        seeder.seed(torrent, tmp_path / "seed")
        assert seeder.wait_until("seeding", 20)
        assert seeder.wait_until("tracker_announced", 20)
        yield Swarm(tracker, seeder, hashes)


def _scrape_until(
    url: str, hashes: list[bytes], done: Callable[[ScrapeResult], bool]
) -> ScrapeResult:
    """Scrape until `done` holds: libtorrent announces each info-hash on its own schedule."""
    for _ in range(40):
        result = asyncio.run(scrape(url, hashes, bind_ip=OBSERVER_IP, timeout=5))
        if done(result):
            return result
        time.sleep(0.25)
    return result


# -- the real opentracker -------------------------------------------------------


@pytest.mark.lab
def test_http_and_udp_announces_return_the_seeder(swarm: Swarm) -> None:
    v1, v2 = swarm.hashes.v1, swarm.hashes.v2
    assert v1 is not None and v2 is not None
    _scrape_until(
        swarm.tracker.announce_url,
        [v1, v2[:20]],
        lambda r: len(r.files) == 2 and all(s.complete for s in r.files.values()),
    )
    seeder = (swarm.seeder.ip, swarm.seeder.port)
    # v1 over HTTP, the v2 info-hash (announced truncated, BEP 52) over UDP.
    for url, infohash, port in [
        (swarm.tracker.announce_url, v1, 7001),
        (swarm.tracker.udp_url, v2, 7002),
    ]:
        before = datetime.now(UTC)
        result = asyncio.run(
            announce(
                url,
                infohash,
                peer_id=OBSERVER_ID,
                port=port,
                left=SIZE,
                bind_ip=OBSERVER_IP,
                timeout=10,
            )
        )
        after = datetime.now(UTC)
        assert seeder in {(p.ip, p.port) for p in result.peers}
        assert result.tracker_url == url
        assert result.infohash == infohash[:20]
        assert result.received_at.tzinfo is UTC
        assert before <= result.received_at <= after
        assert result.local_ip == OBSERVER_IP
        assert result.local_port is not None
        assert result.response.complete == 1
        assert result.response.interval > 0


@pytest.mark.lab
def test_scrape_counts_the_seeder_and_the_observer_only_as_a_leecher(swarm: Swarm) -> None:
    v1 = swarm.hashes.v1
    assert v1 is not None
    urls = [swarm.tracker.announce_url, swarm.tracker.udp_url]
    for url in urls:
        result = _scrape_until(url, [v1], lambda r: v1 in r.files and r.files[v1].complete > 0)
        assert result.files[v1].complete == 1
        assert result.files[v1].incomplete == 0
    # The observer joins (left > 0, never a seeder), then leaves with "stopped".
    for url, event, leechers in [(urls[0], "started", 1), (urls[1], "stopped", 0)]:
        asyncio.run(
            announce(
                url,
                v1,
                peer_id=OBSERVER_ID,
                port=7003,
                left=SIZE,
                bind_ip=OBSERVER_IP,
                timeout=10,
                event=event,  # type: ignore[arg-type]
            )
        )
        for scrape_url in urls:
            stats = asyncio.run(scrape(scrape_url, [v1], bind_ip=OBSERVER_IP, timeout=5)).files[v1]
            assert (stats.complete, stats.incomplete) == (1, leechers)


@pytest.mark.lab
def test_off_the_whitelist_the_tracker_refuses(swarm: Swarm) -> None:
    unknown = bytes(range(100, 120))
    with pytest.raises(TrackerRefusedError) as http:
        asyncio.run(
            announce(
                swarm.tracker.announce_url,
                unknown,
                peer_id=OBSERVER_ID,
                port=7004,
                left=1,
                bind_ip=OBSERVER_IP,
                timeout=10,
            )
        )
    assert http.value.reason == "Requested download is not authorized for use with this tracker."
    with pytest.raises(TrackerRefusedError, match="does not serve"):
        asyncio.run(
            announce(
                swarm.tracker.udp_url,
                unknown,
                peer_id=OBSERVER_ID,
                port=7004,
                left=1,
                bind_ip=OBSERVER_IP,
                timeout=10,
            )
        )


@pytest.mark.lab
def test_one_udp_tracker_serves_several_requests(swarm: Swarm) -> None:
    v1, v2 = swarm.hashes.v1, swarm.hashes.v2
    assert v1 is not None and v2 is not None

    async def session() -> tuple[list[set[tuple[str, int]]], ScrapeResult]:
        async with UdpTracker(swarm.tracker.udp_url, bind_ip=OBSERVER_IP) as tracker:
            requests = [
                AnnounceRequest(
                    infohash=h[:20], peer_id=OBSERVER_ID, port=7005, left=SIZE, numwant=200
                )
                for h in (v1, v2)
            ]
            results = await asyncio.gather(*(tracker.announce(r, timeout=10) for r in requests))
            counts = await tracker.scrape([v1, v2[:20]], timeout=10)
            return [{(p.ip, p.port) for p in r.peers} for r in results], counts

    peers, counts = asyncio.run(session())
    assert all((swarm.seeder.ip, swarm.seeder.port) in found for found in peers)
    assert set(counts.files) == {v1, v2[:20]}


# -- hostile and absent trackers ------------------------------------------------


def _announce_to(url: str, timeout: float = 5) -> object:
    return asyncio.run(
        announce(
            url,
            bytes(20),
            peer_id=OBSERVER_ID,
            port=7006,
            left=1,
            bind_ip=OBSERVER_IP,
            timeout=timeout,
        )
    )


def test_nobody_listening() -> None:
    port = free_port(HOSTILE_IP)
    with pytest.raises(TrackerUnavailableError):
        _announce_to(f"http://{HOSTILE_IP}:{port}/announce")
    with pytest.raises(TrackerUnavailableError):
        _announce_to(f"udp://{HOSTILE_IP}:{port}/announce")


def test_observer_never_announces_as_a_seeder() -> None:
    with pytest.raises(ValueError, match="left > 0"):
        asyncio.run(
            announce(
                f"http://{HOSTILE_IP}:1/announce", bytes(20), peer_id=OBSERVER_ID, port=1, left=0
            )
        )


GOOD = b"d8:intervali60e5:peers6:\x7f\x00\x00\x09\x1a\xe1e"
GZIPPED = gzip.compress(GOOD, mtime=0)

# Each hostile HTTP answer and the error the client must give for it.
HOSTILE_HTTP: list[tuple[str, bytes, type[TrackerError]]] = [
    (
        "oversized length",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n" + b"x" * 1000,
        TrackerUnavailableError,
    ),
    (
        "endless chunks",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"4000\r\n" + b"d" * 0x4000 + b"\r\n" for _ in range(40)),
        TrackerUnavailableError,
    ),
    (
        "no length, closed after 400 KiB",
        b"HTTP/1.1 200 OK\r\n\r\n" + b"l" * (400 << 10),
        TrackerUnavailableError,
    ),
    (
        "redirect elsewhere",
        b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n",
        TrackerUnavailableError,
    ),
    (
        "server error",
        b"HTTP/1.1 500 Oops\r\nContent-Length: 5\r\n\r\noops!",
        TrackerUnavailableError,
    ),
    (
        "refusal with an error status",
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 24\r\n\r\nd14:failure reason3:no!e",
        TrackerRefusedError,
    ),
    (
        "html",
        b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n<html></html>",
        TrackerError,
    ),
    (
        "gzip unasked",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
        % (len(GZIPPED), GZIPPED),
        TrackerError,
    ),
    ("not HTTP at all", b"\x00\xff garbage\r\n\r\n", TrackerUnavailableError),
]


async def _serve_once(answer: bytes, received: list[bytes]) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            received.append(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5))
            writer.write(answer)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, HOSTILE_IP, 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize(
    ("answer", "error"), [h[1:] for h in HOSTILE_HTTP], ids=[h[0] for h in HOSTILE_HTTP]
)
def test_hostile_http_tracker(answer: bytes, error: type[TrackerError]) -> None:
    async def main() -> None:
        received: list[bytes] = []
        server, port = await _serve_once(answer, received)
        async with server:
            with pytest.raises(error) as caught:
                await announce(
                    f"http://{HOSTILE_IP}:{port}/announce",
                    bytes(20),
                    peer_id=OBSERVER_ID,
                    port=7007,
                    left=1,
                    bind_ip=OBSERVER_IP,
                    timeout=5,
                )
            if error is TrackerError:
                assert not isinstance(caught.value, TrackerUnavailableError | TrackerRefusedError)

    asyncio.run(main())


def test_http_request_as_the_tracker_sees_it() -> None:
    async def main() -> tuple[list[bytes], object]:
        received: list[bytes] = []
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(GOOD) + GOOD
        server, port = await _serve_once(answer, received)
        async with server:
            result = await announce(
                f"http://{HOSTILE_IP}:{port}/announce?passkey=k",
                bytes.fromhex("123456789abcdef123456789abcdef123456789a"),
                peer_id=OBSERVER_ID,
                port=7008,
                left=5,
                bind_ip=OBSERVER_IP,
                timeout=5,
                key=0xABCDEF01,
            )
        return received, result

    received, result = asyncio.run(main())
    request_line, _, headers = received[0].partition(b"\r\n")
    assert request_line == (
        b"GET /announce?passkey=k&info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A"
        b"&peer_id=-AT0001-observer0001&port=7008&uploaded=0&downloaded=0&left=5&compact=1"
        b"&event=started&numwant=200&key=ABCDEF01 HTTP/1.1"
    )
    assert b"accept-encoding: identity" in headers.lower()
    assert result.peers == (Peer("127.0.0.9", 6881),)  # type: ignore[attr-defined]


def test_stalling_http_tracker_times_out() -> None:
    async def main() -> None:
        async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nd8:inter")
            await asyncio.sleep(3)
            writer.close()

        server = await asyncio.start_server(stall, HOSTILE_IP, 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            with pytest.raises(TrackerUnavailableError, match="within"):
                await announce(
                    f"http://{HOSTILE_IP}:{port}/announce",
                    bytes(20),
                    peer_id=OBSERVER_ID,
                    port=7009,
                    left=1,
                    bind_ip=OBSERVER_IP,
                    timeout=0.5,
                )

    asyncio.run(main())


class HostileUdpTracker(asyncio.DatagramProtocol):
    """Floods every packet with junk and a forged answer, then answers it properly."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        packet = decode_request(data)
        tid = packet.transaction_id
        junk = [b"", b"\x00" * 3, bytes(70_000 // 70), struct.pack(">II", 1, tid ^ 1) + bytes(12)]
        for datagram in junk * 50:
            self.transport.sendto(datagram, addr)
        if not self.answer:
            return
        if isinstance(packet, ConnectRequest):
            self.transport.sendto(encode_reply(ConnectReply(tid, 99)), addr)
        else:
            response = AnnounceResponse(interval=60, peers=(Peer("127.0.0.9", 6881),))
            self.transport.sendto(encode_reply(AnnounceReply(tid, response)), addr)


@pytest.mark.parametrize("answers", [True, False])
def test_hostile_udp_tracker(answers: bool) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: HostileUdpTracker(answers), local_addr=(HOSTILE_IP, 0)
        )
        port = transport.get_extra_info("sockname")[1]
        try:
            call = announce(
                f"udp://{HOSTILE_IP}:{port}/announce",
                bytes(20),
                peer_id=OBSERVER_ID,
                port=7010,
                left=1,
                bind_ip=OBSERVER_IP,
                timeout=5,
                udp_base_timeout=0.2,
                udp_max_tries=2,
            )
            if answers:
                result = await call
                assert result.peers == (Peer("127.0.0.9", 6881),)
            else:
                with pytest.raises(TrackerUnavailableError, match="after 2 tries"):
                    await call
        finally:
            transport.close()

    asyncio.run(main())
