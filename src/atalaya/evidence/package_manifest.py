"""The package's manifest: the SHA-256 of every member, in `sha256sum` format.

One line per member, `<64 lower-case hex>  <name>\\n`, sorted by name
(byte order), ASCII: `sha256sum -c META-INF/manifest.sha256` run in the
unpacked folder checks it, and so does a three-line python3 loop. The
manifest lists every member except itself, its signature and `mimetype`
(which only says what the file is). The detached CMS signature covers the
manifest's exact bytes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from atalaya.evidence.package_zip import MIMETYPE_NAME, safe_name

MANIFEST_NAME = "META-INF/manifest.sha256"
SIGNATURE_NAME = "META-INF/manifest.sha256.p7s"
NOT_LISTED = frozenset({MANIFEST_NAME, SIGNATURE_NAME, MIMETYPE_NAME})
_LINE = re.compile(r"([0-9a-f]{64})  (\S+)")


class ManifestError(ValueError):
    """A manifest that is not exactly the format above."""


def make_manifest(files: Mapping[str, bytes]) -> bytes:
    lines = [
        f"{hashlib.sha256(files[name]).hexdigest()}  {name}\n"
        for name in sorted(files)
        if name not in NOT_LISTED
    ]
    return "".join(lines).encode("ascii")


def parse_manifest(data: bytes) -> dict[str, str]:
    """{member name: hex digest}; ManifestError on any line not in the format."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ManifestError("the manifest is not ASCII text") from exc
    if text and not text.endswith("\n"):
        raise ManifestError("the manifest's last line has no newline")
    digests: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = _LINE.fullmatch(line)
        if match is None or not safe_name(match.group(2)):
            raise ManifestError(f"manifest line {number} is not '<sha256>  <name>'")
        name = match.group(2)
        if name in digests:
            raise ManifestError(f"manifest line {number} lists {name} a second time")
        digests[name] = match.group(1)
    return digests
