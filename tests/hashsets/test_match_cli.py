"""`atalaya match` on both engines.

Commands run in this process (tests/support/cli.py); `test_skip_invalid`
runs the real command in a child, its hashes arriving through a pipe.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.hashsets.test_index import add_hash_set, digest
from tests.support.cli import run_atalaya, spawn_atalaya

SHARED_SHA1 = digest("sha1", "shared")
SHARED_MD5 = digest("md5", "shared")
B1 = digest("sha1", "b1")
A1_MD5 = digest("md5", "a1")
B2_SHA256 = digest("sha256", "b2")
B2_BTIH = digest("btih", "b2")
MISS = digest("sha1", "nowhere")


def atalaya(db_url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_atalaya("--db", db_url, *args, stdin=stdin, env={"ATALAYA_DATABASE_URL": None})


def atalaya_process(
    db_url: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return spawn_atalaya("--db", db_url, *args, stdin=stdin, env={"ATALAYA_DATABASE_URL": None})


def records(stdout: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in stdout.splitlines()]


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def store(engine: Engine, db_url: str) -> str:
    """Hash sets "beta" and "alpha"; the file "shared" is in both."""
    shared = {"md5": SHARED_MD5, "sha1": SHARED_SHA1}
    with engine.begin() as conn:
        add_hash_set(
            conn,
            "beta",
            [
                (3, "Category 1", shared),
                (2, "Category 2", {"sha1": B1}),
                (4, "A", {"sha256": B2_SHA256, "btih": B2_BTIH}),
            ],
        )
        add_hash_set(conn, "alpha", [(3, "csam", shared), (2, "other", {"md5": A1_MD5})])
    return db_url


def expected(hash_: bytes, algorithm: str, category: str, label: str, hashset: str) -> dict:
    return {
        "hash": hash_.hex(),
        "algorithm": algorithm,
        "category": category,
        "category_label": label,
        "hashset": hashset,
    }


SHARED_LINES = [
    expected(SHARED_SHA1, "sha1", "abuse", "csam", "alpha"),
    expected(SHARED_SHA1, "sha1", "abuse", "Category 1", "beta"),
]


@pytest.mark.parametrize("using", ["index", "store"])
def test_arguments_give_one_json_line_per_hash_set(store: str, using: str) -> None:
    result = atalaya(
        store,
        "match",
        "--using",
        using,
        SHARED_SHA1.hex().upper(),
        MISS.hex(),
        A1_MD5.hex(),
        B2_SHA256.hex(),
    )
    assert result.returncode == 0, result.stderr
    assert records(result.stdout) == [
        *SHARED_LINES,
        expected(A1_MD5, "md5", "exploitative", "other", "alpha"),
        expected(B2_SHA256, "sha256", "severe_abuse", "A", "beta"),
    ]


def test_stdin_lines_and_count(store: str) -> None:
    text = f"  {SHARED_SHA1.hex()}  \r\n\n{MISS.hex()}\n{B1.hex()}\n{SHARED_MD5.hex()}"
    result = atalaya(store, "match", stdin=text)
    assert result.returncode == 0, result.stderr
    assert records(result.stdout) == [
        *SHARED_LINES,
        expected(B1, "sha1", "exploitative", "Category 2", "beta"),
        expected(SHARED_MD5, "md5", "abuse", "csam", "alpha"),
        expected(SHARED_MD5, "md5", "abuse", "Category 1", "beta"),
    ]
    counted = atalaya(store, "match", "--count", stdin=text)
    assert (counted.returncode, counted.stdout) == (0, "5\n")
    # Nothing matching is not an error.
    none = atalaya(store, "match", MISS.hex())
    assert (none.returncode, none.stdout) == (0, "")
    assert atalaya(store, "match", "--count", MISS.hex()).stdout == "0\n"


def test_same_output_whatever_the_lookup_and_batch(store: str, engine: Engine) -> None:
    # 48 reference hashes in all: `--using auto` asks the store for the first
    # two hashes (2 <= 5% of 48) and loads the index from the third on.
    with engine.begin() as conn:
        add_hash_set(
            conn, "gamma", [(1, "x", {"sha1": digest("sha1", f"g{i}")}) for i in range(40)]
        )
    lines = [SHARED_SHA1, MISS, B1, A1_MD5, SHARED_SHA1, B2_SHA256, MISS, SHARED_MD5]
    text = "".join(d.hex() + "\n" for d in lines)
    outputs = {
        (using, batch): atalaya(store, "match", "--using", using, "--batch", batch, stdin=text)
        for using, batch in [("store", "1000"), ("store", "1"), ("index", "3"), ("auto", "1")]
    }
    first = outputs["store", "1000"]
    assert first.returncode == 0, first.stderr
    assert len(records(first.stdout)) == 9  # shared twice (2 sets each), b1, a1, b2, md5 x2
    for key, result in outputs.items():
        assert (result.returncode, result.stdout) == (0, first.stdout), key
    assert "match index:" not in first.stderr
    # md5, sha1 and sha256 (what a hash's length can say): 2 + 42 + 1 digests.
    assert re.search(r"match index: 45 hashes in [0-9,]+ bytes", outputs["auto", "1"].stderr)


def test_algorithm_option(store: str) -> None:
    # 40 hex digits alone mean SHA-1; an infohash needs --algorithm btih.
    assert atalaya(store, "match", B2_BTIH.hex()).stdout == ""
    result = atalaya(store, "match", "--algorithm", "btih", B2_BTIH.hex(), B1.hex())
    assert result.returncode == 0, result.stderr
    assert records(result.stdout) == [expected(B2_BTIH, "btih", "severe_abuse", "A", "beta")]
    # With --algorithm, every line must have that algorithm's length.
    wrong = atalaya(store, "match", "-a", "btih", A1_MD5.hex())
    assert wrong.returncode == 2
    assert "argument 1: btih must be 40 hex digits" in one_line(wrong.stderr)
    unknown = atalaya(store, "match", "--algorithm", "sha3", B1.hex())
    assert unknown.returncode == 2
    assert "unknown algorithm 'sha3'" in one_line(unknown.stderr)
    assert "Traceback" not in unknown.stderr


def test_invalid_line_stops_with_its_number_after_earlier_matches(store: str) -> None:
    text = f"{SHARED_SHA1.hex()}\n{B1.hex()[:-1]}\n{B1.hex()}\n"
    result = atalaya(store, "match", "--batch", "1000", stdin=text)
    assert result.returncode == 2
    assert records(result.stdout) == SHARED_LINES
    assert "error: line 2: cannot tell the algorithm of a 39-character hash" in one_line(
        result.stderr
    )
    assert "Traceback" not in result.stderr
    nonhex = atalaya(store, "match", stdin=f"{B1.hex()}\n{'g' * 40}\n")
    assert nonhex.returncode == 2
    assert "line 2: hash has characters that are not hex digits" in one_line(nonhex.stderr)


def test_skip_invalid(store: str) -> None:
    text = f"{SHARED_SHA1.hex()}\nnot a hash\n\xff\xfe\n{B1.hex()}\n"
    result = atalaya_process(store, "match", "--skip-invalid", stdin=text)
    assert result.returncode == 0, result.stderr
    assert records(result.stdout) == [
        *SHARED_LINES,
        expected(B1, "sha1", "exploitative", "Category 2", "beta"),
    ]
    assert "skipped 2 lines" in result.stderr


def test_uninitialised_database_is_a_clear_error(tmp_path: Path) -> None:
    result = atalaya(f"sqlite:///{tmp_path / 'empty.db'}", "match", B1.hex())
    assert result.returncode == 2
    assert "run 'atalaya init'" in one_line(result.stderr)


def test_matches_a_set_imported_by_the_real_importer(db_url: str, tmp_path: Path) -> None:
    csv = tmp_path / "synthetic.csv"
    csv.write_text(f"sha1,md5,category\n{B1.hex()},{A1_MD5.hex()},1\n{SHARED_SHA1.hex()},,2\n")
    assert atalaya(db_url, "init").returncode == 0
    imported = atalaya(db_url, "hashsets", "import", str(csv), "--format", "csv")
    assert imported.returncode == 0, imported.stderr
    result = atalaya(db_url, "match", stdin=f"{A1_MD5.hex()}\n{MISS.hex()}\n{SHARED_SHA1.hex()}\n")
    assert result.returncode == 0, result.stderr
    assert records(result.stdout) == [
        expected(A1_MD5, "md5", "abuse", "1", "synthetic"),
        expected(SHARED_SHA1, "sha1", "exploitative", "2", "synthetic"),
    ]


# Fed through a pipe to a real child: well past what the child needs otherwise.
HUGE_LINE_MIB = 384
# The child's whole peak resident memory may not reach this.
PEAK_RSS_LIMIT_MIB = 256

_MEASURE = """
import resource, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE)
try:
    child.stdin.write(sys.stdin.readline().encode())
    piece = b"a" * (1 << 20)
    for _ in range(int(sys.stdin.readline())):
        child.stdin.write(piece)
    child.stdin.write(b"\\n" + sys.stdin.readline().encode())
    child.stdin.close()
