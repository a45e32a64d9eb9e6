"""What tests of namespace labs share: skip here without root or the programs,
fail under CI, where they are required (as tests/conftest.py does for PostgreSQL)."""

from __future__ import annotations

import os
import shutil

import pytest

from atalaya.lab.netns import NetnsError, lab_links, lab_namespaces, require_netns


def require_netns_here(*programs: str) -> None:
    """Skip the test (fail it under CI) unless namespace labs and `programs` can run."""
    try:
        require_netns()
        for program in programs:
            if shutil.which(program) is None:
                raise NetnsError(f"{program} is not installed: run scripts/setup.sh")
    except NetnsError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (namespace labs are required under CI)")
        pytest.skip(str(exc))


def assert_gone(tag: str) -> None:
    """Nothing of lab run `tag` is left: no namespace, no link."""
    assert lab_namespaces(tag) == []
    assert lab_links(tag) == []
