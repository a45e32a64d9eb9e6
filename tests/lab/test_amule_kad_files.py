"""The files the aMule Kad lab writes before aMule starts, in aMule's layouts (no root needed)."""

from __future__ import annotations

from pathlib import Path

from atalaya.lab.amule_kad import (
    KadContact,
    kad_id_near,
    nodes_dat,
    part_hashes,
    preferences_kad,
    write_part_file,
)
from atalaya.lab.files import random_bytes
from atalaya.networks.ed2k.hashing import PART_SIZE, ed2k_hash
from atalaya.networks.ed2k.kad import kad_id_from_hash, read_id
from atalaya.networks.ed2k.tags import read_tag_list
from atalaya.networks.ed2k.wire import Reader


def test_nodes_dat_is_version_2_with_host_order_addresses() -> None:
    contact = KadContact(0x0102030405060708090A0B0C0D0E0F10, "100.64.7.9", 4672, 4662)
    data = nodes_dat([contact])
    assert data[:12] == bytes.fromhex("00000000 02000000 01000000".replace(" ", ""))
    assert len(data) == 12 + 34  # RoutingZone::ReadFile: 25 bytes, + 9 in version 2
    reader = Reader(data[12:])
    assert read_id(reader, "id") == contact.kad_id
    assert reader.take(4, "ip") == bytes([9, 7, 64, 100])
    assert (reader.u16("udp"), reader.u16("tcp"), reader.u8("version")) == (4672, 4662, 8)
    assert reader.take(8, "udp key") == bytes(8) and reader.u8("verified") == 1


def test_preferences_kad_holds_the_chosen_id() -> None:
    data = preferences_kad(12345 << 100)
    assert len(data) == 4 + 2 + 16 + 1
    assert read_id(Reader(data[6:22]), "id") == 12345 << 100


def test_node_ids_share_the_top_byte_of_the_file_key() -> None:
    key = kad_id_from_hash(bytes.fromhex("a1" + "00" * 15))
    ids = {kad_id_near(key, i) for i in range(5)}
    assert len(ids) == 5 and all(i >> 120 == 0xA1 for i in ids)


def test_a_part_met_names_the_parts_held_as_the_only_ones_without_gaps(tmp_path: Path) -> None:
    content = random_bytes(2 * PART_SIZE + 1000, 3)
    part, met = write_part_file(tmp_path, 1, "x.bin", content, (0, 2))
    assert part.stat().st_size == len(content)
    raw = part.read_bytes()
    assert raw[:PART_SIZE] == content[:PART_SIZE] and raw[-1000:] == content[-1000:]
    assert raw[PART_SIZE : 2 * PART_SIZE] == bytes(PART_SIZE)
    reader = Reader(met.read_bytes())
    assert reader.u8("version") == 0xE0
    assert reader.u32("date") == int(part.stat().st_mtime)
    assert reader.hash16("hash") == ed2k_hash(content)
    count = reader.u16("parts")
    assert [reader.hash16("part") for _ in range(count)] == part_hashes(content)
    tags = {t.name: t.value for t in read_tag_list(reader)}
    reader.end("part.met")
    assert tags[1] == b"x.bin" and tags[2] == len(content) and tags[0x14] == 1
    assert tags[b"\x090"] == PART_SIZE and tags[b"\x0a0"] == 2 * PART_SIZE
    assert len(tags) == 5
