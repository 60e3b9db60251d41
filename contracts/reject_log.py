"""Rate-limited logging of rejected input: one line per kind of reject per interval, naming how
many were left out since. Whatever a hostile sender makes us refuse is counted in full by the
caller's counters; the log only has to say that it happens, not fill the disk with it."""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from typing import Callable

MAX_KINDS = 1024  # kinds come from our own reason keys, but a bound costs nothing


class RejectLog:
    """`log(kind, *args)` writes `message % args` at WARNING unless a line of that kind was written
    less than `interval_s` ago; returns whether it wrote. Arguments are formatted only when a line
    is written, so an exception or a long reason costs nothing when left out."""

    def __init__(self, logger: logging.Logger, message: str, interval_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.logger = logger
        self.message = message
        self.interval_s = interval_s
        self.clock = clock
        self._last: dict[str, float] = {}
        self._unlogged: Counter[str] = Counter()

    def __call__(self, kind: str, *args: object) -> bool:
        now = self.clock()
        if now - self._last.get(kind, -math.inf) < self.interval_s:
            self._unlogged[kind] += 1
            return False
        if kind not in self._last and len(self._last) >= MAX_KINDS:
            self._last.clear()
        self._last[kind] = now
        more = self._unlogged.pop(kind, 0)
        suffix = f" (and {more} more {kind} rejects unlogged since the last line)" if more else ""
        self.logger.warning(self.message + "%s", *args, suffix)
        return True
