"""What software made the package: the observers' versions and this code's own digest.

Atalaya runs from an editable checkout as often as from a wheel, and an
editable install's RECORD lists a `.pth` file, not the code. So the digest
taken is of the code that is actually imported: every file under the
`atalaya` package folder (sources, templates, data; `__pycache__` left
out), as `sha256sum` lines sorted by path, and the SHA-256 of those lines.
A reviewer builds or unpacks the release's wheel and runs `sha256sum` over
its `atalaya/` folder to compare. When the distribution was installed from
a wheel, the SHA-256 of its RECORD file is given as well.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import atalaya

MAX_FILES = 20_000


@cache
def package_files_digest() -> tuple[bytes, str, int]:
    """(`sha256sum` lines of the package's files, their SHA-256, the number of files)."""
    root = Path(atalaya.__file__).resolve().parent
    lines: list[str] = []
    for path in sorted(root.rglob("*")):
        if len(lines) >= MAX_FILES:
            break
        if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        relative = path.relative_to(root.parent).as_posix()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  {relative}\n")
    listing = "".join(sorted(lines)).encode("utf-8")
    return listing, hashlib.sha256(listing).hexdigest(), len(lines)


def _distribution() -> dict[str, object]:
    try:
        dist = importlib.metadata.distribution("atalaya")
    except importlib.metadata.PackageNotFoundError:
        return {"installed": False}
    record = dist.read_text("RECORD")
    direct = dist.read_text("direct_url.json") or "{}"
    try:
        editable = bool(json.loads(direct).get("dir_info", {}).get("editable", False))
    except (ValueError, AttributeError):
        editable = False
    return {
        "installed": True,
        "version": dist.version,
        "editable": editable,
        "record_sha256": None if record is None else hashlib.sha256(record.encode()).hexdigest(),
    }


def software_facts(observers: Sequence[str]) -> tuple[bytes, bytes]:
    """(software/software.json, software/files.sha256)."""
    listing, digest, count = package_files_digest()
    facts = {
        "observers": list(observers),
        "exporter": f"atalaya/{getattr(atalaya, '__version__', 'unknown')}",
        "distribution": _distribution(),
        "package_files": {"file": "software/files.sha256", "sha256": digest, "count": count},
        "note": (
            "package_files.sha256 is the SHA-256 of software/files.sha256: the digest of every "
            "file of the atalaya package that made this export"
        ),
    }
    body = (json.dumps(facts, sort_keys=True, indent=2) + "\n").encode()
    return body, listing
