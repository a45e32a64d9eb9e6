"""The eD2K file hash: MD4 over 9,728,000-byte parts, computed incrementally.

A file of less than one part hashes to the MD4 of its bytes. Otherwise the
hash is the MD4 of the concatenated MD4s of its parts ("part hashes").

A size that is an exact multiple of the part size is the classic edge case.
eMule and aMule (and RHash's `--ed2k`, which says it follows eMule) then add
one more part hash, the MD4 of an empty part (31d6cfe0…), at the end: a file
of exactly one part has two part hashes and its hash is
MD4(MD4(part) + MD4(b"")). The table of examples in aMule's
src/KnownFile.cpp (`CKnownFile::SetFileSize`, taken from eMule) marks that
hash as the "*special part hash*" and gives the part-hash count as
size // PARTSIZE + 1 for every size of at least one part. Later eDonkey2000
clients dropped the extra hash, but the eD2K network as it lives today is
eMule and aMule, so that is the hash this module computes: it is the one
their servers, Kad and ed2k:// links carry.
"""

from __future__ import annotations

from typing import Final

from Crypto.Hash import MD4

PART_SIZE: Final = 9_728_000
DIGEST_SIZE: Final = 16

# MD4 of nothing: the part hash eMule appends after an exact multiple of PART_SIZE.
EMPTY_PART_HASH: Final = bytes.fromhex("31d6cfe0d16ae931b73c59d7e0c089c0")


class Ed2kHasher:
    """Incremental eD2K hash: feed bytes in any chunking, then take `digest()`.

    Memory stays bounded: one MD4 state for the current part and one over
    the part hashes so far, whatever the file size.
    """

    def __init__(self) -> None:
        self._part = MD4.new()  # noqa: S303 - eD2K is defined on MD4: an identifier, not a defence
        self._part_filled = 0
        self._parts_done = 0
        self._outer = MD4.new()  # noqa: S303 - eD2K is defined on MD4: an identifier, not a defence
        self._length = 0

    @property
    def length(self) -> int:
        """Bytes fed so far."""
        return self._length

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        self._length += len(view)
        while view:
            if self._part_filled == PART_SIZE:
                self._finish_part()
            take = min(len(view), PART_SIZE - self._part_filled)
            self._part.update(view[:take])
            self._part_filled += take
            view = view[take:]

    def _finish_part(self) -> None:
        self._outer.update(self._part.digest())
        self._parts_done += 1
        self._part = MD4.new()  # noqa: S303 - eD2K is defined on MD4: an identifier, not a defence
        self._part_filled = 0

    def digest(self) -> bytes:
        """The eD2K hash of everything fed so far (feeding may go on afterwards)."""
        if self._parts_done == 0 and self._part_filled < PART_SIZE:
            result: bytes = self._part.digest()
            return result
        outer = self._outer.copy()
        # A full last part is followed by the empty part: see the module docstring.
        outer.update(self._part.digest())
        if self._part_filled == PART_SIZE:
            outer.update(EMPTY_PART_HASH)
        result = outer.digest()
        return result

    def hexdigest(self) -> str:
        return self.digest().hex()


def ed2k_hash(data: bytes | bytearray | memoryview) -> bytes:
    """The eD2K hash of `data` in one call."""
    hasher = Ed2kHasher()
    hasher.update(data)
    return hasher.digest()
