"""A toy peer: answers ASKs for the files it holds, on 127.0.0.0/8, at a port the system picks.

It runs in a thread of its own (the observer under test owns the event loop),
answers until stopped, and drops whatever does not decode.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterable
from types import TracebackType

from tests.support.toynet.codec import MAX_DATAGRAM, Ask, CodecError, Have, Nope, decode, encode

POLL_S = 0.05  # how often the serving loop looks at its stop flag
STOP_TIMEOUT_S = 5.0


class ToyPeer:
    def __init__(
        self, ip: str, files: Iterable[bytes], client: str = "toypeer/1.0", *, liar: bool = False
    ) -> None:
        self.files = {hashlib.sha256(f).digest(): f for f in files}
        self.client = client
        # A liar says it has every file and sends bytes that are none of them.
        self.liar = liar
        self.asked = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((ip, 0))
        self._sock.settimeout(POLL_S)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"toy-peer-{ip}", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        ip, port = self._sock.getsockname()[:2]
        return str(ip), int(port)

    def __enter__(self) -> ToyPeer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(STOP_TIMEOUT_S)
        self._sock.close()
        assert not self._thread.is_alive(), "the toy peer did not stop"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                datagram, sender = self._sock.recvfrom(MAX_DATAGRAM + 1)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                message = decode(datagram)
            except CodecError:
                continue
            if not isinstance(message, Ask):
                continue
            self.asked += 1
            held = b"not the file" if self.liar else self.files.get(message.digest)
            answer = (
                Have(message.txid, message.digest, self.client, held)
                if held is not None
                else Nope(message.txid, message.digest)
            )
            self._sock.sendto(encode(answer), sender)
