"""The files of a lab folder, and reading its manifest.

Kept free of libtorrent so that `atalaya` starts where the lab extra is not
installed; only `lab up` needs it.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from atalaya.errors import AtalayaError

MANIFEST_NAME = "manifest.json"
HASH_SET_NAME = "hashset.csv"
GEO_DB_NAME = "geo.mmdb"
PID_NAME = "supervisor.pid"
FAILED_NAME = "failed.txt"
LOG_NAME = "supervisor.log"
SUPERVISOR_MODULE = "atalaya.lab.supervisor"
NETNS_TAG_NAME = "netns.tag"  # the namespace lab's tag (lab up --ed2k), for lab down
MANIFEST_VERSION = 1
DEFAULT_IP_PREFIX = "127.77.0"


def clear_outputs(lab_dir: Path) -> None:
    """Remove what a previous run left that would be mistaken for this one's."""
    for name in (MANIFEST_NAME, HASH_SET_NAME, GEO_DB_NAME, FAILED_NAME, PID_NAME):
        with contextlib.suppress(FileNotFoundError):
            (lab_dir / name).unlink()


def load_manifest(lab_dir: Path) -> dict[str, Any]:
    """The manifest of the lab in `lab_dir`; AtalayaError if there is none."""
    path = lab_dir / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AtalayaError(f"no lab manifest at {path}: start one with 'atalaya lab up'") from None
    except (OSError, ValueError) as exc:
        raise AtalayaError(f"cannot read lab manifest {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("manifest_version") != MANIFEST_VERSION:
        raise AtalayaError(f"{path} is not a lab manifest of this version")
    return data