except BrokenPipeError:
    pass
code = child.wait(timeout=300)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, code, file=sys.stderr)
"""


@pytest.mark.slow
@pytest.mark.parametrize("skip_invalid", [False, True])
def test_a_huge_stdin_line_is_refused_in_bounded_memory(store: str, skip_invalid: bool) -> None:
    # A wrapper process feeds a 384 MiB line between two hashes and reports the
    # peak memory of `atalaya match`, its only child.
    feed = f"{SHARED_SHA1.hex()}\n{HUGE_LINE_MIB}\n{B1.hex()}\n"
    skip = ["--skip-invalid"] if skip_invalid else []
    command = [sys.executable, "-m", "atalaya", "--db", store, "match", "--using", "store", *skip]
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command],
        input=feed,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    *messages, measured = done.stderr.splitlines()
    peak_mib, code = (int(n) for n in measured.split())
    assert peak_mib < PEAK_RSS_LIMIT_MIB, done.stderr
    if skip_invalid:
        assert code == 0, done.stderr
        assert records(done.stdout) == [
            *SHARED_LINES,
            expected(B1, "sha1", "exploitative", "Category 2", "beta"),
        ]
        assert messages == ["skipped 1 lines that are not a hash"]
    else:
        assert code == 2
        assert records(done.stdout) == SHARED_LINES
        assert messages == [
            "error: line 2: longer than 1024 bytes: not a hash (--skip-invalid skips it)"
        ]
