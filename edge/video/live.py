"""Live view: a camera's latest pictures to the cloud while someone watches.

The cloud asks with a `live.view` command naming the camera and how long (`until`), and asks
again while its viewers stay; when the requests stop, so does the stream (a watchdog, not a
stop command that could be lost). Frames go out QoS 0 on the live topic, never through the
outbox: a late picture is worth nothing. A per-facility byte budget caps the bandwidth the
streams of all cameras take together; frames over it are dropped and counted."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Optional

from contracts.envelope import LiveViewBody
from contracts.timefmt import utcnow
from wire.live_frame import LiveFrame, encode_frame
from wire.token_bucket import TokenBucket

log = logging.getLogger("careguard.edge.live")

# However long the cloud asks for, a stream it stops renewing ends this soon.
MAX_LEASE = timedelta(seconds=60)
TICK_S = 0.05


@dataclass
class _Stream:
    until: datetime
    period_s: float
    next_at: float = 0.0
    seq: int = 0


class LiveStreamer:
    """`request` starts or extends a camera's stream; `run` sends the frames.
    `snapshot(camera_id)` gives the newest JPEG; `publish(camera_id, payload)` sends one frame."""

    def __init__(self, cameras: set[str], snapshot: Callable[[str], Optional[bytes]],
                 publish: Callable[[str, bytes], bool], *, max_kbps: float, max_fps: float):
        self.cameras = cameras
        self.snapshot = snapshot
        self.publish = publish
        self.max_fps = max_fps
        # Bytes a second, holding at most one second's worth.
        self.budget = TokenBucket(max_kbps * 1000 / 8, burst=max_kbps * 1000 / 8)
        self.streams: dict[str, _Stream] = {}
        self.sent = 0
        self.dropped_budget = 0
        self.refused = 0

    def request(self, body: LiveViewBody, now: Optional[datetime] = None) -> bool:
        """Start or extend the stream of `body.camera_id`; False (and counted) for an unknown camera."""
        now = now or utcnow()
        if body.camera_id not in self.cameras:
            self.refused += 1
            log.warning("live view of unknown camera %s refused", body.camera_id)
            return False
        until = min(body.until, now + MAX_LEASE)
        period = 1.0 / min(body.fps, self.max_fps)
        stream = self.streams.get(body.camera_id)
        if stream is None:
            self.streams[body.camera_id] = _Stream(until, period)
            log.info("live view of %s started for %s", body.camera_id, body.by)
        else:
            stream.until, stream.period_s = max(stream.until, until), period
        return True

    def active(self) -> list[str]:
        return sorted(self.streams)

    def tick(self, now: datetime, mono: float) -> None:
        for camera_id, stream in list(self.streams.items()):
            if now >= stream.until:
                del self.streams[camera_id]
                log.info("live view of %s ended (no viewer renewed it)", camera_id)
                continue
            if mono < stream.next_at:
                continue
            stream.next_at = mono + stream.period_s
            jpeg = self.snapshot(camera_id)
            if jpeg is None:
                continue
            stream.seq += 1
            payload = encode_frame(LiveFrame(camera_id, now, stream.seq, jpeg))
            if not self.budget.take(len(payload)):
                self.dropped_budget += 1
                continue
            if self.publish(camera_id, payload):
                self.sent += 1

    async def run(self) -> None:
        while True:
            if self.streams:
                # The snapshot may wait on a camera lock: keep it off the agent's loop.
                await asyncio.to_thread(self.tick, utcnow(), time.monotonic())
            await asyncio.sleep(TICK_S)

    def stats(self) -> dict:
        return {"active": self.active(), "sent": self.sent, "dropped_budget": self.dropped_budget,
                "refused": self.refused}
