"""The audit log as someone with write access to the database would forge it.

He can append a record that extends the head (the triggers allow exactly
that) but has no key file: `verify` must point at his record. The rest of
the keyed chain's tests (rotation, rewritten chains, key files) are in
tests/audit/test_keyed_chain.py, whose helpers this uses.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from atalaya.audit import verify
from tests.audit.test_keyed_chain import _append_forged, _views, key_file

__all__ = ["key_file"]


def test_a_record_appended_with_database_access_is_detected(engine: Engine, key_file: Path) -> None:
    """An unkeyed chain accepted "carla viewed lead 2 from 10.0.0.99" appended by hand."""
    _views(engine, 3)
    assert verify(engine).ok
    forged = _append_forged(engine, {}, None)
    result = verify(engine)
    assert not result.ok and result.first_bad_seq == forged
    assert "made without the key" in (result.reason or "")
