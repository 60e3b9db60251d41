"""Per-facility token buckets: a gateway that floods the uplink with telemetry is held to its
share, so one facility cannot starve the others of ingest. Only telemetry is throttled: alarms
never, and neither events, camera reports, heartbeats nor status, which are few and each a fact
someone may need. A throttled batch is counted, not stored, and acknowledged with the messages
around it: not held (that would hold the broker's in-flight window for every facility), but not
ahead of them either (`Throttled` goes through the writer's queue). Mosquitto finds the message a
PUBACK names by walking its in-flight list from the oldest: a throttled message acknowledged at
once, behind up to 1,000 older ones waiting for their commit, cost the broker about 120 us, six
times a stored message (bench/ingest.py). In turn, it costs a topic split, a counter and a place
in a batch; what a flood costs is what its burst lets through, parsed and stored like any other.
So the burst is sized by what a real gateway sends (one batch a second: an hour of them, see
cloud.config), for the whole cloud, not per worker.

Each ingest worker keeps its own buckets, with its share of the settings (cloud.ingest.workers):
the workers split every facility's messages about evenly."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from contracts.topics import Stream
from wire.token_bucket import TokenBucket

THROTTLED = frozenset({Stream.TELEMETRY.value})
# Bounded memory whatever facility names arrive: past this many, every bucket starts full again.
MAX_BUCKETS = 100_000


@dataclass(frozen=True)
class Throttled:
    """A throttled message on its way through the writer's queue, to be acknowledged in turn."""
    ack: Callable[[], None]


class FacilityBuckets:
    """`allow(facility, stream)`: True if the message may go on, taking one token when throttled."""

    def __init__(self, rate_per_s: float, burst: float, clock: Callable[[], float] = time.monotonic):
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate = rate_per_s
        self.burst = float(burst)
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def allow(self, facility: str, stream: str) -> bool:
        if stream not in THROTTLED:
            return True
        bucket = self._buckets.get(facility)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._buckets.clear()
            bucket = self._buckets[facility] = TokenBucket(self.rate, self.burst, self.clock)
        return bucket.take()
