"""The hash algorithms Atalaya knows, their digest sizes and their text form.

Names are the column names of the CSV format and of `atalaya hashsets
fingerprint`, and the `algorithm` values stored in `reference_hash`.
"""

from __future__ import annotations

import re
from typing import Final

MD5: Final = "md5"
SHA1: Final = "sha1"
SHA256: Final = "sha256"
ED2K: Final = "ed2k"  # eD2K file hash (MD4 of the MD4s of 9,728,000-byte chunks)
BTIH: Final = "btih"  # BitTorrent v1 info-hash (SHA-1 of the info dictionary)
BTIH2: Final = "btih2"  # BitTorrent v2 info-hash (SHA-256 of the info dictionary)
BTV2_ROOT: Final = "btv2_root"  # BEP 52 per-file merkle root ("pieces root")
BTV1_PREFIX: Final = "btv1_"  # btv1_<piece size>: SHA-1 of a file's first piece

# Power-of-two piece sizes for which `btv1_<size>` fingerprints are computed.
BTV1_PIECE_SIZES: Final = tuple(1 << n for n in range(14, 25))  # 16 KiB … 16 MiB

DIGEST_SIZES: Final[dict[str, int]] = {
    MD5: 16,
    SHA1: 20,
    SHA256: 32,
    ED2K: 16,
    BTIH: 20,
    BTIH2: 32,
    BTV2_ROOT: 32,
    **{f"{BTV1_PREFIX}{size}": 20 for size in BTV1_PIECE_SIZES},
}

# The small integer each algorithm is stored as in `reference_digest`.
# Stored values: never renumber; a new algorithm takes a new code.
CODES: Final[dict[str, int]] = {
    MD5: 1,
    SHA1: 2,
    SHA256: 3,
    ED2K: 4,
    BTIH: 5,
    BTIH2: 6,
    BTV2_ROOT: 7,
    # btv1_<2**n>: 100 + n (16 KiB is 114, 16 MiB is 124).
    **{f"{BTV1_PREFIX}{size}": 100 + size.bit_length() - 1 for size in BTV1_PIECE_SIZES},
}
NAMES_BY_CODE: Final[dict[int, str]] = {code: name for name, code in CODES.items()}

# The order in which a record's hashes are preferred as its identity.
STRENGTH_ORDER: Final = (SHA256, SHA1, BTV2_ROOT, MD5, ED2K, BTIH2, BTIH)

# A plain list line of this many hex digits holds this algorithm. 32 digits
# could also be eD2K: lists of eD2K hashes are imported with --algorithm ed2k.
ALGORITHM_BY_HEX_LENGTH: Final = {32: MD5, 40: SHA1, 64: SHA256}

_HEX = re.compile(r"[0-9a-fA-F]*")


class HashFormatError(ValueError):
    """A hash in text form is not a valid digest of the named algorithm."""


def is_known(algorithm: str) -> bool:
    return algorithm in DIGEST_SIZES


def parse_hex(algorithm: str, text: str) -> bytes:
    """The raw digest for `text`, or HashFormatError saying what is wrong."""
    size = DIGEST_SIZES.get(algorithm)
    if size is None:
        raise HashFormatError(f"unknown hash algorithm {algorithm!r}")
    text = text.strip()
    if len(text) != 2 * size:
        raise HashFormatError(
            f"{algorithm} must be {2 * size} hex digits, got {len(text)} characters"
        )
    if not _HEX.fullmatch(text):
        raise HashFormatError(f"{algorithm} has characters that are not hex digits: {text!r}")
    return bytes.fromhex(text)


def infer_algorithm(text: str) -> str:
    """The algorithm a bare hex hash most likely is, from its length."""
    text = text.strip()
    algorithm = ALGORITHM_BY_HEX_LENGTH.get(len(text))
    if algorithm is None:
        raise HashFormatError(
            f"cannot tell the algorithm of a {len(text)}-character hash "
            "(expected 32 for MD5, 40 for SHA-1, 64 for SHA-256)"
        )
    if not _HEX.fullmatch(text):
        raise HashFormatError(f"hash has characters that are not hex digits: {text!r}")
    return algorithm


def parse_file_key(key: str) -> tuple[str, bytes] | None:
    """(algorithm, digest) of a key "algorithm:hex"; None if it is not one."""
    algorithm, sep, text = key.partition(":")
    size = DIGEST_SIZES.get(algorithm)
    if not sep or size is None or len(text) != 2 * size or not _HEX.fullmatch(text):
        return None
    return algorithm, bytes.fromhex(text)


def file_key(hashes: dict[str, bytes]) -> str:
    """A record's stable identity: "algorithm:hex" of its strongest hash."""
    for algorithm in STRENGTH_ORDER:
        if algorithm in hashes:
            return f"{algorithm}:{hashes[algorithm].hex()}"
    algorithm = min(hashes)
    return f"{algorithm}:{hashes[algorithm].hex()}"


# A BitTorrent info-hash's kind, by its size: the two are told apart by
# nothing else, in the DHT, on trackers and in stored sightings alike.
INFOHASH_KINDS: Final = {DIGEST_SIZES[BTIH]: BTIH, DIGEST_SIZES[BTIH2]: BTIH2}


def infohash_kind(infohash: bytes) -> str:
    """BTIH for a 20-byte info-hash, BTIH2 for a 32-byte one, else HashFormatError."""
    kind = INFOHASH_KINDS.get(len(infohash))
    if kind is None:
        raise HashFormatError(f"an info-hash is 20 or 32 bytes, got {len(infohash)}")
    return kind
