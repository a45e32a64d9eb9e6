from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, insert

from atalaya.hashsets import index as index_module
from atalaya.hashsets.index import Match, MatchIndex, MatchIndexError, fetch_details
from atalaya.store.tables import hash_set, reference_file, reference_hash


def digest(algorithm: str, seed: str) -> bytes:
    """A synthetic digest of the right size for `algorithm`."""
    size = {"md5": 16, "sha1": 20, "sha256": 32, "btih": 20, "btv2_root": 32}[algorithm]
    return hashlib.sha256(f"{algorithm}:{seed}".encode()).digest()[:size]


def add_hash_set(
    conn: Connection,
    name: str,
    files: Sequence[tuple[int, str, Mapping[str, bytes]]],
) -> int:
    """A hash set with `files` as (category, label, {algorithm: digest})."""
    now = datetime.now(UTC)
    set_id = conn.execute(
        insert(hash_set).values(
            name=name,
            source="synthetic",
            format="lines",
            version=None,
            imported_at=now,
            updated_at=now,
            file_sha256=hashlib.sha256(name.encode()).hexdigest(),
            file_count=len(files),
            hash_count=sum(len(h) for _, _, h in files),
        )
    ).inserted_primary_key[0]
    for category, label, hashes in files:
        key = next(f"{a}:{hashes[a].hex()}" for a in ("sha256", "sha1", "md5") if a in hashes)
        conn.execute(
            insert(reference_file).values(
                hash_set_id=set_id, file_key=key, category=category, category_label=label
            )
        )
        conn.execute(
            insert(reference_hash),
            [
                {"hash_set_id": set_id, "algorithm": a, "value": v, "file_key": key}
                for a, v in hashes.items()
            ],
        )
    return int(set_id)


@pytest.fixture
def two_sets(engine: Engine) -> Engine:
    """Two hash sets; file "shared" is in both, under different labels."""
    shared = {"md5": digest("md5", "shared"), "sha1": digest("sha1", "shared")}
    with engine.begin() as conn:
        add_hash_set(
            conn,
            "beta",
            [
                (3, "Category 1", shared),
                (2, "Category 2", {"sha1": digest("sha1", "b1")}),
                (
                    1,
                    "Category 3",
                    {"sha256": digest("sha256", "b2"), "btih": digest("btih", "b2")},
                ),
            ],
        )
        add_hash_set(
            conn,
            "alpha",
            [
                (3, "csam", shared),
                (2, "other", {"md5": digest("md5", "a1"), "btv2_root": digest("btv2_root", "a1")}),
            ],
        )
    return engine


def test_from_store_hits_and_misses_per_algorithm(two_sets: Engine) -> None:
    index = MatchIndex.from_store(two_sets)
    assert index.algorithms == ("btih", "btv2_root", "md5", "sha1", "sha256")
    queries = [digest("sha1", "shared"), digest("sha1", "missing"), digest("sha1", "b1")]
    assert index.lookup("sha1", queries).tolist() == [True, False, True]
    assert index.lookup("md5", [digest("md5", "a1"), digest("md5", "b1")]).tolist() == [
        True,
        False,
    ]
    # The same digest under another algorithm is a different identifier.
    assert not index.contains("btih", digest("sha1", "b1"))
    assert index.contains("btih", digest("btih", "b2"))
    assert index.contains("btv2_root", digest("btv2_root", "a1"))
    assert not index.contains("sha256", digest("sha256", "a1"))


def test_hash_in_several_sets_is_held_once_and_detailed_per_set(two_sets: Engine) -> None:
    index = MatchIndex.from_store(two_sets)
    assert index.count("sha1") == 2  # "shared" (in both sets) and "b1"
    assert index.count("md5") == 2
    shared = digest("sha1", "shared")
    details = index.details(two_sets, [("sha1", shared), ("md5", digest("md5", "a1"))])
    assert [(m.hash_set, m.category, m.category_label) for m in details[("sha1", shared)]] == [
        ("alpha", 3, "csam"),
        ("beta", 3, "Category 1"),
    ]
    match = details[("sha1", shared)][0]
    assert match.file_key == f"sha1:{shared.hex()}"
    assert match.hash_set_sha256 == hashlib.sha256(b"alpha").hexdigest()
    (other,) = details[("md5", digest("md5", "a1"))]
    assert other == Match(
        "md5",
        digest("md5", "a1"),
        "alpha",
        hashlib.sha256(b"alpha").hexdigest(),
        2,
        "other",
        f"md5:{digest('md5', 'a1').hex()}",
    )


