"""The probe's AICH path: one block against a trusted master hash, and every way back to MD4."""

from __future__ import annotations

import os
import random

from atalaya.lab.ed2k_peer import Behaviour, Ed2kResponder
from atalaya.networks.ed2k import aich
from atalaya.networks.ed2k import messages as m
from atalaya.networks.ed2k.aich import BLOCK_SIZE
from atalaya.networks.ed2k.hashing import PART_SIZE
from atalaya.networks.ed2k.probe import Ed2kProbe, Ed2kProbeResult

PEER_HASH = bytes(range(16))


def _content(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def _run(
    responder: Ed2kResponder, *, master: bytes | None, size: int | None = None
) -> Ed2kProbeResult[int]:
    probe: Ed2kProbe[int] = Ed2kProbe(
        "192.0.2.9",
        4662,
        responder.file_hash,
        file_size=len(responder.content) if size is None else size,
        user_hash=os.urandom(16),
        now=0.0,
        aich_master=master,
    )
    probe.connected(("127.0.0.1", 5000), 0.0, 0)
    for step in range(1, 10_000):
        if probe.done:
            break
        reply = responder.answer(probe.data_to_send())
        if not reply:
            probe.handle_timer(10_000.0)
            continue
        probe.receive_data(reply, float(step), step)
    result = probe.result
    assert result is not None
    return result


def _peer(content: bytes, behaviour: Behaviour = "honest") -> Ed2kResponder:
    return Ed2kResponder(content, behaviour, user_hash=PEER_HASH, port=4662)


def test_one_block_proves_a_peer_that_offers_aich() -> None:
    content = _content(2 * BLOCK_SIZE + 1000)
    peer = _peer(content)
    result = _run(peer, master=peer.master)
    assert result.proof and result.proof_kind == "aich_block", (result.error, result.aich_note)
    # The shortest block of the part: its last, 1,000 bytes.
    assert result.bytes_downloaded == 1000 and result.block_offset == 2 * BLOCK_SIZE
    assert result.block_digest == result.block_expected == aich.block_hash(content[-1000:])
    assert result.aich_version == 1 and len(result.aich_hashes) == 3


def test_of_two_parts_the_one_whose_last_block_is_shortest() -> None:
    content = _content(PART_SIZE + BLOCK_SIZE + 500, seed=2)
    peer = _peer(content)
    result = _run(peer, master=peer.master)
    assert result.proof and result.proof_kind == "aich_block"
    assert result.verified_part == 1 and result.bytes_downloaded == 500
    # Part 1's sibling (part 0's subtree) then its two blocks.
    assert [ident for ident, _ in result.aich_hashes] == [3, 5, 4]


def test_recovery_data_that_does_not_lead_to_the_master_falls_back_to_md4() -> None:
    content = _content(2 * BLOCK_SIZE + 1000, seed=3)
    peer = _peer(content, "aich_liar")
    result = _run(peer, master=peer.master)
    assert result.proof and result.proof_kind == "file_md4"
    assert result.aich_note is not None and "master hash" in result.aich_note
    assert result.bytes_downloaded == len(content)


def test_a_peer_with_another_master_hash_refuses_and_md4_decides() -> None:
    content = _content(2 * BLOCK_SIZE + 1000, seed=4)
    result = _run(_peer(content), master=bytes(20))
    assert result.proof and result.proof_kind == "file_md4"
    assert result.aich_note == "the peer refused the AICH request"


def test_a_liars_block_fails_its_leaf_hash() -> None:
    content = _content(2 * BLOCK_SIZE + 1000, seed=5)
    peer = _peer(content, "liar")
    result = _run(peer, master=peer.master)
    assert not result.proof and result.parts_failed == 1
    assert result.block_digest != result.block_expected


def test_without_a_trusted_master_hash_aich_is_not_asked_for() -> None:
    content = _content(2 * BLOCK_SIZE + 1000, seed=6)
    result = _run(_peer(content), master=None)
    assert result.proof and result.proof_kind == "file_md4" and result.aich_master is None


def test_a_peer_that_does_not_offer_aich_is_proven_by_md4() -> None:
    content = _content(2 * BLOCK_SIZE + 1000, seed=7)
    peer = _peer(content)
    original = peer.hello_answer

    def plain_hello() -> bytes:
        hello = m.decode(next(iter(peer.decoder.__class__().feed(original()))))
        assert isinstance(hello, m.Hello)
        tags = tuple(t for t in hello.tags if t.name != m.CT_EMULE_MISCOPTIONS1)
        return m.Hello(hello.user_hash, hello.client_id, hello.port, tags, answer=True).encode()

    peer.hello_answer = plain_hello  # type: ignore[method-assign]
    result = _run(peer, master=peer.master)
    assert result.proof and result.proof_kind == "file_md4"
    assert result.aich_note == "the peer does not offer AICH"


def test_a_file_of_one_block_is_proven_whole() -> None:
    content = _content(BLOCK_SIZE, seed=8)
    peer = _peer(content)
    result = _run(peer, master=peer.master)
    assert result.proof and result.proof_kind == "file_md4"
