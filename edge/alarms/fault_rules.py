"""The rules that turn the gateway's own faults into alarms: a camera fault, a police path
or the police video platform that fails, footage that falls short of the required retention or was tampered with.

Pure: each takes what was observed and returns the engine actions; the agent applies them."""

from __future__ import annotations

from datetime import datetime
from typing import Iterable, Optional

from contracts.alarms import AlarmKind, AlarmState, Severity
from edge.alarms.engine import Action, ClearAlarm, LogEvent, RaiseAlarm
from edge.config import CameraConfig, ZoneConfig
from edge.retention.runner import RetentionCheck, breach_reasons
from edge.video.health import FaultEvent


def camera_fault(ev: FaultEvent, zone: Optional[ZoneConfig]) -> Action:
    """A camera that went offline, froze, was covered, defocused or turned: its alarm, or its clearing."""
    detail = {k: v for k, v in ev.alarm_detail().items() if k != "snapshot_jpeg_b64"}
    if ev.state is AlarmState.ACTIVE:
        return RaiseAlarm(AlarmKind.CAMERA_FAULT, ev.camera_id, ev.occurred_at, zone, None, detail)
    return ClearAlarm(AlarmKind.CAMERA_FAULT, ev.camera_id, ev.occurred_at, zone, detail)


def police_path(receiver: str, up: bool, reason: str, now: datetime) -> Action:
    """A police path that fails is an alarm of its own, to the cloud (the police cannot be told on it)."""
    source = f"police:{receiver}"
    if up:
        return ClearAlarm(AlarmKind.POLICE_LINK_DOWN, source, now, None, {"reason": reason})
    return RaiseAlarm(AlarmKind.POLICE_LINK_DOWN, source, now, None, None, {"receiver": receiver, "reason": reason})


def video_platform(platform: str, up: bool, reason: str, now: datetime) -> Action:
    """The police video platform (GB/T 28181) lost or refusing the gateway: an alarm to the cloud, as for a police path."""
    source = f"gb28181:{platform}"
    if up:
        return ClearAlarm(AlarmKind.VIDEO_PLATFORM_DOWN, source, now, None, {"reason": reason})
    return RaiseAlarm(AlarmKind.VIDEO_PLATFORM_DOWN, source, now, None, None, {"platform": platform, "reason": reason})


def retention(result: RetentionCheck, cameras: Iterable[CameraConfig], now: datetime) -> list[Action]:
    """The audit reported to the cloud; a breach raised per recording camera short of the required
    days, one for cleanup that refused to delete young footage, and a tamper alarm per altered file."""
    report = result.report
    body = {**report.model_dump(mode="json"),
            "cleanup": result.cleanup.model_dump(mode="json", exclude={"findings"})}
    actions: list[Action] = [LogEvent("retention.report", now, body)]
    on_disk = {c.camera_id: c for c in report.cameras}
    for camera in cameras:
        if not camera.record:
            continue
        source = f"retention:{camera.id}"
        cam = on_disk.get(camera.id)
        reasons = breach_reasons(cam) if cam else ["no footage recorded"]
        if reasons:
            detail = {"camera_id": camera.id, "reasons": reasons, "required_days": report.required_days,
                      "achieved_days": cam.achieved_days if cam else 0,
                      "projected_days_short": cam.projected_days_short if cam else None}
            actions.append(RaiseAlarm(AlarmKind.RETENTION_BREACH, source, now, None, None, detail))
        else:
            actions.append(ClearAlarm(AlarmKind.RETENTION_BREACH, source, now, None))
    refused = [f.message for f in result.cleanup.findings if f.code == "cleanup_refused"]
    if refused:
        actions.append(RaiseAlarm(AlarmKind.RETENTION_BREACH, "retention:disk", now, None, None,
                                  {"reasons": refused}, severity=Severity.CRITICAL))
    else:
        actions.append(ClearAlarm(AlarmKind.RETENTION_BREACH, "retention:disk", now, None))
    for t in result.new_tamper:
        # Footage altered or deleted outside the recorder: evidence tampering, to the cloud.
        actions.append(RaiseAlarm(AlarmKind.TAMPER, f"footage:{t.camera_id}", now, None, None,
                                  t.model_dump(mode="json")))
    return actions
