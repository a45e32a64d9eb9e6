"""`atalaya evidence` without a TSA or a CA: one clear line each."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from tests.support.cli import run_atalaya


def test_stamp_without_a_tsa_says_how_to_name_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'atalaya.db'}"
    assert run_atalaya("init", env={"ATALAYA_DATABASE_URL": url}).returncode == 0
    done = run_atalaya(
        "evidence", "stamp", env={"ATALAYA_DATABASE_URL": url, "ATALAYA_TSA_URL": None}
    )
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0
    assert "--tsa URL" in done.stderr and "ATALAYA_TSA_URL" in done.stderr


def test_verify_stamps_needs_the_ca(engine: Engine) -> None:
    env = {"ATALAYA_DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    done = run_atalaya("evidence", "verify-stamps", env=env)
    assert done.returncode != 0
    assert "--tsa-ca" in done.stderr and done.stderr.strip().count("\n") == 0


def test_bad_tsa_url_and_missing_ca_file(engine: Engine, tmp_path: Path) -> None:
    env = {"ATALAYA_DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    done = run_atalaya("evidence", "stamp", "--tsa", "ftp://x/", env=env)
    assert done.returncode != 0 and "http://" in done.stderr
    done = run_atalaya("evidence", "verify-stamps", "--tsa-ca", str(tmp_path / "no.pem"), env=env)
    assert done.returncode != 0 and "no.pem" in done.stderr
    assert done.stderr.strip().count("\n") == 0
