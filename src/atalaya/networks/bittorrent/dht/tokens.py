"""Write tokens for announce_peer (BEP 5): a keyed hash of the requester's IP.

The secret changes every `rotate_every` seconds and the previous one stays
valid, so a token handed out in a get_peers answer works for one to two
rotation periods (5 to 10 minutes by default, as BEP 5 suggests).
"""

from __future__ import annotations

import hashlib
import hmac
import random

TOKEN_LENGTH = 8
SECRET_LENGTH = 16


class TokenManager:
    def __init__(self, rng: random.Random, now: float, *, rotate_every: float = 300.0) -> None:
        if rotate_every <= 0:
            raise ValueError("rotate_every must be positive")
        self._rng = rng
        self.rotate_every = rotate_every
        self._current = self._new_secret()
        self._previous = self._new_secret()
        self._rotated_at = now

    def _new_secret(self) -> bytes:
        return self._rng.getrandbits(8 * SECRET_LENGTH).to_bytes(SECRET_LENGTH, "big")

    def _rotate(self, now: float) -> None:
        elapsed = now - self._rotated_at
        if elapsed < self.rotate_every:
            return
        if elapsed >= 2 * self.rotate_every:
            # Both secrets are stale: no token handed out before stays valid.
            self._previous = self._new_secret()
        else:
            self._previous = self._current
        self._current = self._new_secret()
        self._rotated_at = now

    @staticmethod
    def _token(secret: bytes, ip: str) -> bytes:
        return hashlib.blake2b(ip.encode(), key=secret, digest_size=TOKEN_LENGTH).digest()

    def token_for(self, ip: str, now: float) -> bytes:
        self._rotate(now)
        return self._token(self._current, ip)

    def verify(self, token: bytes, ip: str, now: float) -> bool:
        self._rotate(now)
        return any(
            hmac.compare_digest(token, self._token(secret, ip))
            for secret in (self._current, self._previous)
        )
