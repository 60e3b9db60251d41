"""What the gateway refused because it could not be trusted, reported to the cloud as
`event.security` envelopes, at most one per kind and source per interval.

An attacker who can make the gateway refuse things (forged ACKs on the police path, forged
commands on the down topic) must not be able to flood the outbox with reports: refusals within
an interval are folded into the next report's `count`, which `flush` (called each tick) sends."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from contracts.envelope import SecurityEventBody, SecurityKind

log = logging.getLogger("careguard.edge.security")

REPORT_INTERVAL_S = 10.0


@dataclass
class _Pending:
    first_at: datetime
    reason: str
    count: int = 0


class SecurityReports:
    def __init__(self, emit: Callable[[SecurityEventBody], None], interval_s: float = REPORT_INTERVAL_S):
        self._emit = emit
        self.interval_s = interval_s
        self._pending: dict[tuple[SecurityKind, str], _Pending] = {}
        self._last_sent: dict[tuple[SecurityKind, str], float] = {}
        self.refused = 0

    def report(self, kind: SecurityKind, source: str, reason: str, at: datetime) -> None:
        self.refused += 1
        key = (kind, source)
        pending = self._pending.setdefault(key, _Pending(first_at=at, reason=reason))
        pending.count += 1
        pending.reason = reason
        self._send_if_due(key)

    def flush(self) -> None:
        for key in list(self._pending):
            self._send_if_due(key)

    def _send_if_due(self, key: tuple[SecurityKind, str]) -> None:
        now = time.monotonic()
        if now - self._last_sent.get(key, -math.inf) < self.interval_s:
            return
        pending = self._pending.pop(key)
        self._last_sent[key] = now
        kind, source = key
        log.error("security: %s from %s (%d since the last report): %s", kind.value, source, pending.count,
                  pending.reason)
        self._emit(SecurityEventBody(kind=kind, source=source, reason=pending.reason[:512], count=pending.count,
                                     first_at=pending.first_at))