def test_details_leave_out_misses_and_batch(two_sets: Engine) -> None:
    wanted = [("sha1", digest("sha1", s)) for s in ("shared", "b1", "x", "y", "z")]
    details = fetch_details(two_sets, wanted, batch_size=2)
    assert set(details) == {wanted[0], wanted[1]}
    assert len(details[wanted[0]]) == 2
    assert fetch_details(two_sets, wanted) == details
    assert fetch_details(two_sets, []) == {}


def test_empty_store_gives_empty_index(engine: Engine) -> None:
    index = MatchIndex.from_store(engine)
    assert len(index) == 0
    assert index.nbytes == 0
    assert index.algorithms == ()
    assert index.lookup("sha1", [digest("sha1", "a")]).tolist() == [False]
    assert not index.contains("md5", digest("md5", "a"))


def test_from_store_restricted_to_algorithms(two_sets: Engine) -> None:
    index = MatchIndex.from_store(two_sets, algorithms=["sha1", "btih"])
    assert index.algorithms == ("btih", "sha1")
    assert index.lookup("md5", [digest("md5", "a1")]).tolist() == [False]


def test_from_store_streams_in_chunks_and_reports_progress(engine: Engine) -> None:
    values = [digest("sha1", str(i)) for i in range(57)]
    with engine.begin() as conn:
        add_hash_set(conn, "one", [(1, "x", {"sha1": v}) for v in values[:40]])
        add_hash_set(conn, "two", [(1, "x", {"sha1": v}) for v in values[30:]])
    seen: list[tuple[int, int]] = []
    index = MatchIndex.from_store(engine, chunk_rows=4, progress=lambda d, t: seen.append((d, t)))
    # 67 rows, 57 distinct digests: every row is read, the index holds each once.
    assert seen[0] == (0, 67)
    assert seen[-1] == (67, 67)
    assert len(seen) > 10
    assert index.count("sha1") == 57
    assert_honest(index)
    assert index.lookup("sha1", values).all()
    assert MatchIndex.from_store(engine, chunk_rows=1000).lookup("sha1", values).all()


def test_unknown_algorithm_in_request_is_an_error(engine: Engine) -> None:
    with pytest.raises(MatchIndexError, match="unknown hash algorithm"):
        MatchIndex.from_store(engine, algorithms=["sha3"])
    with pytest.raises(MatchIndexError, match="unknown hash algorithm"):
        MatchIndex().lookup("sha3", [b"x" * 20])


def random_digests(rng: np.random.Generator, n: int, size: int = 20) -> np.ndarray:
    return rng.integers(0, 256, size=(n, size), dtype=np.uint8)


def test_all_input_forms_agree() -> None:
    rng = np.random.default_rng(7)
    refs = random_digests(rng, 1000)
    index = MatchIndex.from_arrays({"sha1": refs})
    queries = np.concatenate([refs[::10], random_digests(rng, 100)])
    expected = [True] * 100 + [False] * 100
    as_list = [bytes(row) for row in queries]
    assert index.lookup("sha1", queries).tolist() == expected
    assert index.lookup("sha1", queries.reshape(-1)).tolist() == expected
    assert index.lookup("sha1", queries.tobytes()).tolist() == expected
    assert index.lookup("sha1", memoryview(queries.tobytes())).tolist() == expected
    assert index.lookup("sha1", as_list).tolist() == expected
    assert index.lookup("sha1", iter(as_list)).tolist() == expected
    assert index.lookup("sha1", queries.view("S20").reshape(-1)).tolist() == expected
    assert index.lookup("sha1", queries[::-1]).tolist() == expected[::-1]  # a strided view
    assert [index.contains("sha1", d) for d in as_list] == expected
    # The same index built from other forms holds the same thing.
    for form in (refs.tobytes(), [bytes(r) for r in refs], refs.view("V20").reshape(-1)):
        assert MatchIndex.from_arrays({"sha1": form}).lookup("sha1", queries).tolist() == expected


