"""A token bucket: `rate` tokens a second, holding at most `burst`. Pure (the clock is passed in),
shared by every side that paces or throttles: the cloud's per-facility telemetry throttle, the
gateway's pacing of its telemetry backlog and its live-view byte budget."""

from __future__ import annotations

import time
from typing import Callable


class TokenBucket:
    __slots__ = ("rate", "burst", "tokens", "at", "clock")

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        if rate <= 0 or burst <= 0:
            raise ValueError("a token bucket needs a positive rate and burst")
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self.tokens = self.burst  # full at the start
        self.at = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def take(self, n: float = 1.0) -> bool:
        """Take `n` tokens if there are that many; False (and nothing taken) if not."""
        self._refill()
        if n > self.tokens:
            return False
        self.tokens -= n
        return True

    def wait_s(self, n: float = 1.0) -> float:
        """Seconds until `n` tokens will be there (0 if they are now)."""
        self._refill()
        return max(0.0, (n - self.tokens) / self.rate)
