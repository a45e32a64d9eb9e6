"""Token buckets, per remote IP and overall, driven by the caller's `now`.

Politeness: libtorrent ignores a source IP for minutes once it sends about 50
messages in 10 seconds, and every node deserves the same care. The same class
also caps what we accept from any one IP, so a flood cannot keep us busy.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

# Float refills can land a hair under a whole token at the instant wait_time named.
_EPS = 1e-9


class TokenBucket:
    """`rate` tokens per second, holding at most `burst`; starts full."""

    __slots__ = ("_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = now

    def _refill(self, now: float) -> None:
        # A clock that goes backwards must not mint tokens nor lose them.
        if now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def available(self, now: float) -> float:
        self._refill(now)
        return self._tokens

    def wait_time(self, now: float, cost: float = 1.0) -> float:
        """Seconds until `cost` tokens are there (0 if they are now)."""
        self._refill(now)
        missing = cost - self._tokens
        return 0.0 if missing <= _EPS else missing / self.rate

    def take(self, now: float, cost: float = 1.0) -> bool:
        if self.wait_time(now, cost) > 0:
            return False
        self._tokens = max(0.0, self._tokens - cost)
        return True

    def full(self, now: float) -> bool:
        self._refill(now)
        return self._tokens >= self.burst


@dataclass(frozen=True)
class RateLimit:
    """Messages per second and the burst allowed, per remote IP and in total."""

    per_ip_rate: float
    per_ip_burst: float
    total_rate: float
    total_burst: float


class RateLimiter:
    """A bucket per remote IP (at most `max_tracked`) and one for everything.

    When more IPs are tracked than allowed, full (idle) buckets are dropped
    first; if none is idle, the least recently used one goes.
    """

    def __init__(self, limit: RateLimit, now: float, *, max_tracked: int = 4096) -> None:
        self.limit = limit
        self.max_tracked = max_tracked
        self._total = TokenBucket(limit.total_rate, limit.total_burst, now)
        self._per_ip: OrderedDict[str, TokenBucket] = OrderedDict()

    def _bucket(self, ip: str, now: float) -> TokenBucket:
        bucket = self._per_ip.get(ip)
        if bucket is not None:
            self._per_ip.move_to_end(ip)
            return bucket
        if len(self._per_ip) >= self.max_tracked:
            self._evict(now)
        bucket = TokenBucket(self.limit.per_ip_rate, self.limit.per_ip_burst, now)
        self._per_ip[ip] = bucket
        return bucket

    def _evict(self, now: float) -> None:
        idle = [ip for ip, b in self._per_ip.items() if b.full(now)]
        for ip in idle:
            del self._per_ip[ip]
        if len(self._per_ip) >= self.max_tracked:
            self._per_ip.popitem(last=False)

    def wait_time(self, ip: str, now: float) -> float:
        """Seconds until one message to or from `ip` is allowed."""
        per_ip = self._per_ip.get(ip)
        own = 0.0 if per_ip is None else per_ip.wait_time(now)
        return max(own, self._total.wait_time(now))

    def allow(self, ip: str, now: float) -> bool:
        """Take one token from `ip`'s bucket and the total, or neither."""
        bucket = self._bucket(ip, now)
        if bucket.wait_time(now) > 0 or self._total.wait_time(now) > 0:
            return False
        bucket.take(now)
        self._total.take(now)
        return True

    def allow_total(self, now: float) -> bool:
        """Take one token from the overall bucket only."""
        return self._total.take(now)

    def tracked(self) -> int:
        return len(self._per_ip)
