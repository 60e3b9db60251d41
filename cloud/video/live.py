"""Live view in the cloud: frames from the gateways' live topics to the people watching.

The hub subscribes to `cg/v1/fac/+/live/+` (QoS 0) on the cloud's broker, checks each frame
(its topic, header and JPEG, a rate per camera), and hands it to the viewers of that camera;
frames nobody watches are dropped at once, and only the newest frame per viewer waits, so a
slow browser costs one frame of memory. While a camera has viewers the hub asks its gateway
to keep streaming (`request_stream`, renewed every `renew_s` for `lease_s`); when the last
viewer leaves the requests stop and the gateway's lease runs out."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from cloud.alarms.downlink import Downlink
from contracts.envelope import DownType, LiveViewBody, make_envelope
from contracts.errors import ContractError
from contracts.timefmt import utcnow
from contracts.topics import LIVE_WILDCARD, DownKind, parse_live_topic
from wire.live_frame import LiveFrame, decode_frame
from wire.mqtt_client import make_client

log = logging.getLogger("careguard.cloud.live")

LEASE_S = 20.0
RENEW_S = 5.0
MAX_FPS_PER_CAMERA = 10.0


@dataclass
class Viewer:
    facility: str
    camera_id: str
    loop: asyncio.AbstractEventLoop
    frames: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=1))
    opened_at: datetime = field(default_factory=utcnow)
    sent: int = 0

    def offer(self, frame: tuple[LiveFrame, datetime]) -> None:
        """In the viewer's loop: the newest frame replaces one the viewer has not taken yet."""
        if self.frames.full():
            self.frames.get_nowait()
        self.frames.put_nowait(frame)


class LiveHub:
    def __init__(self, broker_url: str, client_id: str,
                 request_stream: Callable[[str, str, datetime], None], *,
                 lease_s: float = LEASE_S, renew_s: float = RENEW_S):
        self.broker_url = broker_url
        self.request_stream = request_stream
        self.lease_s, self.renew_s = lease_s, renew_s
        self._client, self._addr = make_client(broker_url, client_id)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._lock = threading.Lock()
        self._viewers: dict[tuple[str, str], list[Viewer]] = {}
        self._last_at: dict[tuple[str, str], float] = {}
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew_loop, name="live-renew", daemon=True)
        self.counters: Counter[str] = Counter()
        self.subscribed = threading.Event()

    def start(self) -> "LiveHub":
        self._client.connect_async(self._addr.host, self._addr.port, keepalive=30)
        self._client.loop_start()
        self._renewer.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._client.disconnect()
        self._client.loop_stop()
        self._renewer.join(5)

    # --- viewers ---------------------------------------------------------------------------------
    def watch(self, facility: str, camera_id: str) -> Viewer:
        viewer = Viewer(facility, camera_id, asyncio.get_running_loop())
        with self._lock:
            self._viewers.setdefault((facility, camera_id), []).append(viewer)
        self._request(facility, camera_id)
        return viewer

    def unwatch(self, viewer: Viewer) -> None:
        key = (viewer.facility, viewer.camera_id)
        with self._lock:
            viewers = self._viewers.get(key, [])
            if viewer in viewers:
                viewers.remove(viewer)
            if not viewers:
                self._viewers.pop(key, None)

    def watched(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._viewers)

    def _request(self, facility: str, camera_id: str) -> None:
        try:
            self.request_stream(facility, camera_id, utcnow() + timedelta(seconds=self.lease_s))
        except Exception:
            log.exception("live view request for %s/%s failed", facility, camera_id)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.renew_s):
            for facility, camera_id in self.watched():
                self._request(facility, camera_id)

    # --- frames ----------------------------------------------------------------------------------
    def _on_connect(self, client, _userdata, _flags, reason_code, _props=None) -> None:
        if reason_code.is_failure:
            log.warning("live hub: the broker refused the connection: %s", reason_code)
            return
        client.subscribe(LIVE_WILDCARD, qos=0)
        self.subscribed.set()

    def _on_message(self, _client, _userdata, msg) -> None:
        self.counters["received"] += 1
        try:
            facility, camera_id = parse_live_topic(msg.topic)
            frame = decode_frame(msg.payload)
            if frame.camera_id != camera_id:
                raise ContractError(f"frame of camera {frame.camera_id!r} on the topic of {camera_id!r}")
        except ContractError as exc:
            self.counters["refused"] += 1
            if self.counters["refused"] <= 10 or self.counters["refused"] % 1000 == 0:
                log.warning("live frame on %s refused: %s", msg.topic, exc)
            return
        key = (facility, camera_id)
        now = time.monotonic()
        with self._lock:
            viewers = list(self._viewers.get(key, ()))
            # One gateway flooding frames costs its own viewers frames, nobody else anything.
            if now - self._last_at.get(key, 0.0) < 1.0 / MAX_FPS_PER_CAMERA:
                self.counters["rate_dropped"] += 1
                return
            self._last_at[key] = now
        if not viewers:
            self.counters["unwatched"] += 1
            return
        arrived = utcnow()
        for viewer in viewers:
            viewer.loop.call_soon_threadsafe(viewer.offer, (frame, arrived))
        self.counters["delivered"] += 1


def request_live_view(downlink: Downlink, facility_id: str, camera_id: str, until: datetime) -> None:
    """Ask the gateway to stream `camera_id` until `until` (a `live.view` command on down/live)."""
    body = LiveViewBody(camera_id=camera_id, until=until)
    downlink.publish(make_envelope(facility_id, DownType.LIVE_VIEW.value, body, source="cloud"), DownKind.LIVE,
                     timeout=0.5)
