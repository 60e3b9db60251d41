"""`PeriodicTask`: the cloud's background checks (escalation, health, gateway watch, alarm
follower) each call one function every few seconds on their own thread. A failing call is logged
and counted, and the next one runs on schedule: one bad pass must not end the checking."""

from __future__ import annotations

import logging
import threading
from typing import Callable, Optional


class PeriodicTask:
    """Calls `fn` every `interval_s` (first call one interval after start()) until stop().
    `errors` counts the calls that raised; each is logged on `logger` under `what`."""

    def __init__(self, name: str, interval_s: float, fn: Callable[[], object], *, logger: logging.Logger,
                 what: str):
        self.name = name
        self.interval_s = interval_s
        self.fn = fn
        self.logger = logger
        self.what = what
        self.errors = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "PeriodicTask":
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    @property
    def stopping(self) -> bool:
        """For a long `fn` to end early once stop() was asked."""
        return self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.fn()
            except Exception:
                self.errors += 1
                self.logger.exception("%s failed; trying again in %g s", self.what, self.interval_s)
