"""An asyncio server served from an event loop on a thread of its own, for synchronous code
(benchmarks) that drives real parts: the police receiver (`arc.receiver.ArcReceiver`) while the
edge agent runs in its own process. The server is built by the caller, so this package stays
independent of the parts it starts (import-linter layers)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Protocol


class AsyncServer(Protocol):
    port: int

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class ServerThread:
    """`server.start()` on a loop of a daemon thread; `start` returns once it listens (its port),
    `stop` closes it and ends the thread."""

    def __init__(self, server: AsyncServer, name: str = "server", timeout_s: float = 10.0):
        self.server = server
        self.timeout_s = timeout_s
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)

    def start(self) -> int:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(self.timeout_s)
        return self.server.port

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(self.timeout_s)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(self.timeout_s)
            if not self.thread.is_alive():
                self.loop.close()

    def __enter__(self) -> "ServerThread":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class PanicArrivals:
    """An `on_alarm` callback for the police receiver: when (wall clock, `time.time()`) each zone's
    first panic (`PA`) arrived, as `arrived[zone]`."""

    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}

    def __call__(self, alarm: Any) -> None:
        if alarm.code == "PA":
            self.arrived.setdefault(alarm.zone, time.time())
