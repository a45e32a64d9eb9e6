"""`atalaya serve` as an operator starts it: a real process on a loopback port.

The refusal to serve an uninitialised store needs no server: it runs in this
process (tests/support/cli.py).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from atalaya.store import create_store_engine, upgrade
from tests.support.cli import run_atalaya
from tests.web.conftest import web_settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_serve_answers_on_the_port_it_was_given(tmp_path: Path) -> None:
    web_settings()  # skips (or fails under CI) without the installed assets
    url = f"sqlite:///{tmp_path / 'atalaya.db'}"
    engine: Engine = create_store_engine(url)
    upgrade(engine)
    engine.dispose()
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "atalaya.cli", "--db", url, "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ATALAYA_TILE_URL": "https://tiles.example/{z}/{x}/{y}.png"},
    )
    try:
        answer = None
        deadline = time.monotonic() + 30
        while answer is None and time.monotonic() < deadline and process.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/login", timeout=2)
            except httpx.TransportError:
                time.sleep(0.1)
        assert answer is not None, process.stderr.read() if process.stderr else ""
        assert answer.status_code == 200 and "Sign in" in answer.text
        assert (
            "img-src 'self' data: https://tiles.example"
            in answer.headers["content-security-policy"]
        )
        assert "server" not in answer.headers
    finally:
        process.terminate()
        try:
            _out, err = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            _out, err = process.communicate(timeout=15)
    assert f"serving on http://127.0.0.1:{port}/" in err


def test_serve_refuses_a_store_that_is_not_initialised(tmp_path: Path) -> None:
    done = run_atalaya("--db", f"sqlite:///{tmp_path / 'x.db'}", "serve")
    assert done.returncode == 2
    assert "atalaya init" in done.stderr
