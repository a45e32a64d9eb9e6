"""The evidence package end to end: a real case exported, checked offline, by us and by openssl."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from atalaya.evidence.package import PackageError, export_case, seal
from atalaya.evidence.package_manifest import MANIFEST_NAME, SIGNATURE_NAME
from atalaya.evidence.package_zip import MIMETYPE_NAME, read_package, write_package
from atalaya.evidence.tsp import load_ca_file
from atalaya.evidence.verify_package import Report, verify_package
from atalaya.lab.tsa import LabTsa
from atalaya.signing import open_signer, sign_detached
from tests.evidence.package_world import RECIPIENT, CaseWorld, make_case_world
from tests.support.pki import Pki, make_pki

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
DOCUMENT = ("solicitud-588-ter-k.txt", "Solicitud sintética de prueba\n".encode())


@pytest.fixture(scope="module")
def tsa() -> Iterator[LabTsa]:
    with LabTsa() as running:
        yield running


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _export(engine: Engine, world: CaseWorld, pki: Pki, out: Path) -> bytes:
    export_case(
        engine,
        world.user,
        world.case_id,
        out,
        key=pki.p12,
        recipient=RECIPIENT,
        now=NOW,
        documents=[DOCUMENT],
    )
    return out.read_bytes()


def _verify(data: bytes, pki: Pki, tsa: LabTsa) -> Report:
    roots = load_ca_file(tsa.ca_file.read_bytes(), "tsa")
    return verify_package(data, ca=[pki.cert], tsa_ca=roots)


def test_export_then_verify_holds(engine: Engine, tmp_path: Path, tsa: LabTsa, pki: Pki) -> None:
    world = make_case_world(engine, tmp_path / "world", tsa)
    data = _export(engine, world, pki, tmp_path / "case.zip")
    report = _verify(data, pki, tsa)
    assert report.ok, "\n".join(report.lines())
    print("\n".join(report.lines()))
