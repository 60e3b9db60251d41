"""In-process fan-out of alarm updates to Server-Sent Events streams.

Publishers are plain threads (the ingest writer, API workers); subscribers are coroutines on
the app's event loop. Each subscriber has a bounded queue: a client too slow to keep up is
told it lagged (and refetches the list) instead of growing memory without bound."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

SUBSCRIBER_QUEUE = 1000
LAGGED = object()  # queued instead of an update when a subscriber overflowed
CLOSED = object()  # queued when the bus shuts down, so streams end promptly


@dataclass(eq=False)
class Subscription:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(SUBSCRIBER_QUEUE))

    def _offer(self, item: Any) -> None:
        if self.queue.full():
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(LAGGED)
        else:
            self.queue.put_nowait(item)

    async def get(self) -> Any:
        return await self.queue.get()


class EventBus:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()
        self.published = 0

    def subscribe(self) -> Subscription:
        """Call from a coroutine: the subscription is bound to the running loop."""
        sub = Subscription(asyncio.get_running_loop())
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subs)

    def publish(self, item: Any) -> None:
        """Thread-safe; never blocks the publisher."""
        with self._lock:
            subs = list(self._subs)
            self.published += 1
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(sub._offer, item)
            except RuntimeError:  # its loop has closed: the stream is gone
                self.unsubscribe(sub)

    def close(self) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(sub._offer, CLOSED)
            except RuntimeError:
                pass
