"""The DHT state kept between runs: round trip, and liberal reading of a bad file."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.observe.bittorrent.dht_state import (
    MAX_SAVED_NODES,
    DhtState,
    load_state,
    save_state,
)


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dht.json"
    state = DhtState(
        node_ids={4: b"\x01" * 20, 6: b"\x02" * 20},
        nodes={4: [("192.0.2.1", 6881), ("198.51.100.2", 1)], 6: [("2001:db8::1", 6881)]},
        external_ip="203.0.113.9",
    )
    save_state(path, state)
    back = load_state(path)
    assert back.node_ids == state.node_ids
    assert back.nodes == state.nodes
    assert back.external_ip == "203.0.113.9"
    assert back.saved_at is not None
    assert not list(path.parent.glob("*.partial"))


def test_missing_file_is_an_empty_state(tmp_path: Path) -> None:
    assert load_state(tmp_path / "none.json") == DhtState()


def test_bad_entries_are_dropped_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "dht.json"
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "external_ip": "not an ip",
                "ipv4": {
                    "node_id": "zz",
                    "nodes": [["192.0.2.1", 6881], ["2001:db8::1", 1], ["x", 1], [1, 2], "s"],
                },
                "ipv6": {"node_id": "02" * 20, "nodes": [["2001:db8::1", 0]]},
            }
        )
    )
    state = load_state(path)
    assert state.nodes == {4: [("192.0.2.1", 6881)], 6: []}
    assert state.node_ids == {6: b"\x02" * 20}
    assert state.external_ip is None


def test_saved_nodes_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "dht.json"
    many = [(f"192.0.2.{n % 250 + 1}", 1000 + n) for n in range(MAX_SAVED_NODES + 50)]
    save_state(path, DhtState(nodes={4: many}))
    assert len(load_state(path).nodes[4]) == MAX_SAVED_NODES


@settings(max_examples=50)
@given(st.binary(max_size=300))
def test_any_bytes_give_a_state_never_an_error(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "dht.json"
        path.write_bytes(data)
        assert isinstance(load_state(path), DhtState)


def test_oversized_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "dht.json"
    path.write_bytes(b" " * (2 << 20))
    assert load_state(path) == DhtState()
