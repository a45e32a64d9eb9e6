"""Transcript pieces against real torrents' metadata: what holds, what is named, never a crash."""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atalaya.evidence.verify_pieces import (
    PieceCheck,
    Torrent,
    check_transcript,
    load_torrent,
    parse_transcript,
)
from tests.evidence.package_world import Made, lab_torrent, transcript


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Made]:
    folder = tmp_path_factory.mktemp("torrents")
    rng = random.Random(3)
    return {
        v: lab_torrent(folder, rng, v, size)
        for v, size in (("v1", 4 * 16384 + 5), ("v2", 9 * 16384 + 1), ("hybrid", 5 * 16384))
    }


def _index(m: Made) -> dict[str, Torrent]:
    torrent = load_torrent(m.info)
    return {torrent.sha1: torrent, torrent.sha256: torrent}


def _check(m: Made, doc: dict[str, Any]) -> PieceCheck:
    result = PieceCheck()
    check_transcript(doc, _index(m), "t", result)
    return result


@pytest.mark.parametrize("version", ["v1", "v2", "hybrid"])
def test_honest_transcripts_hold_and_failed_pieces_count_as_failed(
    made: dict[str, Made], version: str
) -> None:
    m = made[version]
    kind, value = ("btih", m.v1) if m.v1 else ("btih2", m.v2)
    assert value is not None
    doc = parse_transcript(transcript(m, kind, value, [0, 1, 2, 3], 2))
    result = _check(m, doc)
    per_piece = 2 if version == "hybrid" else 1
    assert result.problems == []
    assert (result.checked, result.verified, result.failed) == (
        4 * per_piece,
        3 * per_piece,
        per_piece,
    )


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_every_changed_hash_is_named(made: dict[str, Made], version: str) -> None:
    m = made[version]
    kind, value = ("btih", m.v1) if m.v1 else ("btih2", m.v2)
    assert value is not None
    honest = parse_transcript(transcript(m, kind, value, [0, 1, 2], None))
    for number, piece in enumerate(honest["pieces"]):
        fields = ["expected", "computed"] + (["proof_path"] if piece["proof_path"] else [])
        for name in fields:
            doc = json.loads(json.dumps(honest))
            target = doc["pieces"][number]
            if name == "proof_path":
                target[name][-1] = "00" * 32
            else:
                target[name] = ("%02x" % (int(target[name][:2], 16) ^ 1)) + target[name][2:]
            result = _check(m, doc)
            assert any(f"t #{number} " in en for _, en in result.problems), (number, name)


def test_a_transcript_naming_absent_metadata_is_named(made: dict[str, Made]) -> None:
    m = made["v1"]
    assert m.v1 is not None
    doc = parse_transcript(transcript(m, "btih", m.v1, [0], None))
    doc["metadata"]["info_hash"] = "ab" * 20
    result = _check(m, doc)
    assert [en for _, en in result.problems] == [
        "t: names metadata " + "ab" * 20 + " that is not in the package"
    ]


def test_transcripts_that_are_not_v1_json_are_refused() -> None:
    for body in (b"[]", b"{", b'{"version": 2}', b'{"version": 1, "pieces": {}}', b"\xff"):
        with pytest.raises(ValueError):
            parse_transcript(body)
    with pytest.raises(ValueError, match="larger"):
        parse_transcript(b" " * (4 * 1024 * 1024 + 1))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)
_PIECE = st.fixed_dictionaries(
    {},
    optional={
        "index": st.integers(-3, 12) | _JSON,
        "algorithm": st.sampled_from(["sha1", "sha256", "md5"]) | _JSON,
        "expected": st.binary(min_size=20, max_size=32).map(bytes.hex) | _JSON,
        "computed": st.binary(min_size=20, max_size=32).map(bytes.hex) | _JSON,
        "ok": st.booleans() | _JSON,
        "file_index": st.integers(-1, 3) | _JSON,
        "proof_path": st.lists(st.binary(min_size=32, max_size=32).map(bytes.hex), max_size=5)
        | _JSON,
    },
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sampled_from(["v1", "v2", "hybrid"]), st.lists(_PIECE | _JSON, max_size=5))
def test_hostile_pieces_give_problems_never_exceptions(
    made: dict[str, Made], version: str, pieces: list[Any]
) -> None:
    m = made[version]
    doc = {"version": 1, "metadata": {"info_hash": m.v1 or m.v2}, "pieces": pieces}
    result = _check(m, doc)
    assert result.checked == len(pieces)
    assert result.verified + result.failed + len(result.problems) >= len(pieces)


def test_metadata_is_its_info_hash(made: dict[str, Made]) -> None:
    for m in made.values():
        torrent = load_torrent(m.info)
        assert m.v1 in (None, torrent.sha1) and m.v2 in (None, torrent.sha256)
        assert hashlib.sha256(m.info).hexdigest() == torrent.sha256
