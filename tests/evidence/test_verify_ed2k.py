"""eD2K transcripts re-checked offline: part MD4, whole-file MD4, AICH block; and forgeries."""

from __future__ import annotations

import copy
import json
import os
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from atalaya.evidence.verify_ed2k import check_ed2k_transcript
from atalaya.evidence.verify_pieces import PieceCheck
from atalaya.lab.ed2k_peer import Behaviour, Ed2kResponder
from atalaya.networks.ed2k.aich import BLOCK_SIZE
from atalaya.networks.ed2k.hashing import PART_SIZE
from atalaya.networks.ed2k.probe import Ed2kProbe
from atalaya.observe.ed2k.probe import Ed2kProbeResult
from atalaya.observe.ed2k.transcript import encode_transcript

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _probe(content: bytes, behaviour: Behaviour = "honest", *, aich: bool) -> Ed2kProbeResult:
    peer = Ed2kResponder(content, behaviour, user_hash=bytes(range(16)), port=4662)
    probe: Ed2kProbe[datetime] = Ed2kProbe(
        "192.0.2.9", 4662, peer.file_hash, file_size=len(content), user_hash=os.urandom(16),
        now=0.0, aich_master=peer.master if aich else None,
    )  # fmt: skip
    probe.connected(("192.0.2.1", 50000), 0.0, START)
    for step in range(1, 1000):
        if probe.done:
            break
        probe.receive_data(peer.answer(probe.data_to_send()), step, START + timedelta(seconds=step))
    result = probe.result
    assert result is not None
    return result


def _doc(content: bytes, behaviour: Behaviour = "honest", *, aich: bool) -> dict[str, Any]:
    result = _probe(content, behaviour, aich=aich)
    body = encode_transcript(
        result,
        item_value=result.file_hash.hex(),
        file_size=len(content),
        aich_source="link" if aich else None,
    )
    doc: dict[str, Any] = json.loads(body)
    return doc


def _check(doc: dict[str, Any]) -> PieceCheck:
    result = PieceCheck()
    check_ed2k_transcript(doc, "t", result)
    return result


@pytest.fixture(scope="module")
def two_parts() -> bytes:
    return random.Random(1).randbytes(PART_SIZE + 3000)


def test_a_part_md4_proof_rechecks(two_parts: bytes) -> None:
    doc = _doc(two_parts, aich=False)
    assert doc["check"]["kind"] == "part_md4" and doc["check"]["ok"]
    assert len(doc["hashset"]) == 2 and doc["network"] == "ed2k"
    result = _check(doc)
    assert (result.checked, result.verified, result.problems) == (1, 1, [])


def test_an_aich_block_proof_rechecks(two_parts: bytes) -> None:
    doc = _doc(two_parts, aich=True)
    assert (
        doc["check"]["kind"] == "aich_block"
        and doc["check"]["length"] == PART_SIZE - 52 * BLOCK_SIZE
    )
    assert doc["aich"]["master_source"] == "link"
    result = _check(doc)
    assert (result.checked, result.verified, result.problems) == (1, 1, [])


def test_a_whole_file_proof_rechecks() -> None:
    doc = _doc(random.Random(2).randbytes(BLOCK_SIZE), aich=True)
    assert doc["check"]["kind"] == "file_md4"
    assert _check(doc).verified == 1


def test_a_liars_failed_check_is_recorded_and_not_a_fault() -> None:
    doc = _doc(random.Random(3).randbytes(2 * BLOCK_SIZE + 10), "liar", aich=True)
    assert doc["check"]["ok"] is False
    result = _check(doc)
    assert (result.failed, result.problems) == (1, [])


def _forged(doc: dict[str, Any], path: list[str | int], value: object) -> PieceCheck:
    forged = copy.deepcopy(doc)
    node: Any = forged
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return _check(forged)


def test_forged_md4_transcripts_are_named(two_parts: bytes) -> None:
    doc = _doc(two_parts, aich=False)
    assert "do not make" in _forged(doc, ["hashset", 0], "00" * 16).problems[0][1]
    assert "marked verified" in _forged(doc, ["check", "computed"], "11" * 16).problems[0][1]
    assert "part 0's" in _forged(doc, ["check", "part"], 0).problems[0][1]
    assert "another" not in str(_forged(doc, ["item", "value"], "22" * 16).problems)
    assert _forged(doc, ["item", "value"], "22" * 16).problems
    assert "unreadable" in _forged(doc, ["check", "computed"], "zz").problems[0][1]


def test_forged_aich_transcripts_are_named(two_parts: bytes) -> None:
    doc = _doc(two_parts, aich=True)
    assert "AICH tree fails" in _forged(doc, ["aich", "master_hash"], "00" * 20).problems[0][1]
    assert "AICH tree fails" in _forged(doc, ["aich", "recovery", 0, 1], "00" * 20).problems[0][1]
    assert "AICH leaf" in _forged(doc, ["check", "offset"], 0).problems[0][1]
    assert "AICH leaf" in _forged(doc, ["check", "expected"], "33" * 20).problems[0][1]
    assert "AICH tree fails" in _forged(doc, ["file", "size"], 10).problems[0][1]
    assert "out of range" in _forged(doc, ["check", "part"], 5).problems[0][1]
    assert "unreadable AICH" in _forged(doc, ["aich", "recovery"], [["x", 1]]).problems[0][1]


def test_a_transcript_without_a_check_counts_nothing(two_parts: bytes) -> None:
    doc = _doc(two_parts, aich=False)
    doc["check"] = None
    assert _check(doc).checked == 0
