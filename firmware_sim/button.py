"""The one-button alarm (一键式报警按钮): press, long press, release, tamper, battery, heartbeat.

The button publishes through a DeviceLink (device_io.py), which stamps each event with a
fresh id and the device's next seq; the button supplies the kind and the time of the fact."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from contracts.device import DeviceEvent, DeviceEventKind, DeviceTelemetry
from contracts.timefmt import utcnow


class ButtonLink(Protocol):
    """What a button needs of its connection (device_io.DeviceLink is one); a protocol, so the
    button does not import the module that builds buttons."""
    device_id: str

    def wait_connected(self, timeout: float) -> None: ...
    def send_event(self, kind: DeviceEventKind, ts: datetime) -> tuple[DeviceEvent, Any]: ...
    def wait_acked(self, infos: list[Any], timeout: float, *, what: str) -> None: ...
    def make_telemetry(self, ts: datetime, readings: dict[str, float], *,
                       battery_pct: float | None = None) -> DeviceTelemetry: ...
    def send_telemetry(self, telemetry: DeviceTelemetry) -> Any: ...

# A mechanical contact bounces for a few milliseconds; 2 ms between bounces is typical.
BOUNCE_GAP_MS = 2.0


class PressResult(BaseModel):
    """A press as the broker holds it: `id` and `ts` of the first contact, and every event sent
    (more than one when the contact bounced)."""
    model_config = ConfigDict(frozen=True)

    events: list[DeviceEvent]

    @property
    def id(self) -> str:
        return str(self.events[0].id)

    @property
    def ts(self) -> datetime:
        return self.events[0].ts

    @property
    def device_id(self) -> str:
        return self.events[0].device_id


class Button:
    """A panic button on `link`. Thread-safe: a fleet thread sends its heartbeats while a
    caller presses it."""

    def __init__(self, link: ButtonLink, *, battery_pct: float = 100.0, heartbeat_s: float = 60.0):
        if not 0 <= battery_pct <= 100:
            raise ValueError(f"battery_pct must be 0..100, got {battery_pct}")
        if heartbeat_s <= 0:
            raise ValueError(f"heartbeat_s must be > 0, got {heartbeat_s}")
        self.link = link
        self.battery_pct = battery_pct
        self.heartbeat_s = heartbeat_s
        self.tampered = False
        self._next_heartbeat: datetime | None = None
        self._lock = threading.Lock()

    @property
    def device_id(self) -> str:
        return self.link.device_id

    def press(self, *, long: bool = False, bounce: int = 1, timeout: float = 5.0) -> PressResult:
        """Press once; returns when the broker has acknowledged (PUBACK) every event of the press.

        A long press is reported as one `long_press` (the button tells the gesture apart).
        `bounce` > 1 sends that many `press` events BOUNCE_GAP_MS apart, each with its own id,
        as a bouncing contact does; the edge must raise one alarm for them.
        Raises TimeoutError when the broker has not acknowledged within `timeout`."""
        if bounce < 1:
            raise ValueError(f"bounce must be >= 1, got {bounce}")
        if long and bounce > 1:
            raise ValueError("a long press does not bounce: use either long or bounce")
        kind = DeviceEventKind.LONG_PRESS if long else DeviceEventKind.PRESS
        t0 = utcnow()
        deadline = time.monotonic() + timeout
        self.link.wait_connected(timeout)
        sent = []
        for i in range(bounce):
            if i:
                time.sleep(BOUNCE_GAP_MS / 1000)
            sent.append(self.link.send_event(kind, t0 + timedelta(milliseconds=i * BOUNCE_GAP_MS)))
        self.link.wait_acked([info for _, info in sent], max(deadline - time.monotonic(), 0.0),
                             what=f"{kind.value} of {self.device_id}")
        return PressResult(events=[ev for ev, _ in sent])

    def release(self, *, timeout: float = 5.0) -> DeviceEvent:
        return self._send_acked(DeviceEventKind.RELEASE, timeout)

    def tamper(self, *, timeout: float = 5.0) -> DeviceEvent:
        """The case was opened or the button torn off the wall."""
        self.tampered = True
        return self._send_acked(DeviceEventKind.TAMPER, timeout)

    def tamper_restore(self, *, timeout: float = 5.0) -> DeviceEvent:
        self.tampered = False
        return self._send_acked(DeviceEventKind.TAMPER_RESTORE, timeout)

    def set_battery(self, pct: float) -> None:
        """Reported with the next heartbeat, as a real button does."""
        if not 0 <= pct <= 100:
            raise ValueError(f"battery_pct must be 0..100, got {pct}")
        self.battery_pct = pct

    def heartbeat_telemetry(self, ts: datetime) -> DeviceTelemetry:
        return self.link.make_telemetry(ts, {}, battery_pct=self.battery_pct)

    def tick(self, now: datetime) -> None:
        """Send a heartbeat when one is due (called by a fleet's clock)."""
        with self._lock:
            if self._next_heartbeat is not None and now < self._next_heartbeat:
                return
            self._next_heartbeat = now + timedelta(seconds=self.heartbeat_s)
        self.link.send_telemetry(self.heartbeat_telemetry(now))

    def next_due(self) -> datetime | None:
        return self._next_heartbeat

    def _send_acked(self, kind: DeviceEventKind, timeout: float) -> DeviceEvent:
        ts = utcnow()
        deadline = time.monotonic() + timeout
        self.link.wait_connected(timeout)
        ev, info = self.link.send_event(kind, ts)
        self.link.wait_acked([info], max(deadline - time.monotonic(), 0.0), what=f"{kind.value} of {self.device_id}")
        return ev
