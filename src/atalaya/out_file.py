"""Writing an `--out` file whole or not at all.

Rows go to a hidden temporary file beside the target, which replaces the
target only once everything is written and flushed: a failed or interrupted
command (missing folder, a folder in the way, a full disk) leaves neither a
half file nor a stray temporary, and an older file of that name untouched.
The file is readable by its owner only: exports name addresses and hashes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

from atalaya.errors import AtalayaError

T = TypeVar("T")


def write_out_file(path: Path, write: Callable[[IO[str]], T]) -> T:
    """Call `write` on a text stream that becomes the file `path` if it returns.

    AtalayaError, one line naming `path`, when the file cannot be written;
    nothing is left behind then, nor when `write` raises.
    """
    if path.is_dir():
        raise AtalayaError(f"cannot write {path}: it is a folder; give a file name for --out")
    directory = path.parent
    if not directory.is_dir():
        raise AtalayaError(f"cannot write {path}: folder {directory} does not exist")
    try:
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise AtalayaError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as stream:
            result = write(stream)
            stream.flush()
            # A full disk may only show at fsync on some file systems.
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise AtalayaError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return result
