"""bench/bench_dht.py runs end to end at a tiny size (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import libtorrent as lt
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_dht.py"
# A 127/8 prefix of its own: PREFIX.0.x is the tiny lab, PREFIX.1-5.x the contenders.
PREFIX = "127.74"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_dht", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_dht"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.lab
@pytest.mark.slow
def test_tiny_run_writes_its_section_and_keeps_the_rest(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text(
        "# Benchmarks\n\nIntro stays.\n\n"
        "<!-- bench_match:start -->\nmatch figures\n<!-- bench_match:end -->\n\n"
        "<!-- bench_dht:start -->\nstale figures\n<!-- bench_dht:end -->\n\n"
        "<!-- other:start -->\nanother benchmark\n<!-- other:end -->\n"
    )
    args = [
        "--codec-seconds", "0.005", "--codec-repeats", "1",
        "--nodes", "4", "--seeders", "2", "--torrents", "3", "--copies", "2",
        "--file-size", "65536", "--ip-prefix", PREFIX, "--pool", "2",
        "--lookups", "6", "--lookup-concurrency", "2", "--lookup-timeout", "10",
        "--probes", "6", "--baseline-probes", "3", "--probe-concurrency", "1,3",
        "--phase-timeout", "60", "--lab-timeout", "60",
    ]  # fmt: skip
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--docs", str(docs)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]

    codec = [f for f in figures if f["part"] == "codec"]
    assert len(codec) == 5
    assert {"ping query", "find_node response, 8 nodes"} <= {f["message"] for f in codec}
    for f in codec:
        assert f["bytes"] > 0
        for key in ("krpc", "bencode", "libtorrent_bdecode", "libtorrent_bencode"):
            assert all(v > 0 for k, v in f.items() if k.startswith(key) and k.endswith("_per_s"))

    lookups = {f["contender"]: f for f in figures if f["part"] == "lookups"}
    assert set(lookups) == {"ours-default", "ours-raised", "libtorrent"}
    for f in lookups.values():
        assert f["lookups"] == 6
        # Every lookup found a seeder of its torrent, and nothing else: the lab has no other peer.
        assert f["found_any"] == 6, f
        assert 1 <= f["peers_per_lookup"] <= 2
        assert f["queries_per_lookup"] >= 1
        assert f["cpu_s"] >= 0
    assert lookups["ours-raised"]["reasons"] == {"converged": 6}

    probes = [f for f in figures if f["part"] == "probes"]
    assert [(f["contender"], f["concurrency"]) for f in probes] == [
        ("probe_peer", 1),
        ("libtorrent", 1),
        ("probe_peer", 3),
        ("libtorrent", 3),
    ]
    for f in probes:
        expected = 6 if f["contender"] == "probe_peer" else 3
        assert f["probes"] == f["proofs"] == expected, f
        assert f["failures"] == {}
        assert f["cpu_ms_per_probe"] > 0

    text = docs.read_text()
    assert "stale figures" not in text
    assert text.startswith("# Benchmarks\n\nIntro stays.\n")
    assert "<!-- bench_match:start -->\nmatch figures\n<!-- bench_match:end -->" in text
    assert "<!-- other:start -->\nanother benchmark\n<!-- other:end -->" in text
    assert text.count("<!-- bench_dht:start -->") == text.count("<!-- bench_dht:end -->") == 1
    section = text[text.index("<!-- bench_dht:start -->") : text.index("<!-- bench_dht:end -->")]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == (1 + 5) + (1 + 3) + (1 + 4)  # a header and the rows of each table
    assert "libtorrent session, `dht_get_peers`" in section
    assert f"4 libtorrent {lt.__version__} DHT nodes on {PREFIX}.0.x" in section
    assert "python bench/bench_dht.py --codec-seconds 0.005 --codec-repeats 1" in section
    assert "Machine:" in section and "Python 3." in section and "Date:" in section


def test_codec_messages_round_trip_through_every_contender() -> None:
    from atalaya.networks.bittorrent import bencode, krpc

    bench = load_bench()
    messages = bench.codec_messages(5)
    assert len(messages) == 5
    for message in messages.values():
        data = krpc.encode_message(message)
        assert krpc.decode_message(data) == message
        assert bencode.encode(bencode.decode(data)) == data
        assert lt.bencode(lt.bdecode(data)) == data
    replies = [m for m in messages.values() if isinstance(m, krpc.Response)]
    assert {len(m.nodes) for m in replies} == {8}
    assert any(len(m.values) == 50 for m in replies)
    assert any(m.samples is not None and len(m.samples) == 20 for m in replies)
    # Synthetic addresses, all on loopback.
    assert all(n.ip.startswith("127.") for m in replies for n in m.nodes)


@pytest.mark.parametrize(
    "argv",
    [
        ["--ip-prefix", "10.1"],
        ["--ip-prefix", "127.300"],
        ["--parts", "codec,nonsense"],
        ["--copies", "5", "--seeders", "4"],
        ["--probe-concurrency", "64", "--torrents", "8"],
    ],
)
def test_bad_arguments_are_refused(argv: list[str]) -> None:
    bench = load_bench()
    with pytest.raises(SystemExit):
        bench.parse_args(argv)
