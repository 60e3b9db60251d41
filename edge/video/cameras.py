"""The gateway's cameras: one health monitor each, faults handed to the agent's loop,
and the latest picture of each ready for a panic snapshot.

Monitors run on threads of their own (capture and analysis are blocking OpenCV work),
so a camera that hangs never stalls the alarm path."""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Optional

from edge.config import CameraConfig, VideoConfig
from edge.video.capture import CameraMonitor, CaptureConfig
from edge.video.health import FaultEvent, HealthConfig

log = logging.getLogger("careguard.edge.cameras")


class CameraSupervisor:
    def __init__(self, cameras: list[CameraConfig], video: VideoConfig, loop: asyncio.AbstractEventLoop,
                 on_fault: Callable[[FaultEvent], None]):
        self.loop = loop
        self.on_fault = on_fault
        health = HealthConfig(offline_after_s=video.offline_after_s)
        self.monitors: dict[str, CameraMonitor] = {
            c.id: CameraMonitor(c.id, c.source, self._from_thread, health=health, analysis_fps=c.analysis_fps,
                                capture=CaptureConfig(transport=c.transport, keyframes_only=c.keyframes_only))
            for c in cameras
        }

    def start(self) -> None:
        for m in self.monitors.values():
            m.start()

    def stop(self) -> None:
        for m in self.monitors.values():
            m.stop()

    def _from_thread(self, event: FaultEvent) -> None:
        try:
            self.loop.call_soon_threadsafe(self.on_fault, event)
        except RuntimeError:
            pass  # the loop is closing: the agent is stopping

    def snapshot(self, camera_id: str) -> Optional[bytes]:
        m = self.monitors.get(camera_id)
        return m.latest_jpeg() if m is not None else None

    def health(self) -> list[dict]:
        """The `cameras` of a camera.health body (contracts.envelope.CameraHealthBody)."""
        return [{"camera_id": cid, **m.health().model_dump(mode="json", exclude={"features"})}
                for cid, m in self.monitors.items()]
