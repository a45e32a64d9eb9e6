"""The HTTP side of stamping against small local servers that misbehave (127.0.0.1 only)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from atalaya.evidence.tsa_client import check_url, post_query
from atalaya.evidence.tsp import TsaError, TsaReplyTooLargeError, TsaUnreachableError


@pytest.fixture
def silent_server() -> Iterator[tuple[str, threading.Event]]:
    """Accepts connections, reads, and answers nothing until told to stop."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/tsa", stop
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()


@pytest.fixture
def trickle_server() -> Iterator[str]:
    """Answers 200 and then one byte every 0.1 s, without end (until the test is over)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(5)
    stop = threading.Event()

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            return
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/timestamp-reply\r\n\r\n")
            for _ in range(600):  # at most a minute
                if stop.is_set():
                    return
                try:
                    conn.sendall(b"\x30")
                except OSError:
                    return
                time.sleep(0.1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/tsa"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_a_tsa_that_never_answers_times_out(silent_server: tuple[str, threading.Event]) -> None:
    url, _ = silent_server
    started = time.monotonic()
    with pytest.raises(TsaUnreachableError, match="did not answer"):
        post_query(url, b"\x30\x00", timeout=1.0)
    assert time.monotonic() - started < 5


def test_a_tsa_that_trickles_is_cut_at_the_deadline(trickle_server: str) -> None:
    started = time.monotonic()
    with pytest.raises(TsaUnreachableError, match="took more than"):
        post_query(trickle_server, b"\x30\x00", timeout=1.0)
    assert time.monotonic() - started < 5


def test_a_long_reply_is_cut_at_the_bound(trickle_server: str) -> None:
    with pytest.raises(TsaReplyTooLargeError):
        post_query(trickle_server, b"\x30\x00", timeout=5.0, max_bytes=5)


def test_nobody_listening() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TsaUnreachableError, match="cannot be reached"):
        post_query(f"http://127.0.0.1:{port}/", b"\x30\x00", timeout=2.0)


@pytest.mark.parametrize("url", ["", "ftp://tsa.example/", "file:///etc/passwd", "tsa", "http://"])
def test_only_http_urls(url: str) -> None:
    with pytest.raises(TsaError):
        check_url(url)