@pytest.mark.parametrize(
    "bad",
    [
        [b"x" * 19],
        [b"x" * 20, b"x" * 21],
        [b"x" * 19, b"x" * 21],  # right total length, wrong sizes
        b"x" * 30,
        np.zeros((2, 16), dtype=np.uint8),
        np.zeros((2, 20), dtype=np.int16),
        np.zeros(2, dtype="S16"),
    ],
)
def test_wrong_digest_sizes_are_refused(bad: object) -> None:
    index = MatchIndex.from_arrays({"sha1": [b"y" * 20]})
    with pytest.raises(MatchIndexError):
        index.lookup("sha1", bad)  # type: ignore[arg-type]
    with pytest.raises(MatchIndexError):
        MatchIndex.from_arrays({"sha1": bad})  # type: ignore[dict-item]


def test_contains_refuses_wrong_size() -> None:
    index = MatchIndex.from_arrays({"md5": [b"y" * 16]})
    with pytest.raises(MatchIndexError, match="16 bytes"):
        index.contains("md5", b"y" * 20)
    with pytest.raises(MatchIndexError):
        index.contains("sha1", b"y" * 16)


def test_edge_digests_and_shared_prefixes() -> None:
    # Trailing zero bytes (which numpy's "S" type would drop), the largest
    # prefix, and distinct digests sharing their first 8 bytes.
    edge = [
        b"\x00" * 20,
        b"\xff" * 20,
        b"\xff" * 19 + b"\x00",
        b"\x01" + b"\x00" * 19,
        b"\xab" * 8 + b"\x00" * 12,
        b"\xab" * 8 + b"\x00" * 11 + b"\x01",
        b"\xab" * 8 + b"\xff" * 12,
    ]
    index = MatchIndex.from_arrays({"sha1": edge + edge[::-1]})
    assert index.count("sha1") == len(edge)
    assert_honest(index)
    assert index.lookup("sha1", edge).all()
    near = [b"\xff" * 19 + b"\x01", b"\xab" * 8 + b"\x00" * 11 + b"\x02", b"\x00" * 19 + b"\x01"]
    assert not index.lookup("sha1", near).any()
    assert all(index.contains("sha1", d) for d in edge)
    assert not any(index.contains("sha1", d) for d in near)
    # Enough queries to take the sorted-batch path as well.
    many = (edge + near) * 20
    assert index.lookup("sha1", many).tolist() == [d in set(edge) for d in many]


def test_ends_of_the_key_space_with_many_buckets() -> None:
    rng = np.random.default_rng(5)
    refs = [bytes(r) for r in random_digests(rng, 5000)]
    top, bottom = b"\xff" * 8 + b"\x10" * 12, b"\x00" * 8 + b"\x10" * 12
    index = MatchIndex.from_arrays({"sha1": [*refs, top, bottom]})
    assert len(index._tables["sha1"].directory) > 100  # the directory is in play
    queries = [
        top,
        bottom,
        b"\xff" * 20,  # past the last digest, same prefix
        b"\xff" * 8 + b"\x0f" * 12,  # before it, same prefix
        b"\x00" * 20,  # before the first digest
        b"\x00" * 8 + b"\x11" * 12,
        max(refs),
        min(refs),
        *refs[:100],
    ]
    expected = [True, True, False, False, False, False, True, True] + [True] * 100
    assert index.lookup("sha1", queries).tolist() == expected
    assert [index.contains("sha1", q) for q in queries] == expected


