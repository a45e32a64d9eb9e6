"""`atalaya serve` behind a TLS proxy: a real process on a loopback port."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from atalaya.audit.log import AuditQuery, read_records
from atalaya.store import create_store_engine, upgrade
from tests.support.cli import run_atalaya
from tests.web.conftest import web_settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_serve_trusts_only_the_proxy_it_is_told_of(tmp_path: Path) -> None:
    web_settings()  # skips (or fails under CI) without the installed assets
    url = f"sqlite:///{tmp_path / 'atalaya.db'}"
    engine = create_store_engine(url)
    upgrade(engine)
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "atalaya.cli",
            "--db",
            url,
            "serve",
            "--port",
            str(port),
            "--secure-cookies",
            "--forwarded-allow-ips",
            "127.0.0.1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "ATALAYA_FORWARDED_ALLOW_IPS"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        page = None
        deadline = time.monotonic() + 30
        while page is None and time.monotonic() < deadline and process.poll() is None:
            try:
                page = httpx.get(f"{base}/login", timeout=2)
            except httpx.TransportError:
                time.sleep(0.1)
        assert page is not None, process.stderr.read() if process.stderr else ""
        assert page.headers["strict-transport-security"] == "max-age=31536000"
        match = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert match
        # The login CSRF cookie is Secure: sent back by hand over this plain socket.
        answer = httpx.post(
            f"{base}/login",
            data={"username": "nobody", "password": "not the password", "csrf": match[1]},
            headers={"X-Forwarded-For": "100.64.0.7", "Cookie": f"atalaya_login_csrf={match[1]}"},
            timeout=10,
        )
        assert answer.status_code == 401
    finally:
        process.terminate()
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=15)
    with engine.connect() as conn:
        records = read_records(conn, AuditQuery())
    engine.dispose()
    assert [(r.fields.action, r.fields.client_address) for r in records] == [
        ("login_failed", "100.64.0.7")
    ]


def test_serve_refuses_a_bad_proxy_setting(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'atalaya.db'}"
    engine = create_store_engine(url)
    upgrade(engine)
    engine.dispose()
    done = run_atalaya("--db", url, "serve", "--forwarded-allow-ips", "x")
    assert done.returncode == 2 and "--forwarded-allow-ips" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
