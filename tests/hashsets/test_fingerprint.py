"""Fingerprints against independent references: hashlib, libtorrent, RHash."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.errors import AtalayaError
from atalaya.hashsets import fingerprint as fingerprint_module
from atalaya.hashsets.algorithms import (
    BTV1_PIECE_SIZES,
    DIGEST_SIZES,
    parse_hex,
)
from atalaya.hashsets.fingerprint import (
    BTV1_COLUMNS,
    CSV_COLUMNS,
    FINGERPRINT_COLUMNS,
    Fingerprinter,
    fingerprint_file,
    fingerprint_files,
    fingerprint_stream,
    list_files,
    write_fingerprints,
)
from atalaya.lab.files import write_random_file
from atalaya.lab.torrents import make_torrent
from atalaya.networks.bittorrent import bencode
from atalaya.networks.ed2k.hashing import PART_SIZE
from tests.support.cli import run_atalaya

KIB = 1024
MIB = 1024 * KIB
EDGE_SIZES = [0, 1, 16383, 16384, 16385, 64 * KIB, 64 * KIB + 1, MIB - 1, MIB, 3 * MIB + 5]


def hashlib_digests(data: bytes) -> dict[str, bytes]:
    return {
        "md5": hashlib.md5(data).digest(),
        "sha1": hashlib.sha1(data).digest(),
        "sha256": hashlib.sha256(data).digest(),
    }


def decoded(torrent: bytes) -> Any:
    """A .torrent as plain dicts, for reading known keys."""
    value = bencode.decode(torrent)
    assert isinstance(value, dict)
    return value


def libtorrent_v2_root(path: Path) -> bytes:
    info = decoded(make_torrent(path, version="v2", piece_size=16 * KIB))[b"info"]
    root: bytes = info[b"file tree"][path.name.encode()][b""][b"pieces root"]
    return root


def libtorrent_v1_first_piece(path: Path, piece_size: int) -> bytes:
    info = decoded(make_torrent(path, version="v1", piece_size=piece_size))[b"info"]
    assert info[b"piece length"] == piece_size
    pieces: bytes = info[b"pieces"]
    return pieces[:20]


def rhash_ed2k(path: Path) -> bytes:
    if shutil.which("rhash") is None:
        if os.environ.get("CI"):
            pytest.fail("rhash is required under CI: scripts/setup.sh installs it")
        pytest.skip("rhash is not installed; run scripts/setup.sh")
    out = subprocess.run(
        ["rhash", "--ed2k", "--simple", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return bytes.fromhex(out.split()[0])


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_file_hashes_match_hashlib_libtorrent_and_rhash(tmp_path: Path, size: int) -> None:
    path = write_random_file(tmp_path / f"f{size}.bin", size, seed=size)
    data = path.read_bytes()
    result = fingerprint_file(path)
    assert result.size == size
    for name, digest in hashlib_digests(data).items():
        assert result.digests[name] == digest, name
    assert result.digests["ed2k"] == rhash_ed2k(path)
    if size == 0:
        # No torrent holds an empty file's pieces.
        assert set(result.digests) == {"md5", "sha1", "sha256", "ed2k"}
        return
    assert result.digests["btv2_root"] == libtorrent_v2_root(path)
    for piece_size in (16 * KIB, 64 * KIB, 4 * MIB):
        expected = libtorrent_v1_first_piece(path, piece_size)
        assert result.digests[f"btv1_{piece_size}"] == expected, piece_size


def test_btv1_every_piece_size_over_16_mib(tmp_path: Path) -> None:
    size = 16 * MIB + 16 * KIB + 3
    path = write_random_file(tmp_path / "big.bin", size, seed=7)
    data = path.read_bytes()
    result = fingerprint_file(path)
    for name, digest in hashlib_digests(data).items():
        assert result.digests[name] == digest, name
    for piece_size in BTV1_PIECE_SIZES:
        assert result.digests[f"btv1_{piece_size}"] == libtorrent_v1_first_piece(path, piece_size)
    assert result.digests["btv2_root"] == libtorrent_v2_root(path)
    assert result.digests["ed2k"] == rhash_ed2k(path)


@pytest.mark.parametrize("size", [5 * KIB, 40 * KIB, 300 * KIB])
def test_btv1_piece_larger_than_the_file_is_the_whole_file(tmp_path: Path, size: int) -> None:
    path = write_random_file(tmp_path / "small.bin", size, seed=size)
    result = fingerprint_file(path)
    for piece_size in (64 * KIB, 512 * KIB, 16 * MIB):
        expected = libtorrent_v1_first_piece(path, piece_size)
        assert result.digests[f"btv1_{piece_size}"] == expected
        if piece_size >= size:
            assert expected == hashlib.sha1(path.read_bytes()).digest()


def test_exact_ed2k_part_matches_rhash(tmp_path: Path) -> None:
    path = write_random_file(tmp_path / "part.bin", PART_SIZE, seed=3)
    assert fingerprint_file(path).digests["ed2k"] == rhash_ed2k(path)


def test_every_column_has_its_digest_size() -> None:
    fingerprinter = Fingerprinter()
    fingerprinter.update(b"synthetic")
    digests = fingerprinter.digests()
    assert tuple(digests) == FINGERPRINT_COLUMNS
    for column, digest in digests.items():
        assert len(digest) == DIGEST_SIZES[column]
    assert CSV_COLUMNS[-2:] == ("category", "name")
    assert len(BTV1_COLUMNS) == 11


_CHUNK_DATA = random.Random(9).randbytes(200 * KIB)


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=len(_CHUNK_DATA)),
    cuts=st.lists(st.integers(min_value=0, max_value=len(_CHUNK_DATA)), max_size=10),
)
def test_any_chunking_gives_the_one_shot_digests(size: int, cuts: list[int]) -> None:
    data = _CHUNK_DATA[:size]
    one_shot = Fingerprinter()
    one_shot.update(data)
    chunked = Fingerprinter()
    bounds = sorted({0, size, *(c for c in cuts if c <= size)})
    for start, end in itertools.pairwise(bounds):
        chunked.update(memoryview(data)[start:end])
    assert chunked.digests() == one_shot.digests()
    assert chunked.length == size
    expected = hashlib_digests(data)
    assert {k: one_shot.digests()[k] for k in expected} == expected
    for piece_size in BTV1_PIECE_SIZES:
        first = hashlib.sha1(data[:piece_size]).digest()
        assert one_shot.digests().get(f"btv1_{piece_size}", first) == first


def test_small_reads_give_the_same_digests() -> None:
    data = _CHUNK_DATA
    whole = fingerprint_stream(io.BytesIO(data))
    assert fingerprint_stream(io.BytesIO(data), read_size=1000) == whole
    assert fingerprint_stream(io.BytesIO(data), read_size=16 * KIB) == whole
    assert fingerprint_stream(io.BytesIO(data), read_size=1000, threads=2) == whole
    assert fingerprint_stream(io.BytesIO(data), threads=2) == whole


def test_progress_reports_every_byte_once() -> None:
    seen: list[int] = []
    fingerprint_stream(io.BytesIO(_CHUNK_DATA), seen.append, read_size=1000)
    assert sum(seen) == len(_CHUNK_DATA)


def make_tree(root: Path) -> list[Path]:
    """Files in a nested folder; returned in the order list_files must give."""
    paths = [
        root / "a.bin",
        root / "b" / "c.bin",
        root / "b" / "d" / "e.bin",
        root / "z.bin",
    ]
    for i, path in enumerate(reversed(paths)):
        write_random_file(path, 1000 + i, seed=i)
    return paths


def test_list_files_walks_folders_sorted_in_the_order_given(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "lib")
    single = write_random_file(tmp_path / "single.bin", 10, seed=1)
    os.mkfifo(tmp_path / "lib" / "b" / "pipe")
    listing = list_files([single, tmp_path / "lib", single])
    assert listing.files == [single, *tree, single]
    assert listing.sizes == [p.stat().st_size for p in listing.files]
    assert listing.skipped == [tmp_path / "lib" / "b" / "pipe"]


def test_list_files_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing.bin"
    with pytest.raises(AtalayaError, match=r"missing\.bin"):
        list_files([missing])
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(AtalayaError, match="pipe is neither a file nor a folder"):
        list_files([pipe])


def test_parallel_results_come_in_order_and_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A window smaller than the file list: results still come, in order.
    monkeypatch.setattr(fingerprint_module, "_WINDOW", 2)
    files = [write_random_file(tmp_path / f"{i}.bin", 50_000 * i + 1, seed=i) for i in range(6)]
    progress: list[int] = []
    parallel = list(fingerprint_files(files, jobs=2, on_bytes=progress.append))
    serial = list(fingerprint_files(files, jobs=1))
    assert [r.path for r in parallel] == files
    assert parallel == serial
    assert sum(progress) == sum(p.stat().st_size for p in files)


def test_few_files_on_many_jobs_also_split_each_file_over_threads(tmp_path: Path) -> None:
    files = [write_random_file(tmp_path / f"{i}.bin", 3 * MIB + i, seed=i) for i in range(2)]
    serial = list(fingerprint_files(files, jobs=1))
    assert list(fingerprint_files(files, jobs=4)) == serial
    assert list(fingerprint_files(files[:1], jobs=2)) == serial[:1]


@pytest.mark.parametrize("jobs", [1, 2])
def test_unreadable_file_is_one_error_naming_it(tmp_path: Path, jobs: int) -> None:
    files = [write_random_file(tmp_path / f"{i}.bin", 1000, seed=i) for i in range(3)]
    files[1].unlink()
    with pytest.raises(AtalayaError, match=r"cannot read .*1\.bin"):
        list(fingerprint_files(files, jobs=jobs))


def test_failed_run_leaves_no_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    files = [write_random_file(tmp_path / "in" / f"{i}.bin", 1000, seed=i) for i in range(3)]
    out = tmp_path / "out" / "fp.csv"
    out.parent.mkdir()
    out.write_text("previous run\n")
    files[2].unlink()
    with pytest.raises(AtalayaError, match=r"2\.bin"):
        write_fingerprints(files, out, category=None, jobs=2)
    assert out.read_text() == "previous run\n"
    assert list(out.parent.iterdir()) == [out]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
        return list(reader)


def test_write_fingerprints_csv(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "lib")
    odd = write_random_file(tmp_path / 'we,ird "name".bin', 77, seed=5)
    empty = tmp_path / "empty.bin"
    empty.touch()
    out = tmp_path / "fp.csv"
    summary = write_fingerprints([*tree, empty, odd], out, category="B1", jobs=2)
    assert summary.files == 5
    assert summary.empty == [empty]
    assert summary.bytes == sum(p.stat().st_size for p in [*tree, odd])
    rows = read_csv(out)
    assert [row["name"] for row in rows] == [p.name for p in [*tree, odd]]
    for row, path in zip(rows, [*tree, odd], strict=True):
        assert row["category"] == "B1"
        expected = fingerprint_file(path).digests
        for column in FINGERPRINT_COLUMNS:
            assert row[column] == row[column].lower()
            assert parse_hex(column, row[column]) == expected[column]


def run_cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    """Run `atalaya ARGS` in this process, as its entry point does: (exit code, out, err)."""
    done = run_atalaya(*args, cwd=cwd)
    return done.returncode, done.stdout, done.stderr


def test_cli_writes_csv_and_a_summary(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "lib")
    code, out, err = run_cli(
        "hashsets", "fingerprint", "lib", "--out", "fp.csv", "--jobs", "2", cwd=tmp_path
    )
    assert code == 0, err
    assert out == ""
    assert "fingerprinted 4 files" in err
    rows = read_csv(tmp_path / "fp.csv")
    assert [row["name"] for row in rows] == [p.name for p in tree]
    assert all(row["category"] == "" for row in rows)


def test_cli_error_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    code, _, err = run_cli("hashsets", "fingerprint", "nowhere", "--out", "fp.csv", cwd=tmp_path)
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "nowhere" in err
    assert not (tmp_path / "fp.csv").exists()


@pytest.mark.slow
def test_output_imports_as_csv(tmp_path: Path) -> None:
    make_tree(tmp_path / "lib")
    db = f"sqlite:///{tmp_path / 'atalaya.db'}"
    steps = [
        ("--db", db, "init"),
        ("hashsets", "fingerprint", "lib", "--out", "fp.csv", "--category", "B"),
        ("--db", db, "hashsets", "import", "fp.csv", "--format", "csv"),
    ]
    for step in steps:
        code, _, err = run_cli(*step, cwd=tmp_path)
        assert code == 0, err
    from sqlalchemy import create_engine, select

    from atalaya.store.tables import reference_file, reference_hash

    engine = create_engine(db)
    with engine.connect() as conn:
        files = conn.execute(select(reference_file.c.file_key)).all()
        hashes = conn.execute(select(reference_hash.c.algorithm, reference_hash.c.value)).all()
    engine.dispose()
    rows = read_csv(tmp_path / "fp.csv")
    assert len(files) == len(rows)
    expected = {(c, bytes.fromhex(row[c])) for row in rows for c in FINGERPRINT_COLUMNS}
    assert set(map(tuple, hashes)) == expected


def test_closing_early_stops_the_workers(tmp_path: Path) -> None:
    files = [write_random_file(tmp_path / f"{i}.bin", 12 * MIB, seed=i) for i in range(4)]
    results = fingerprint_files(files, jobs=2)
    first = next(results)
    results.close()
    assert first.path == files[0]
    assert first.digests["sha256"] == hashlib.sha256(files[0].read_bytes()).digest()


def _truncate(path: Path) -> None:
    with path.open("r+b") as stream:
        stream.truncate(1 << 20)


def _overwrite_in_place(path: Path) -> None:
    # Same size, other bytes: only the modification time tells.
    with path.open("r+b") as stream:
        stream.write(os.urandom(1 << 20))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def _append(path: Path) -> None:
    with path.open("ab") as stream:
        stream.write(os.urandom(1000))


@pytest.mark.parametrize("change", [_truncate, _overwrite_in_place, _append])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_file_changed_while_read_is_refused(tmp_path: Path, change: Any, threads: int) -> None:
    # Progress is heard every 8 MiB: the file changes after the first 8 MiB are read.
    path = tmp_path / "moving.bin"
    path.write_bytes(os.urandom(20 << 20))
    changed: list[int] = []

    def change_once(_n: int) -> None:
        if not changed:
            changed.append(1)
            change(path)

    with pytest.raises(AtalayaError) as caught:
        fingerprint_file(path, change_once, threads)
    assert changed
    message = str(caught.value)
    assert message.startswith(f"{path} changed while it was read ")
    assert message.endswith(": fingerprint it again once it is still")
