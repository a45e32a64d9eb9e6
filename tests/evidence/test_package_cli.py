"""`atalaya evidence export|verify` from the command line: one clear line when refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from atalaya.lab.tsa import LabTsa
from atalaya.signing import P12_ENV, P12_PASSWORD_ENV
from tests.evidence.package_world import make_case_world
from tests.support.cli import run_atalaya
from tests.support.pki import P12_PASSWORD, Pki, make_pki


@pytest.fixture(scope="module")
def tsa() -> Iterator[LabTsa]:
    with LabTsa() as running:
        yield running


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_export_and_verify_from_the_command_line(
    engine: Engine, tmp_path: Path, tsa: LabTsa, pki: Pki
) -> None:
    world = make_case_world(engine, tmp_path / "world", tsa)
    base = {
        "ATALAYA_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        P12_ENV: None,
        "ATALAYA_SIGN_PKCS11_LIB": None,
    }
    out = tmp_path / "case.zip"
    case = str(world.case_id)
    refused = run_atalaya("evidence", "export", case, "--out", str(out), "--as", "luis", env=base)
    assert refused.returncode != 0 and not out.exists()
    assert "--unsigned" in refused.stderr and refused.stderr.strip().count("\n") == 0

    signed_env = {**base, P12_ENV: str(pki.p12.path), P12_PASSWORD_ENV: P12_PASSWORD.decode()}
    done = run_atalaya(
        "evidence", "export", case, "--out", str(out), "--as", "luis",
        "--recipient", "Juzgado (sintético)", env=signed_env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "signed with PKCS#12" in done.stderr

    bundle = tmp_path / "cas.pem"
    bundle.write_bytes(pki.ca_pem.read_bytes() + tsa.ca_file.read_bytes())
    ok = run_atalaya("evidence", "verify", str(out), "--ca", str(bundle), env={})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "RESULT: todo lo comprobado se sostiene / everything checked holds" in ok.stdout
    assert "CORRECTO / HOLDS: firma" in ok.stdout

    again = run_atalaya(
        "evidence", "export", case, "--out", str(out), "--as", "luis", env=signed_env
    )
    assert again.returncode != 0 and "exists" in again.stderr

    plain = tmp_path / "plain.zip"
    unsigned = run_atalaya(
        "evidence", "export", case, "--out", str(plain), "--as", "luis", "--unsigned", env=base
    )
    assert unsigned.returncode == 0 and "NOT SIGNED" in unsigned.stderr
    bad = run_atalaya("evidence", "verify", str(plain), "--ca", str(bundle), "--json", env={})
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert not report["ok"]
    assert [p["en"] for p in report["problems"]] == [
        "the manifest is not signed (META-INF/manifest.sha256.p7s is missing)"
    ]


def test_verify_refuses_what_is_not_a_package(tmp_path: Path) -> None:
    path = tmp_path / "x.zip"
    path.write_bytes(b"not a zip at all")
    done = run_atalaya("evidence", "verify", str(path), env={})
    assert done.returncode == 1
    assert "package refused: not a ZIP file" in done.stdout
    missing = run_atalaya("evidence", "verify", str(tmp_path / "absent.zip"), env={})
    assert missing.returncode != 0 and "absent.zip" in missing.stderr
