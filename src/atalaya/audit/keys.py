"""The audit chain's keys, kept outside the database.

Without a key, anyone with write access to the database can append a record
and its SHA-256 (the triggers check only that it extends the chain), and
`verify` cannot tell. With a key, every record's hash is an HMAC-SHA256 under
the key in force, and a record made without the key does not verify.

The key file (named by ATALAYA_AUDIT_KEY_FILE) holds one key per line, 64
hex digits (32 random bytes), oldest first; `#` starts a comment. The last
key is the one in force; earlier ones are kept so that the records they
signed still verify. Rotating appends a key (`atalaya audit rotate-key`), and
the chain records each change of key as an `audit_key` record naming the new
key by its id (an HMAC of a fixed text under the key: it names the key
without revealing it). The file must be readable by the application only:
a key that others can read signs forgeries as well as records.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from atalaya.errors import AtalayaError

AUDIT_KEY_FILE_ENV = "ATALAYA_AUDIT_KEY_FILE"
KEY_BYTES = 32
MAX_KEY_FILE_BYTES = 1 << 16
_KEY_ID_TEXT = b"atalaya audit key id"


class AuditKeyError(AtalayaError):
    """A key file that cannot be used: missing, unreadable, too open, or malformed."""


@dataclass(frozen=True)
class AuditKey:
    secret: bytes

    @property
    def id(self) -> str:
        """16 hex digits naming this key in the chain's `audit_key` records."""
        return hmac.new(self.secret, _KEY_ID_TEXT, hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class Keyring:
    """The keys of a key file, oldest first; the last is in force."""

    keys: tuple[AuditKey, ...]

    @property
    def current(self) -> AuditKey:
        return self.keys[-1]

    def index(self, key_id: str) -> int | None:
        """Where the key named `key_id` is in the file (0 the oldest), or None."""
        for i, key in enumerate(self.keys):
            if key.id == key_id:
                return i
        return None


def parse_keyring(text: str, source: str = "the audit key file") -> Keyring:
    """The keys written in `text`; AuditKeyError names the first bad line."""
    keys: list[AuditKey] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            secret = bytes.fromhex(line)
        except ValueError:
            secret = b""
        if len(secret) != KEY_BYTES:
            raise AuditKeyError(
                f"{source}, line {number}: a key is {2 * KEY_BYTES} hex digits "
                "('atalaya audit rotate-key' writes one)"
            )
        keys.append(AuditKey(secret))
    if not keys:
        raise AuditKeyError(f"{source} holds no key ('atalaya audit rotate-key' writes one)")
    if len({k.id for k in keys}) != len(keys):
        raise AuditKeyError(f"{source} holds the same key twice")
    return Keyring(tuple(keys))


def load_keyring(path: Path) -> Keyring:
    """The key file at `path`, refused when others may read it or anyone else write it."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise AuditKeyError(f"audit key file {path} is not a regular file")
        if info.st_mode & (stat.S_IRWXO | stat.S_IWGRP):
            raise AuditKeyError(
                f"audit key file {path} can be read or written by others: chmod 600 it"
            )
        if info.st_size > MAX_KEY_FILE_BYTES:
            raise AuditKeyError(f"audit key file {path} is larger than a key file can be")
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditKeyError(f"cannot read audit key file {path}: {exc}") from None
    return parse_keyring(text, f"audit key file {path}")


_cache: dict[tuple[str, int, int, int], Keyring] = {}


def configured_keyring() -> Keyring | None:
    """The keys of the file ATALAYA_AUDIT_KEY_FILE names, or None when it names none.

    Read again whenever the file changes, so a rotation reaches running
    processes at their next record.
    """
    name = os.environ.get(AUDIT_KEY_FILE_ENV)
    if not name:
        return None
    path = Path(name)
    try:
        info = path.stat()
    except OSError as exc:
        raise AuditKeyError(
            f"cannot read audit key file {path} ({AUDIT_KEY_FILE_ENV}): {exc}"
        ) from None
    key = (str(path), info.st_ino, info.st_mtime_ns, info.st_size)
    found = _cache.get(key)
    if found is None:
        found = load_keyring(path)
        _cache.clear()
        _cache[key] = found
    return found


def append_new_key(path: Path, now: datetime) -> AuditKey:
    """Draw a key and append it to the key file (created readable by its owner only)."""
    key = AuditKey(secrets.token_bytes(KEY_BYTES))
    if path.exists() and path.stat().st_size > 0:
        load_keyring(path)  # refuse to add to a file that is unusable already
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="ascii") as stream:
        stream.write(f"# {key.id} added {now.isoformat()}\n{key.secret.hex()}\n")
        stream.flush()
        os.fsync(stream.fileno())
    return key
