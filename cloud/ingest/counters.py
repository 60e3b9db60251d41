"""Ingest counters: what was received, stored, refused and why, per reason and per facility."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Optional

# Per-facility tables are shown to people: the facilities with the most, not every one.
TOP_FACILITIES = 50
COUNTER_KEYS = ("received", "stored", "duplicates", "rejected", "dead_lettered", "throttled", "store_errors",
                "batches", "alarm_updates", "telemetry_points", "expired")


class IngestCounters:
    """Health as numbers: what came in, what was stored, what was refused and why, and which
    facilities' messages were dead-lettered or throttled."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._c: Counter[str] = Counter()
        self._reasons: Counter[str] = Counter()
        self._dead_by_facility: Counter[str] = Counter()
        self._throttled_by_facility: Counter[str] = Counter()
        # Counted by the MQTT thread alone, once per message: a plain int needs no lock for that.
        self.received = 0

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._c[name] += n

    def reject(self, reason_key: str) -> None:
        """A message refused before it was written (it goes on to be dead-lettered)."""
        with self._lock:
            self._c["rejected"] += 1
            self._reasons[reason_key] += 1

    def dead_lettered(self, facility: Optional[str], n: int = 1) -> None:
        with self._lock:
            self._c["dead_lettered"] += n
            self._dead_by_facility[facility or ""] += n

    def throttled(self, facility: str) -> None:
        with self._lock:
            self._c["throttled"] += 1
            self._throttled_by_facility[facility] += 1

    def snapshot(self) -> dict:
        with self._lock:
            out = {"received": self.received} | {k: self._c[k] for k in COUNTER_KEYS if k != "received"}
            out["rejected_by_reason"] = dict(self._reasons)
            out["dead_lettered_by_facility"] = dict(self._dead_by_facility.most_common(TOP_FACILITIES))
            out["throttled_by_facility"] = dict(self._throttled_by_facility.most_common(TOP_FACILITIES))
            return out


def merge_counters(snapshots: list[dict]) -> dict:
    """The sum of several workers' snapshots."""
    total = {k: sum(s.get(k, 0) for s in snapshots) for k in COUNTER_KEYS}
    for key in ("rejected_by_reason", "dead_lettered_by_facility", "throttled_by_facility"):
        merged: Counter[str] = Counter()
        for s in snapshots:
            merged.update(s.get(key, {}))
        total[key] = dict(merged.most_common(TOP_FACILITIES if key != "rejected_by_reason" else None))
    return total
