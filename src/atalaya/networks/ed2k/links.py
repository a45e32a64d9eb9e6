"""ed2k:// file links: `ed2k://|file|<name>|<size>|<hash>|/` and their optional fields.

Operators name eD2K files by link, and a link carries the one fact a hash
alone lacks: the size, which a probe needs to know where a file's last part
ends. The name is attacker-chosen text (URL-encoded); it is kept, bounded.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from atalaya.networks.ed2k.wire import Ed2kError

MAX_LINK: Final = 8192
MAX_SIZE: Final = 1 << 48  # 256 TiB: eMule's large-file limit is far below


@dataclass(frozen=True)
class Ed2kLink:
    name: str
    size: int
    file_hash: bytes
    # The file's AICH master hash when the link gives one (`|h=<base32>|`).
    aich: bytes | None = None


def parse_link(text: str) -> Ed2kLink:
    """The file named by an ed2k:// link; `Ed2kError` saying what is wrong otherwise."""
    text = text.strip()
    if len(text) > MAX_LINK:
        raise Ed2kError(f"an ed2k link of {len(text)} characters (limit {MAX_LINK})")
    if not text.lower().startswith("ed2k://|file|"):
        raise Ed2kError("an ed2k file link starts with ed2k://|file|")
    fields = text[len("ed2k://|file|") :].split("|")
    if len(fields) < 4 or fields[-1] not in ("/", ""):
        raise Ed2kError("expected ed2k://|file|NAME|SIZE|HASH|/")
    name, size_text, hash_text = fields[0], fields[1], fields[2]
    if not size_text.isascii() or not size_text.isdigit() or len(size_text) > 16:
        raise Ed2kError(f"link size {size_text[:20]!r} is not a number of bytes")
    size = int(size_text)
    if not 0 < size <= MAX_SIZE:
        raise Ed2kError(f"link size {size} is out of range")
    if len(hash_text) != 32 or any(c not in "0123456789abcdefABCDEF" for c in hash_text):
        raise Ed2kError("link hash is not 32 hex digits")
    aich = None
    for extra in fields[3:-1]:
        if extra[:2].lower() == "h=":
            aich = _aich(extra[2:])
    shown = unquote(name, errors="replace")[:500]
    return Ed2kLink(shown, size, bytes.fromhex(hash_text), aich)


def _aich(text: str) -> bytes | None:
    """An AICH master hash as eMule writes it in links: 32 base32 characters, 20 bytes.

    One that cannot be read is left out, as eMule does: the link still names
    the file, and only a hash read whole can be trusted.
    """
    if len(text) != 32 or not text.isascii():
        return None
    try:
        return base64.b32decode(text.upper())
    except binascii.Error:
        return None
