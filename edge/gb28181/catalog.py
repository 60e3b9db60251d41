"""What the police video platform sees of a facility: its cameras as GB/T 28181 channels, and
its alarms as Alarm notifies (priority, method, type, description)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from contracts.alarms import AlarmKind
from edge.config import CameraConfig
from wire import manscdp

MANUFACTURER = "CareGuard"
MODEL = "CareGuard edge gateway"
FIRMWARE = "1"

ALARM_METHOD_DEVICE = 2  # GB/T 28181-2016 A.2.5.7: 2 = device alarm
ALARM_TYPE_VIDEO_LOST = 1  # for device alarms: 1 video lost, 2 tamper
ALARM_TYPE_TAMPER = 2


@dataclass(frozen=True)
class AlarmStyle:
    priority: int  # 1 highest
    alarm_type: Optional[int]
    text: str


# The alarms the police platform is told of, and how; others (retention, climate...) are not its business.
NOTIFIED: dict[AlarmKind, AlarmStyle] = {
    AlarmKind.PANIC: AlarmStyle(1, None, "一键报警"),
    AlarmKind.FIRE: AlarmStyle(1, None, "火警"),
    AlarmKind.INTRUSION: AlarmStyle(2, None, "入侵报警"),
    AlarmKind.TAMPER: AlarmStyle(2, ALARM_TYPE_TAMPER, "防拆报警"),
    AlarmKind.CAMERA_FAULT: AlarmStyle(3, ALARM_TYPE_VIDEO_LOST, "视频故障"),
}


@dataclass(frozen=True)
class Channel:
    gb_id: str
    camera_id: str
    name: str
    source: str


def channels(cameras: list[CameraConfig]) -> list[Channel]:
    return [Channel(c.gb_id, c.id, c.gb_name or c.id, c.source) for c in cameras if c.gb_id]


def catalog_items(device_id: str, chans: list[Channel], online: dict[str, bool], address: str) -> list[manscdp.CatalogItem]:
    return [manscdp.CatalogItem(ch.gb_id, ch.name, "ON" if online.get(ch.camera_id) else "OFF", MANUFACTURER, MODEL,
                                "0", device_id[:6], address, 0, device_id, 1, 0) for ch in chans]


def alarm_notify(sn: int, kind: AlarmKind, gb_id: str, local_time: datetime, detail: str) -> manscdp.AlarmNotify:
    style = NOTIFIED[kind]
    text = f"{style.text} {detail}".strip()[:manscdp.MAX_TEXT]
    return manscdp.AlarmNotify(sn, gb_id, style.priority, ALARM_METHOD_DEVICE, local_time.replace(microsecond=0),
                               text, style.alarm_type)
