"""Per-facility token buckets: a gateway that floods the uplink with telemetry is held to its
share, so one facility cannot starve the others of ingest. Only telemetry is throttled: alarms
never, and neither events, camera reports, heartbeats nor status, which are few and each a fact
someone may need. A throttled batch is acknowledged and counted, not stored: the consumer cannot
hold it without holding the broker's in-flight window for every facility. A throttled message
costs a split of its topic and a counter in memory, before any parsing; what a flood costs is
what its burst lets through, to be parsed and stored like any other message. So the burst is
sized by what a real gateway sends (one batch a second: cloud.config), not generously: a
generous burst lets a flood of a few seconds be stored whole.

Each ingest worker keeps its own buckets, with its share of the settings (cloud.ingest.workers):
the workers split every facility's messages about evenly."""

from __future__ import annotations

import time
from typing import Callable

from contracts.topics import Stream

THROTTLED = frozenset({Stream.TELEMETRY.value})
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
        if stream not in THROTTLED:
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
