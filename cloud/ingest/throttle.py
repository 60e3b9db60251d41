"""Per-facility token buckets: a gateway that floods the uplink is slowed to its share, so one
facility cannot starve the others of ingest. Alarms, heartbeats and gateway status are never
throttled (they are few, and they carry the police path and liveness); telemetry, events,
camera and retention reports are.

Each ingest worker keeps its own buckets: with N workers sharing a subscription a facility may
reach N times the rate, which the default leaves generous room for anyway."""

from __future__ import annotations

import time
from typing import Callable

from contracts.topics import Stream

NEVER_THROTTLED = frozenset({Stream.ALARM.value, Stream.HEARTBEAT.value, Stream.STATUS.value})
# Bounded memory whatever facility names arrive: past this many, every bucket starts full again.
MAX_BUCKETS = 100_000


class FacilityBuckets:
    """`allow(facility, stream)`: True if the message may go on, taking one token when throttled."""

    def __init__(self, rate_per_s: float, burst: float, clock: Callable[[], float] = time.monotonic):
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate = rate_per_s
        self.burst = float(burst)
        self.clock = clock
        self._buckets: dict[str, list[float]] = {}  # facility -> [tokens, last refill]

    def allow(self, facility: str, stream: str) -> bool:
        if stream in NEVER_THROTTLED:
            return True
        now = self.clock()
        bucket = self._buckets.get(facility)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._buckets.clear()
            bucket = self._buckets[facility] = [self.burst, now]
        else:
            bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return True
        return False
