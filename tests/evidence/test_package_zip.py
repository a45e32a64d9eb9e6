"""Hostile ZIPs are refused with one line each, and nothing read from one can crash the verifier."""

from __future__ import annotations

import io
import stat
import struct
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atalaya.evidence.package_manifest import ManifestError, make_manifest, parse_manifest
from atalaya.evidence.package_zip import (
    MAX_MEMBER_BYTES,
    MIMETYPE,
    MIMETYPE_NAME,
    PackageFormatError,
    read_package,
    safe_name,
)
from atalaya.evidence.verify_package import verify_package


def _zip(members: list[tuple[str | zipfile.ZipInfo, bytes]], mimetype: bool = True) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if mimetype:
            archive.writestr(MIMETYPE_NAME, MIMETYPE)
        for name, body in members:
            archive.writestr(name, body)
    return buffer.getvalue()


def test_a_plain_package_reads_back() -> None:
    files = read_package(_zip([("package.json", b"{}"), ("a/b.json", b"[]")]))
    assert files == {MIMETYPE_NAME: MIMETYPE, "package.json": b"{}", "a/b.json": b"[]"}


@pytest.mark.parametrize(
    "name",
    ["../evil.json", "/etc/passwd", "a/../../b", "a\\b", "C:/x", "a//b", "./a", "a/.", "é.json",
     "a\x00b", ""],
)  # fmt: skip
def test_path_traversal_and_odd_names_are_refused(name: str) -> None:
    assert not safe_name(name)
    if "\x00" in name:
        return  # zipfile cuts a name at NUL itself: "a\x00b" reads as "a"
    info = zipfile.ZipInfo("placeholder")
    data = bytearray(_zip([(info, b"x")]))
    # Write the hostile name into both headers: zipfile itself would clean some of them.
    raw = name.encode("utf-8")
    padded = raw.ljust(len("placeholder"), b"/") if len(raw) < 11 else raw[:11]
    hostile = bytes(data).replace(b"placeholder", padded)
    with pytest.raises(PackageFormatError, match=r"refused|not a ZIP|cannot be read"):
        read_package(hostile)


def test_duplicate_names_are_refused() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate it is asked to write
        data = _zip([("package.json", b"{}"), ("package.json", b"[]")])
    with pytest.raises(PackageFormatError, match=r"two members are named .package\.json."):
        read_package(data)


def test_a_zip_bomb_is_refused_before_it_inflates() -> None:
    data = _zip([("bomb.json", bytes(64 * 1024 * 1024))])
    assert len(data) < 200 * 1024
    with pytest.raises(PackageFormatError, match="zip bomb"):
        read_package(data)


def test_a_member_declaring_a_huge_size_is_refused() -> None:
    data = bytearray(_zip([("big.json", b"x" * 100)]))
    # Patch the uncompressed size in the central directory entry of big.json.
    central = data.rindex(b"PK\x01\x02")
    data[central + 24 : central + 28] = struct.pack("<I", MAX_MEMBER_BYTES + 1)
    with pytest.raises(PackageFormatError, match="declares"):
        read_package(bytes(data))


def test_a_member_longer_than_it_declares_is_refused() -> None:
    data = bytearray(_zip([("big.json", b"x" * 5000)]))
    central = data.rindex(b"PK\x01\x02")
    data[central + 24 : central + 28] = struct.pack("<I", 100)
    with pytest.raises(PackageFormatError, match=r"big\.json"):
        read_package(bytes(data))


def test_links_encrypted_members_and_damage_are_refused() -> None:
    link = zipfile.ZipInfo("link.json")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with pytest.raises(PackageFormatError, match="not a regular file"):
        read_package(_zip([(link, b"/etc/passwd")]))
    data = bytearray(_zip([("a.json", b"secret" * 100)]))
    for at in (6, data.rindex(b"PK\x01\x02") + 8):  # the flag bits, local and central
        data[at] |= 0x01
    with pytest.raises(PackageFormatError, match="encrypted"):
        read_package(bytes(data))
    damaged = bytearray(_zip([("a.json", b"0123456789" * 100)]))
    damaged[damaged.index(b"a.json") + 10] ^= 0xFF
    with pytest.raises(PackageFormatError, match=r"a\.json"):
        read_package(bytes(damaged))


def test_not_a_package() -> None:
    with pytest.raises(PackageFormatError, match="not a ZIP"):
        read_package(b"PK not really")
    with pytest.raises(PackageFormatError, match="mimetype"):
        read_package(_zip([("a.json", b"{}")], mimetype=False))
    report = verify_package(b"\x00" * 100)
    assert report.refused and not report.ok and len(report.problems) == 1


def test_manifest_round_trip_and_strictness() -> None:
    files = {"b.json": b"1", "a/c.txt": b"2", MIMETYPE_NAME: MIMETYPE}
    manifest = make_manifest(files)
    assert manifest.decode().splitlines()[0].endswith("  a/c.txt")
    assert set(parse_manifest(manifest)) == {"a/c.txt", "b.json"}
    for bad in (
        manifest[:-1],
        manifest + manifest,
        manifest.replace(b"  ", b" "),
        b"0" * 64 + b"  ../x\n",
        "é".encode() + manifest,
    ):
        with pytest.raises(ManifestError):
            parse_manifest(bad)


_BASE = _zip([("package.json", b'{"sightings": []}'), ("sightings/sightings.json", b"{}")])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(_BASE) - 1), st.integers(1, 255)), max_size=8))
def test_mutated_packages_give_a_report_never_an_exception(flips: list[tuple[int, int]]) -> None:
    data = bytearray(_BASE)
    for at, mask in flips:
        data[at] ^= mask
    report = verify_package(bytes(data))
    assert not report.ok  # unsigned at best


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_are_refused_with_a_typed_error(data: bytes) -> None:
    try:
        read_package(data)
    except PackageFormatError:
        return
