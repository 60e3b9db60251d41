"""Group commit: the receiver's alarms written to the store in batches, the fsync off the event loop.

The store fsyncs every commit (arc.store), which costs milliseconds; one commit per alarm would make
a burst of alarms wait for each other's fsync. Here alarms are queued as frames are accepted; a
batch is staged on the loop (the inserts: CPU, microseconds an alarm) and committed by one thread
(the fsync, which releases the interpreter lock), one transaction per batch:
- a lone alarm is written at once (its batch is whatever arrived in the same pass of the event
  loop; nothing waits for a batch to fill);
- while a batch is being committed, the alarms accepted meanwhile queue up and form the next batch,
  written as soon as the first is done. The loop keeps serving (NULLs, rejects, decoding) while
  SQLite fsyncs.
Each alarm's callback runs on the loop after its batch is durable, with whether it was new (True),
a resend (False), or not stored (None, the batch failed): the receiver sends the ACK from there, so
no ACK ever precedes the commit."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Optional

from arc.store import ArcAlarm, ArcStore

log = logging.getLogger(__name__)

Done = Callable[[Optional[bool]], None]


class GroupCommit:
    def __init__(self, store: ArcStore, counters: Counter[str]):
        self.store = store
        self.counters = counters  # "commits": transactions written; "slowest_commit_ms"
        self._pending: list[tuple[ArcAlarm, Done]] = []
        self._writing = False
        self._flush_scheduled = False
        self._idle: Optional[asyncio.Event] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="arc-commit")

    def submit(self, alarm: ArcAlarm, done: Done) -> None:
        """Queue `alarm`; `done` is called on the loop once it is durable (or failed)."""
        self._pending.append((alarm, done))
        if not self._writing and not self._flush_scheduled:
            # At the end of this loop pass: the alarms accepted in the same pass share the commit.
            self._loop = asyncio.get_running_loop()
            self._loop.call_soon(self._flush)
            self._flush_scheduled = True

    def _flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        loop = self._loop
        assert loop is not None
        try:
            stored: list[Optional[bool]] = list(self.store.stage([alarm for alarm, _ in batch]))
        except Exception:
            log.exception("ARC could not stage %d alarm(s); they are not ACKed, their senders will resend", len(batch))
            loop.call_soon(self._written, batch, [None] * len(batch), None)
            return
        self._writing = True
        committed = self._thread.submit(self._commit)
        committed.add_done_callback(lambda f: loop.call_soon_threadsafe(self._written, batch, stored, f))

    def _commit(self) -> float:
        """Commit the staged batch (on the thread); how long the disk took, in seconds."""
        started = time.perf_counter()
        self.store.commit()
        return time.perf_counter() - started

    def _written(self, batch: list[tuple[ArcAlarm, Done]], stored: list[Optional[bool]],
                 commit: Optional[Future]) -> None:
        if commit is not None:
            self._writing = False
            self.counters["commits"] += 1
            if commit.exception() is not None:
                log.error("ARC could not commit %d alarm(s); they are not ACKed, their senders will resend: %s",
                          len(batch), commit.exception())
                stored = [None] * len(batch)
            else:
                # The slowest fsync so far: a disk that stalls holds up every ACK of its batch, which
                # a latency figure alone cannot tell from a slow receiver.
                self.counters["slowest_commit_ms"] = max(self.counters["slowest_commit_ms"],
                                                         round(commit.result() * 1000))
        if self._pending and not self._writing and not self._flush_scheduled:
            self._flush()  # what queued meanwhile, at once
        elif not self._writing and not self._flush_scheduled and self._idle is not None:
            self._idle.set()
        for (_, done), outcome in zip(batch, stored):
            done(outcome)

    async def close(self) -> None:
        """Wait for queued and in-flight batches to be written, then stop the thread."""
        if self._writing or self._flush_scheduled:
            self._idle = asyncio.Event()
            await self._idle.wait()
        self._thread.shutdown(wait=True)