def assert_honest(index: MatchIndex) -> None:
    """nbytes is the digests plus a directory of at most one uint32 per 16."""
    for s in index.stats():
        assert s.raw_bytes == s.count * s.digest_size
        assert 0 < s.nbytes - s.raw_bytes <= 4 * (s.count // 2 + 2)
    assert index.nbytes == sum(s.nbytes for s in index.stats())
    assert len(index) == sum(s.count for s in index.stats())


def test_memory_is_the_raw_digests_and_nbytes_says_so() -> None:
    rng = np.random.default_rng(1)
    sha1 = random_digests(rng, 200_000)
    md5 = random_digests(rng, 30_000, 16)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        index = MatchIndex.from_arrays({"sha1": sha1, "md5": md5})
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    stats = {s.algorithm: s for s in index.stats()}
    assert (stats["sha1"].count, stats["md5"].count) == (200_000, 30_000)
    assert_honest(index)
    raw = 200_000 * 20 + 30_000 * 16
    # numpy reports its buffers to tracemalloc: what the index really holds.
    assert index.nbytes <= held <= index.nbytes + 64 * 1024
    # The directory: under 7 % of the raw digests (the bound is 10 %).
    assert held <= 1.07 * raw


def test_index_arrays_are_read_only() -> None:
    index = MatchIndex.from_arrays({"sha1": [b"y" * 20]})
    for table in index._tables.values():
        assert not table.prefix.flags.writeable
        assert not table.rest.flags.writeable


# Few distinct prefixes, so that shared prefixes, repeats and runs are common.
_prefixes = st.sampled_from([b"\x00" * 8, b"\xff" * 8, b"\x12" * 8, b"\x12" * 7 + b"\x13"])
_digests = st.builds(
    bytes.__add__,
    _prefixes | st.binary(min_size=8, max_size=8),
    st.sampled_from([b"\x00" * 12, b"\xff" * 12]) | st.binary(min_size=12, max_size=12),
)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(
    refs=st.lists(_digests, max_size=150),
    others=st.lists(_digests, max_size=150),
    data=st.data(),
)
def test_index_agrees_with_a_python_set(
    refs: list[bytes], others: list[bytes], data: st.DataObject
) -> None:
    index = MatchIndex.from_arrays({"sha1": refs})
    known = set(refs)
    picked = data.draw(st.lists(st.sampled_from(refs), max_size=100)) if refs else []
    queries = data.draw(st.permutations(others + picked))
    assert index.lookup("sha1", queries).tolist() == [q in known for q in queries]
    assert [index.contains("sha1", q) for q in queries[:20]] == [q in known for q in queries[:20]]
    assert index.count("sha1") == len(known)
    assert_honest(index)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 3000), hits=st.integers(0, 300))
def test_index_agrees_with_a_python_set_on_random_arrays(seed: int, n: int, hits: int) -> None:
    rng = np.random.default_rng(seed)
    refs = random_digests(rng, n, 32)
    index = MatchIndex.from_arrays({"sha256": refs})
    queries = random_digests(rng, 500, 32)
    if n:
        queries[:hits] = refs[rng.integers(0, n, hits)]
    rng.shuffle(queries)
    known = {bytes(r) for r in refs}
    assert index.lookup("sha256", queries).tolist() == [bytes(q) in known for q in queries]


@pytest.mark.parametrize("size", [16, 20, 32])
def test_compiled_and_numpy_look_ups_agree(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("numba")
    rng = np.random.default_rng(size)
    refs = random_digests(rng, 20_000, size)
    # Shared 8-byte prefixes, so the compiled scan walks runs of equal prefixes.
    refs[:300, :8] = refs[0, :8]
    index = MatchIndex.from_arrays({_BY_SIZE[size]: refs})
    queries = random_digests(rng, 5_000, size)
    queries[:1000] = refs[rng.integers(0, len(refs), 1000)]
    queries[1000:1200, :8] = refs[0, :8]
    queries[0] = np.full(size, 255, dtype=np.uint8)
    queries[1] = np.zeros(size, dtype=np.uint8)
    rng.shuffle(queries)
    compiled = index.lookup(_BY_SIZE[size], queries)
    monkeypatch.setattr(index_module, "COMPILED", False)
    assert compiled.tolist() == index.lookup(_BY_SIZE[size], queries).tolist()
    known = {bytes(r) for r in refs}
    assert compiled.tolist() == [bytes(q) in known for q in queries]


_BY_SIZE = {16: "md5", 20: "sha1", 32: "sha256"}
