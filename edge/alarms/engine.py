"""The alarm engine: zones, arming, latching and contact bounce, as pure logic.

It takes device events, device status, commands and clock ticks, and returns actions
(raise, clear, log); the agent carries them out. Keeping the I/O outside makes every
rule testable without a broker or a clock.

Rules (GB 50394 5.2.3 and DESIGN.md): panic and fire zones are 24-hour zones: they
cannot be disarmed and latch until reset, so a second press while latched raises
nothing new but is still logged; an intrusion zone raises only while armed (by
schedule or command). Every arm, disarm, refusal and reset is logged to the cloud."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, time as dtime
from typing import Optional, Union
from zoneinfo import ZoneInfo

from contracts.alarms import AlarmKind, Severity
from contracts.device import DeviceEvent, DeviceEventKind
from contracts.envelope import ZoneRefusal
from edge.config import EdgeConfig, ZoneConfig, ZoneKind

TWENTY_FOUR_HOUR = (ZoneKind.PANIC, ZoneKind.FIRE)
ZONE_ALARM_KIND = {ZoneKind.PANIC: AlarmKind.PANIC, ZoneKind.FIRE: AlarmKind.FIRE,
                   ZoneKind.INTRUSION: AlarmKind.INTRUSION}
# Which device events trip which zone kind.
TRIGGERS = {
    ZoneKind.PANIC: {DeviceEventKind.PRESS, DeviceEventKind.LONG_PRESS},
    ZoneKind.FIRE: {DeviceEventKind.SMOKE, DeviceEventKind.PRESS, DeviceEventKind.LONG_PRESS},
    ZoneKind.INTRUSION: {DeviceEventKind.DOOR_OPEN, DeviceEventKind.MOTION},
}


@dataclass(frozen=True)
class RaiseAlarm:
    kind: AlarmKind
    source: str
    ts: datetime
    zone: Optional[ZoneConfig]
    device_id: Optional[str] = None
    detail: dict = field(default_factory=dict)
    origin_id: Optional[uuid.UUID] = None  # the device event that raised it, if any
    severity: Optional[Severity] = None  # the kind's default when unset


@dataclass(frozen=True)
class ClearAlarm:
    kind: AlarmKind
    source: str
    ts: datetime
    zone: Optional[ZoneConfig]
    detail: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LogEvent:
    type: str  # an envelope type: event.device, event.arming, event.latch_reset
    ts: datetime
    body: dict


Action = Union[RaiseAlarm, ClearAlarm, LogEvent]


class CommandError(ValueError):
    """A command the engine refuses: `key` and `params` for pages to word it in their language,
    the English text (str) for logs."""

    def __init__(self, key: ZoneRefusal, message: str, **params: str):
        super().__init__(message)
        self.key = key
        self.params = params


def in_window(now: dtime, arm: dtime, disarm: dtime) -> bool:
    if arm <= disarm:
        return arm <= now < disarm
    return now >= arm or now < disarm  # the window crosses midnight


class AlarmEngine:
    def __init__(self, cfg: EdgeConfig, state: Optional[dict] = None):
        self.cfg = cfg
        self.tz = ZoneInfo(cfg.timezone)
        self.zones = {z.id: z for z in cfg.zones}
        self.zone_of_device = {d: z for z in cfg.zones for d in z.devices}
        self.debounce_s = cfg.debounce_ms / 1000
        self._last_trigger: dict[str, datetime] = {}
        self.bounces = 0
        state = state or {}
        # latched: zone id -> alarm kind value; mode: intrusion zone id -> schedule|armed|disarmed
        self.latched: dict[str, str] = dict(state.get("latched", {}))
        self.mode: dict[str, str] = dict(state.get("mode", {}))
        self._armed_last: dict[str, bool] = {}

    def snapshot(self) -> dict:
        """The state that must survive a restart: a latched panic stays latched."""
        return {"latched": dict(self.latched), "mode": dict(self.mode)}

    # --- arming ------------------------------------------------------------------------
    def is_armed(self, zone: ZoneConfig, now: datetime) -> bool:
        if zone.kind in TWENTY_FOUR_HOUR:
            return True
        if zone.kind is not ZoneKind.INTRUSION:
            return False
        mode = self.mode.get(zone.id, "schedule")
        if mode != "schedule":
            return mode == "armed"
        local = now.astimezone(self.tz).time()
        return any(in_window(local, w.arm, w.disarm) for w in zone.schedule)

    def tick(self, now: datetime) -> list[Action]:
        """Log every change of an intrusion zone's armed state caused by its schedule."""
        actions: list[Action] = []
        for zone in self.zones.values():
            if zone.kind is not ZoneKind.INTRUSION:
                continue
            armed = self.is_armed(zone, now)
            if self._armed_last.get(zone.id) != armed:
                if zone.id in self._armed_last:
                    actions.append(LogEvent("event.arming", now, {"zone": zone.id, "armed": armed, "by": "schedule"}))
                self._armed_last[zone.id] = armed
        return actions

    # --- device input ------------------------------------------------------------------
    def on_device_event(self, ev: DeviceEvent) -> list[Action]:
        zone = self.zone_of_device.get(ev.device_id)
        if zone is None:
            raise CommandError(ZoneRefusal.UNKNOWN_DEVICE, f"device {ev.device_id!r} is in no zone",
                               device=ev.device_id)
        log = LogEvent("event.device", ev.ts, {"device_id": ev.device_id, "zone": zone.id, "event": ev.event.value,
                                               "event_id": str(ev.id)})
        if ev.event is DeviceEventKind.TAMPER:
            return [log, RaiseAlarm(AlarmKind.TAMPER, ev.device_id, ev.ts, zone, ev.device_id, origin_id=ev.id)]
        if ev.event is DeviceEventKind.TAMPER_RESTORE:
            return [log, ClearAlarm(AlarmKind.TAMPER, ev.device_id, ev.ts, zone)]
        if ev.event not in TRIGGERS.get(zone.kind, ()):
            return [log]
        last = self._last_trigger.get(ev.device_id)
        self._last_trigger[ev.device_id] = ev.ts
        if last is not None and 0 <= (ev.ts - last).total_seconds() < self.debounce_s:
            self.bounces += 1
            return [LogEvent("event.device", ev.ts, {**log.body, "bounce": True})]
        if not self.is_armed(zone, ev.ts):
            return [log]
        if zone.id in self.latched:
            return [LogEvent("event.device", ev.ts, {**log.body, "latched": True})]
        kind = ZONE_ALARM_KIND[zone.kind]
        self.latched[zone.id] = kind.value
        return [RaiseAlarm(kind, zone.id, ev.ts, zone, ev.device_id, {"event": ev.event.value}, ev.id), log]

    def on_device_status(self, device_id: str, online: bool, ts: datetime) -> list[Action]:
        zone = self.zone_of_device.get(device_id)
        if online:
            return [ClearAlarm(AlarmKind.DEVICE_OFFLINE, device_id, ts, zone)]
        return [RaiseAlarm(AlarmKind.DEVICE_OFFLINE, device_id, ts, zone, device_id)]

    # --- commands from the cloud or the facility --------------------------------------
    def command(self, action: str, zone_id: str, by: str, now: datetime) -> list[Action]:
        zone = self.zones.get(zone_id)
        if zone is None:
            raise CommandError(ZoneRefusal.UNKNOWN_ZONE, f"unknown zone {zone_id!r}", zone=zone_id)
        if action == "reset":
            kind = self.latched.pop(zone.id, None)
            if kind is None:
                raise CommandError(ZoneRefusal.NOT_LATCHED, f"zone {zone_id!r} is not latched", zone=zone_id)
            return [ClearAlarm(AlarmKind(kind), zone.id, now, zone, {"reset_by": by}),
                    LogEvent("event.latch_reset", now, {"zone": zone.id, "by": by})]
        if action == "test":
            return [RaiseAlarm(AlarmKind.TEST, zone.id, now, zone, None, {"drill_by": by}),
                    ClearAlarm(AlarmKind.TEST, zone.id, now, zone)]
        if action in ("arm", "disarm", "schedule"):
            if zone.kind in TWENTY_FOUR_HOUR:
                if action == "disarm":
                    raise CommandError(ZoneRefusal.CANNOT_DISARM,
                                       f"zone {zone_id!r} is a 24-hour {zone.kind.value} zone: it cannot be disarmed",
                                       zone=zone_id, zone_kind=zone.kind.value)
                return [LogEvent("event.arming", now, {"zone": zone.id, "armed": True, "by": by})]
            if zone.kind is not ZoneKind.INTRUSION:
                raise CommandError(ZoneRefusal.NO_ARMING, f"zone {zone_id!r} ({zone.kind.value}) has no arming",
                                   zone=zone_id, zone_kind=zone.kind.value)
            self.mode[zone.id] = {"arm": "armed", "disarm": "disarmed", "schedule": "schedule"}[action]
            armed = self.is_armed(zone, now)
            self._armed_last[zone.id] = armed
            return [LogEvent("event.arming", now, {"zone": zone.id, "armed": armed, "by": by, "mode": self.mode[zone.id]})]
        raise CommandError(ZoneRefusal.UNKNOWN_ACTION,
                           f"unknown action {action!r}: expected arm, disarm, schedule, reset or test", action=action)
