"""The evidence package's container: a plain ZIP written plainly, and read as if hostile.

Writing: the `mimetype` member first and stored (as ASiC containers do, so
`file` and `unzip -l` tell what the file is), every other member deflated,
names sorted, times fixed to the package's creation time.

Reading: a package comes back from outside (a court, a defence expert, a
mail attachment) and is read before anything in it is trusted. Nothing is
ever extracted to disk: members are read into memory, each bounded, so a
path-traversal name could do no harm; such names are refused all the same,
since a careless `unzip` of the same file would write outside its folder.
Refused with one `PackageFormatError` line each: more than MAX_MEMBERS
members, a member larger than MAX_MEMBER_BYTES or all of them together
above MAX_TOTAL_BYTES (declared or actually inflated), a compression ratio
above MAX_RATIO (a zip bomb), a name that is not a plain relative path of
safe characters, two members with the same name, encrypted members, links
and other non-regular files, and damaged members (CRC mismatch).
"""

from __future__ import annotations

import io
import re
import stat
import zipfile
import zlib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from atalaya.errors import AtalayaError

MIMETYPE_NAME = "mimetype"
MIMETYPE = b"application/vnd.atalaya.evidence-package+zip"
MAX_MEMBERS = 100_000
MAX_MEMBER_BYTES = 256 * 1024 * 1024
MAX_TOTAL_BYTES = 2 * 1024 * 1024 * 1024
MAX_PACKAGE_BYTES = 2 * 1024 * 1024 * 1024
MAX_RATIO = 200  # deflate of JSON reaches ~20; a bomb reaches 1000
RATIO_FLOOR = 1024 * 1024  # members smaller than this inflated are never a bomb
MAX_NAME = 240
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")
_READ_CHUNK = 1024 * 1024


class PackageFormatError(AtalayaError):
    """The file is not a package that may be read: one line saying why."""


def safe_name(name: str) -> bool:
    """Whether `name` is a relative path of plain components (no `..`, no leading `/`)."""
    return (
        len(name) <= MAX_NAME
        and _SAFE_NAME.fullmatch(name) is not None
        and all(part not in {".", ".."} and not part.endswith(".") for part in name.split("/"))
    )


def write_package(path: Path, files: Mapping[str, bytes], when: datetime) -> None:
    """Write `files` (name -> bytes) as the package at `path`, `mimetype` first."""
    for name in files:
        if not safe_name(name):
            raise PackageFormatError(f"refusing to write a member named {name!r}")
    stamp = (max(when.year, 1980), when.month, when.day, when.hour, when.minute, when.second)
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo(MIMETYPE_NAME, stamp)
        info.compress_type = zipfile.ZIP_STORED
        archive.writestr(info, MIMETYPE)
        for name in sorted(files):
            if name == MIMETYPE_NAME:
                continue
            info = zipfile.ZipInfo(name, stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            # Level 1: small JSON members compress nearly as well, in a fraction of the time.
            archive.writestr(info, files[name], compresslevel=1)


def _kind_of(info: zipfile.ZipInfo) -> int:
    return (info.external_attr >> 16) & 0o170000


def _check_member(info: zipfile.ZipInfo, seen: set[str]) -> None:
    name = info.filename
    shown = ascii(name)[:120]
    if not safe_name(name):
        raise PackageFormatError(
            f"refused: member name {shown} is not a plain relative path "
            "(absolute, '..', backslash or odd characters)"
        )
    if name in seen:
        raise PackageFormatError(f"refused: two members are named {shown}")
    seen.add(name)
    if info.flag_bits & 0x1:
        raise PackageFormatError(f"refused: member {shown} is encrypted")
    kind = _kind_of(info)
    if kind not in (0, stat.S_IFREG):
        raise PackageFormatError(f"refused: member {shown} is not a regular file (a link?)")
    if info.file_size > MAX_MEMBER_BYTES:
        raise PackageFormatError(
            f"refused: member {shown} declares {info.file_size} bytes, more than {MAX_MEMBER_BYTES}"
        )
    if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise PackageFormatError(
            f"refused: member {shown} inflates {info.file_size // max(info.compress_size, 1)} "
            f"times (a zip bomb); at most {MAX_RATIO}"
        )


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    shown = ascii(info.filename)[:120]
    parts: list[bytes] = []
    total = 0
    try:
        with archive.open(info) as stream:
            while True:
                chunk = stream.read(_READ_CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                # The header may lie about the size: the bound is on what inflates.
                if total > info.file_size or total > MAX_MEMBER_BYTES:
                    raise PackageFormatError(
                        f"refused: member {shown} inflates beyond its declared size"
                    )
                parts.append(chunk)
    except zipfile.BadZipFile as exc:
        raise PackageFormatError(f"member {shown} is damaged: {str(exc)[:200]}") from exc
    except (NotImplementedError, RuntimeError, EOFError, OSError, ValueError, zlib.error) as exc:
        raise PackageFormatError(f"member {shown} cannot be read: {str(exc)[:200]}") from exc
    return b"".join(parts)


def read_package(data: bytes) -> dict[str, bytes]:
    """Every member of the package in `data`, by name; PackageFormatError when refused."""
    if len(data) > MAX_PACKAGE_BYTES:
        raise PackageFormatError(f"refused: the package is larger than {MAX_PACKAGE_BYTES} bytes")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except Exception as exc:  # zipfile raises BadZipFile, NotImplementedError, struct.error…
        raise PackageFormatError(f"not a ZIP file: {str(exc)[:200]}") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise PackageFormatError(f"refused: {len(infos)} members, more than {MAX_MEMBERS}")
        seen: set[str] = set()
        declared = 0
        for info in infos:
            _check_member(info, seen)
            declared += info.file_size
            if declared > MAX_TOTAL_BYTES:
                raise PackageFormatError(
                    f"refused: the members declare more than {MAX_TOTAL_BYTES} bytes in all"
                )
        members = {info.filename: _read_member(archive, info) for info in infos}
    if members.get(MIMETYPE_NAME) != MIMETYPE:
        raise PackageFormatError(
            f"not an Atalaya evidence package: no 'mimetype' member saying {MIMETYPE.decode()}"
        )
    return members
