"""The BitTorrent proof transcript: exact bytes, hostile peer input, and a liar's record.

The liar is the hostile test peer of atalaya.lab.hostile_peer on 127.62.0.x;
transcripts against real libtorrent peers are in tests/lab/test_transcripts.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from atalaya import __version__
from atalaya.lab.files import random_bytes
from atalaya.lab.hostile_peer import HostilePeer
from atalaya.networks.bittorrent import bencode
from atalaya.networks.bittorrent import peerwire as pw
from atalaya.networks.bittorrent.metainfo import parse_info
from atalaya.networks.bittorrent.probe import PieceCheck, ProbeError, ProbeErrorKind
from atalaya.observe.bittorrent.probe import ProbeResult, ProbeTimeouts, probe_peer
from atalaya.observe.bittorrent.transcript import (
    MAX_BITFIELD_BYTES,
    MAX_DETAIL,
    MAX_EXTENSION_BYTES,
    MAX_TEXT,
    encode_transcript,
)
from atalaya.observe.clock import ClockReading
from atalaya.observe.sightings import Sighting, SightingWriter
from atalaya.observe.transcripts import canonical_body, load_transcripts
from atalaya.store import create_store_engine, upgrade
from atalaya.store.tables import proof_transcript, sighting


def at(us: int) -> datetime:
    return datetime(2026, 12, 2, 15, 0, 0, us, tzinfo=UTC)


INFO = bencode.encode(
    {b"length": 3, b"name": b"a", b"piece length": 16384, b"pieces": hashlib.sha1(b"abc").digest()}
)
META = parse_info(INFO)
assert META.infohash_v1 is not None
IH = META.infohash_v1
PIECE_CHECK = PieceCheck(
    0, 0, 3, "sha1", hashlib.sha1(b"abc").digest(), META.piece_hash_v1(0), True, at(3), at(4)
)
CLOCK = ClockReading(0.000125, "ntp: 127.0.0.1:123, stratum 2", at(0))


def seeder_result(**changes: object) -> ProbeResult:
    values: dict[str, object] = {
        "ip": "127.0.0.2",
        "port": 6881,
        "infohash": IH,
        "connected_at": at(1),
        "handshake_at": at(2),
        "finished_at": at(9),
        "peer_id": b"-LT2110-" + b"A" * 12,
        "client": "lt\u00f1",
        "reserved": bytes.fromhex("0000000000100005"),
        "handshake_infohash": IH,
        "num_pieces": 1,
        "pieces_held": 1,
        "have_fraction": 1.0,
        "pieces_verified": 1,
        "local_ip": "127.0.0.1",
        "local_port": 50000,
        "metadata": META,
        "sent_handshake": pw.Handshake(
            IH, b"-AY0100-" + b"B" * 12, pw.make_reserved(extension=True, fast=True)
        ),
        "extension_raw": b"d1:v3:lt\xc3\xb1e",
        "have_all": True,
        "checks": (PIECE_CHECK,),
    }
    values.update(changes)
    return ProbeResult(**values)  # type: ignore[arg-type]


def test_exact_bytes_of_a_one_piece_proof() -> None:
    # The info hash is SHA-1 of INFO; a9993e36… is SHA-1("abc"), the piece.
    assert IH.hex() == hashlib.sha1(INFO).hexdigest() == "5c941662d614a9b492f518272cf4f16841292225"
    body = encode_transcript(seeder_result(), item_kind="btih", item_value=IH.hex(), clock=CLOCK)
    expected = (
        '{"availability":{"bitfield_hex":null,"have_count":1,"have_messages":0,'
        '"kind":"have_all","num_pieces":1},'
        '"clock":{"measured_at":"2026-12-02T15:00:00.000000Z","offset_s":0.000125,'
        '"source":"ntp: 127.0.0.1:123, stratum 2"},'
        '"content_kept":false,"content_note":"Bytes received from the peer were hashed in '
        'memory as they arrived and then dropped; no content was kept.",'
        '"ended_at":"2026-12-02T15:00:00.000009Z","error":null,'
        '"extension_handshake":{"client":"lt\u00f1","received_hex":"64313a76333a6c74c3b165",'
        '"received_length":11},'
        '"full_file":null,'
        '"handshake":{"received":{"info_hash":"5c941662d614a9b492f518272cf4f16841292225",'
        '"peer_id":"2d4c54323131302d414141414141414141414141","reserved":"0000000000100005"},'
        '"sent":{"info_hash":"5c941662d614a9b492f518272cf4f16841292225",'
        '"peer_id":"2d4159303130302d424242424242424242424242","reserved":"0000000000100004"}},'
        '"item":{"kind":"btih","value":"5c941662d614a9b492f518272cf4f16841292225"},'
        '"local":"127.0.0.1:50000",'
        '"metadata":{"info_hash":"5c941662d614a9b492f518272cf4f16841292225",'
        '"info_sha1":"5c941662d614a9b492f518272cf4f16841292225","info_sha256":null,'
        '"piece_length":16384},'
        '"network":"bittorrent","observer":"atalaya/' + __version__ + '",'
        '"pieces":[{"algorithm":"sha1","computed":"a9993e364706816aba3e25717850c26c9cd0d89d",'
        '"expected":"a9993e364706816aba3e25717850c26c9cd0d89d","file_index":null,'
        '"first_byte_at":"2026-12-02T15:00:00.000003Z","index":0,'
        '"last_byte_at":"2026-12-02T15:00:00.000004Z","length":3,"offset":0,"ok":true,'
        '"proof_path":[]}],'
        '"pieces_omitted":0,"remote":"127.0.0.2:6881",'
        '"started_at":"2026-12-02T15:00:00.000001Z","version":1}'
    )
    assert body == expected.encode("utf-8")
    assert "ñ".encode() in body  # UTF-8 itself, not \\u escapes


def test_v6_peer_and_no_metadata() -> None:
    result = seeder_result(
        ip="2001:db8::2", local_ip="2001:db8::1", metadata=None, checks=(), have_all=False,
        bitfield=b"\x80", pieces_held=1, haves=0,
    )  # fmt: skip
    doc = json.loads(encode_transcript(result, item_kind="btih", item_value="x", clock=None))
    assert doc["remote"] == "[2001:db8::2]:6881" and doc["local"] == "[2001:db8::1]:50000"
    assert doc["metadata"] is None and doc["pieces"] == []
    assert doc["availability"]["kind"] == "bitfield"
    assert doc["availability"]["bitfield_hex"] == "80"
    assert doc["clock"] == {"offset_s": None, "source": "none: not measured", "measured_at": None}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    client=st.text(max_size=400),
    raw=st.binary(max_size=MAX_EXTENSION_BYTES + 100),
    bits=st.binary(max_size=MAX_BITFIELD_BYTES + 10),
    detail=st.text(max_size=MAX_DETAIL + 50),
    peer_id=st.binary(min_size=20, max_size=20),
)
def test_whatever_the_peer_sends_the_transcript_is_bounded_and_canonical(
    client: str, raw: bytes, bits: bytes, detail: str, peer_id: bytes
) -> None:
    result = seeder_result(
        client=client,
        extension_raw=raw,
        bitfield=bits,
        have_all=False,
        peer_id=peer_id,
        error=ProbeError(ProbeErrorKind.PROTOCOL, "download", detail),
    )
    body = encode_transcript(result, item_kind="btih", item_value=IH.hex(), clock=CLOCK)
    doc = json.loads(body.decode("utf-8"))
    assert canonical_body(doc) == body
    ext = doc["extension_handshake"]
    assert ext["received_length"] == len(raw)
    assert bytes.fromhex(ext["received_hex"]) == raw[:MAX_EXTENSION_BYTES]
    assert len(ext["client"]) <= MAX_TEXT
    assert bytes.fromhex(doc["availability"]["bitfield_hex"]) == bits[:MAX_BITFIELD_BYTES]
    assert len(doc["error"]["detail"]) <= MAX_DETAIL
    assert doc["handshake"]["received"]["peer_id"] == peer_id.hex()


def synthetic_v1(content: bytes, piece_length: int = 16384) -> bytes:
    pieces = b"".join(
        hashlib.sha1(content[i : i + piece_length]).digest()
        for i in range(0, len(content), piece_length)
    )
    return bencode.encode(
        {b"name": b"s", b"length": len(content), b"piece length": piece_length, b"pieces": pieces}
    )


def test_a_liars_failed_pieces_are_recorded_with_the_expected_hashes(tmp_path: Path) -> None:
    info = synthetic_v1(random_bytes(100_000, 5))
    meta = parse_info(info)
    ih = meta.infohash_v1
    assert ih is not None
    timeouts = ProbeTimeouts(connect=3, handshake=3, settle=3, unchoke=5, block=5, total=20)

    async def run() -> ProbeResult:
        async with HostilePeer("127.62.0.1", "liar", infohash=ih) as liar:
            return await probe_peer(
                liar.ip, liar.port, ih, torrent=meta, bind_ip="127.62.0.10",
                peer_id=b"-AY0100-" + b"0" * 12, pieces_to_verify=3, rng=random.Random(3),
                timeouts=timeouts,
            )  # fmt: skip

    result = asyncio.run(run())
    assert result.pieces_failed == 3 and not result.proof
    body = encode_transcript(result, item_kind="btih", item_value=ih.hex(), clock=CLOCK)
    engine = create_store_engine(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(engine)
    SightingWriter(engine).write(
        [
            Sighting(
                network="bittorrent", item_kind="btih", item_value=ih.hex(),
                ip=result.ip, port=result.port, seen_at=at(1), found_by="tracker", run_id="r",
                pieces_failed=result.pieces_failed, transcript=body,
            )
        ]
    )  # fmt: skip
    with engine.connect() as conn:
        (sighting_id, proof_kind) = conn.execute(select(sighting.c.id, sighting.c.proof_kind)).one()
        (digest,) = conn.execute(select(proof_transcript.c.sha256)).one()
        stored = load_transcripts(conn, [sighting_id])[sighting_id]
    engine.dispose()
    assert proof_kind is None
    assert stored == body and digest == hashlib.sha256(stored).hexdigest()
    doc = json.loads(stored)
    decoded = bencode.decode(info)
    assert isinstance(decoded, dict)
    raw_pieces = decoded[b"pieces"]
    assert isinstance(raw_pieces, bytes)
    assert len(doc["pieces"]) == 3
    for check in doc["pieces"]:
        index = check["index"]
        assert check["algorithm"] == "sha1" and check["ok"] is False
        assert check["expected"] == raw_pieces[index * 20 : index * 20 + 20].hex()
        assert check["computed"] != check["expected"]
        assert check["offset"] == index * 16384 and check["file_index"] is None
        assert check["first_byte_at"] <= check["last_byte_at"]
    assert doc["handshake"]["received"]["peer_id"] == b"-HP0001-hostilepeer!".hex()
    assert doc["extension_handshake"]["client"] == "Hostile liar 1.0"
    assert doc["remote"] == f"{result.ip}:{result.port}"
    assert doc["local"].startswith("127.62.0.10:")
    assert doc["content_kept"] is False
