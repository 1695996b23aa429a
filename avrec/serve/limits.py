"""Per-client request rate limits for ``avrec serve`` (``serve.rate_limit``, ``serve.rate_burst``).

A token bucket per client: ``rate`` tokens a second refill it up to ``burst``; a request
takes one, and a request that finds the bucket empty is answered 429 with ``Retry-After``.
The client is the peer address (not a header it sends, which it could vary at will). Behind a
reverse proxy on the same host, uvicorn replaces the peer address with the one in
``X-Forwarded-For`` (it trusts 127.0.0.1 by default; ``FORWARDED_ALLOW_IPS`` widens that), so
clients are still told apart.

Buckets live in the worker's memory: with ``--workers N`` each worker limits on its own, so
a client can get up to N times the rate. The table keeps the ``MAX_CLIENTS`` most recently
seen clients; one evicted starts again with a full bucket.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict

MAX_CLIENTS = 65536


class RateLimiter:
    """``allow(client)`` -> (allowed, seconds until a request would be allowed)."""

    def __init__(self, *, rate: float, burst: int = 0, clock=time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be above 0 (serve.rate_limit 0 means no limiter)")
        self.rate = float(rate)
        self.burst = float(burst if burst > 0 else max(1, math.ceil(rate)))
        self.clock = clock
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)

    def allow(self, client: str) -> tuple[bool, float]:
        now = self.clock()
        tokens, at = self.buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        ok = tokens >= 1.0
        if ok:
            tokens -= 1.0
        self.buckets[client] = (tokens, now)  # most recent last
        if len(self.buckets) > MAX_CLIENTS:
            self.buckets.popitem(last=False)
        return ok, 0.0 if ok else (1.0 - tokens) / self.rate


def client_key(scope) -> str:
    """The peer address (after uvicorn's trusted-proxy rewrite)."""
    client = scope.get("client")
    return client[0] if client else "unknown"
