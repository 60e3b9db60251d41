"""The edge agent: `careguard edge --config FILE.toml`.

It wires the parts together on one asyncio loop: the device gateway feeds the alarm
engine; each alarm is journalled (fsync) before anything acts on it; police events go
straight to the alarm centre over DC-09; everything also goes to the cloud through the
durable outbox. After a crash, undelivered police events are sent again on start."""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import signal
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Callable, Optional

from pydantic import ValidationError

from contracts import topics
from contracts.alarms import DEFAULT_SEVERITY, AlarmBody, AlarmKind, AlarmState
from contracts.dc09_codes import CID_CODES, POLICE_KINDS, SIA_CODES
from contracts.device import DeviceEvent, DeviceTelemetry
from contracts.envelope import (
    CLIP_CHUNK_BYTES,
    MAX_TELEMETRY_POINTS,
    AlarmAckBody,
    ArmSetBody,
    ClipChunkBody,
    DownType,
    Envelope,
    LiveViewBody,
    MissingSpan,
    SecurityEventBody,
    SecurityKind,
    make_envelope,
)
from contracts.errors import describe_validation_error
from contracts.timefmt import iso_utc, utcnow
from edge.alarms import fault_rules
from edge.alarms.engine import Action, AlarmEngine, ClearAlarm, CommandError, LogEvent, RaiseAlarm
from edge.alarms.journal import AlarmRecord, Journal, PoliceRecord
from edge.config import ConfigError, EdgeConfig, load_config
from edge.broker_auth import local_broker_url
from edge.devices import DeviceGateway, DeviceMessage, DeviceStatus
from edge.gb28181 import catalog as gb_catalog
from edge.gb28181.device import GbDevice
from edge.police.dc09_link import PoliceEvent, PoliceLink
from edge.retention.runner import RetentionRunner
from edge.security_reports import SecurityReports
from edge.uplink.command_guard import CommandGuard, CommandRefused
from edge.uplink.link import Uplink
from edge.uplink.media import MediaOutbox, MediaSender
from edge.uplink.outbox import Priority
from edge.video import clips as clip_cutter
from edge.video.cameras import CameraSupervisor
from edge.video.health import FaultEvent
from edge.video.live import LiveStreamer
from edge.video.recorder import Recorder
from wire.envelope_signing import load_public_key
from wire.token_bucket import TokenBucket

log = logging.getLogger("careguard.edge")

DOWNLINK = "downlink"  # the source named in command refusals: the down topics, whatever their tail

TELEMETRY_FLUSH_S = 1.0
RECENT_ACKS = 100
ALARM_ID_NAMESPACE = uuid.UUID("5d0f4c8e-3c1b-4f5e-9a57-c4e6a1d2b7f0")
TICK_S = 1.0
# Alarms whose scene the police see: snapshots at once, a clip of the zone's cameras after.
SCENE_KINDS = frozenset({AlarmKind.PANIC, AlarmKind.INTRUSION, AlarmKind.FIRE})
# The recorder flushes the segment being written every few hundred milliseconds.
CLIP_SETTLE_S = 2.0


def has_restore_code(kind: AlarmKind) -> bool:
    return (kind, True) in SIA_CODES and (kind, True) in CID_CODES


class EdgeAgent:
    def __init__(self, cfg: EdgeConfig):
        self.cfg = cfg
        self.facility = cfg.facility_id
        self.journal: Optional[Journal] = None
        self.engine: Optional[AlarmEngine] = None
        self.police: Optional[PoliceLink] = None
        self.devices: Optional[DeviceGateway] = None
        self.uplink: Optional[Uplink] = None
        self.cameras: Optional[CameraSupervisor] = None
        self.recorder: Optional[Recorder] = None
        self.retention: Optional[RetentionRunner] = None
        self.gb: Optional[GbDevice] = None
        self.commands: Optional[CommandGuard] = None
        self.security = SecurityReports(self._emit_security)
        self.live: Optional[LiveStreamer] = None
        self.media: Optional[MediaOutbox] = None
        self.media_sender: Optional[MediaSender] = None
        self.clips_sent = 0
        self._stopping = threading.Event()  # ends a clip being cut; its job stays for the next start
        self._clip_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clip")
        self.zone_of_camera = {c: z for z in cfg.zones for c in z.cameras}
        self.snapshots_sent = 0
        self._tasks: set[asyncio.Task] = set()
        self._telemetry: list[dict] = []
        self._seq = 0
        self._started_mono = time.monotonic()
        # The police's acknowledgements of this facility's alarms, the latest few, for the
        # facility's own display; the cloud keeps the record.
        self.acked_by_cloud: OrderedDict[str, dict] = OrderedDict()

    # --- life cycle ---------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.journal = Journal(self.cfg.outbox.path, self.cfg.outbox.max_messages)
        self._seq = int(self.journal.get_state("seq", 0))
        self.engine = AlarmEngine(self.cfg, self.journal.get_state("engine"))
        pinned = self.cfg.uplink.cloud_public_key
        self.commands = CommandGuard(self.journal.conn, load_public_key(pinned) if pinned else None,
                                     self.cfg.uplink.command_window_s)
        if pinned is None:
            log.warning("no [uplink] cloud_public_key pinned: every command from the cloud will be refused")
        if self.cfg.police.key is None:
            log.warning("police path is NOT encrypted ([police] key unset): alarms and ACKs on it can be forged")
        self.police = PoliceLink(self.cfg.police, on_path_change=self._on_police_path,
                                 on_security=self._on_police_reply_refused)
        self.media = MediaOutbox(self.cfg.outbox.media_path)
        self.uplink = Uplink(self.cfg.uplink.broker, self.facility, self.journal, loop, self._on_down,
                             on_down_rejected=self._on_down_rejected,
                             telemetry_pace=TokenBucket(self.cfg.uplink.telemetry_per_s, self.cfg.uplink.telemetry_burst))
        self.devices = DeviceGateway(local_broker_url(self.cfg), self.cfg.native_devices(), loop,
                                     self._on_device_message, client_id=f"edge-{self.facility}-local",
                                     mapped=self.cfg.state_topics(), availability=self.cfg.availability_topics())
        await self.police.start()
        # Police events a crash left undelivered go first, in their original order.
        for rec in self.journal.pending_police_events():
            self._spawn(self._deliver(rec))
        self.uplink.start()
        self.media_sender = MediaSender(self.media, self.uplink.client, lambda: self.uplink.connected).start()
        self.devices.start()
        self.cameras = CameraSupervisor(self.cfg.cameras, self.cfg.video, loop, self._on_camera_fault)
        self.cameras.start()
        self.live = LiveStreamer({c.id for c in self.cfg.cameras}, self.cameras.snapshot, self.uplink.publish_live,
                                 max_kbps=self.cfg.video.live_max_kbps, max_fps=self.cfg.video.live_max_fps)
        if self.cfg.cameras:
            self._spawn(self.live.run())
        for job in self.journal.get_state("clip_jobs", []):
            self._spawn(self._send_clip(job))
        self.recorder = Recorder(self.cfg.cameras, self.cfg.video)
        self.recorder.start()
        if self.cfg.gb28181 is not None:
            self.gb = GbDevice(self.cfg.gb28181, gb_catalog.channels(self.cfg.cameras), timezone=self.cfg.timezone,
                               address=self.facility, camera_online=self._cameras_online,
                               recording=lambda: any(c.record for c in self.cfg.cameras),
                               alarm_active=lambda: bool(self.engine.latched), on_state=self._on_video_platform)
            await self.gb.start()
        if any(c.record for c in self.cfg.cameras):
            self.retention = RetentionRunner(self.cfg.video)
            self._spawn(self._retention_loop())
        self._spawn(self._periodic(TELEMETRY_FLUSH_S, self._flush_telemetry))
        self._spawn(self._periodic(TICK_S, self._tick))
        self._spawn(self._periodic(self.cfg.uplink.heartbeat_s, self._heartbeat))
        if self.cfg.cameras:
            self._spawn(self._periodic(self.cfg.video.health_report_s, self._camera_health))
        log.info("edge agent for %s started: %d zones, %d devices, police %s", self.facility, len(self.cfg.zones),
                 sum(len(z.devices) for z in self.cfg.zones), ", ".join(r.name for r in self.cfg.police.receivers))

    async def stop(self) -> None:
        self._stopping.set()
        self._clip_pool.shutdown(wait=False, cancel_futures=True)
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.gb:
            await self.gb.close()
        self._flush_telemetry()
        if self.recorder:
            self.recorder.stop()
        if self.retention:
            self.retention.close()
        if self.cameras:
            self.cameras.stop()
        if self.devices:
            self.devices.stop()
        if self.media_sender:
            self.media_sender.stop()
        if self.uplink:
            self.uplink.stop()
        if self.media:
            self.media.close()
        if self.police:
            await self.police.close()
        if self.journal:
            self.journal.close()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("edge task failed", exc_info=task.exception())

    async def _periodic(self, period: float, fn) -> None:
        while True:
            await asyncio.sleep(period)
            try:
                fn()
            except Exception:
                log.exception("periodic %s failed", getattr(fn, "__name__", fn))

    # --- envelopes ----------------------------------------------------------------------
    def _envelope(self, type_: str, body: dict, ts: datetime) -> Envelope:
        self._seq += 1
        return make_envelope(self.facility, type_, body, seq=self._seq, ts=ts)

    def _enqueue(self, env: Envelope, priority: Priority) -> None:
        self.journal.outbox.put(topics.up(self.facility, env.stream), env.to_bytes(), priority)

    def _save_state(self) -> None:
        self.journal.set_state("seq", self._seq)
        self.journal.set_state("engine", self.engine.snapshot())

    # --- device input -------------------------------------------------------------------
    def _on_device_message(self, msg: DeviceMessage, ack: Callable[[], None]) -> None:
        if isinstance(msg, DeviceEvent):
            try:
                actions = self.engine.on_device_event(msg)
            except CommandError as exc:
                log.warning("device event refused: %s", exc)
                ack()
                return
            self.apply(actions)
            self.journal.after_commit(ack)
            return
        elif isinstance(msg, DeviceTelemetry):
            zone = self.engine.zone_of_device.get(msg.device_id)
            for metric, value in msg.readings.items():
                self._telemetry.append({"device_id": msg.device_id, "metric": metric, "value": value,
                                        "ts": iso_utc(msg.ts), "zone": zone.id if zone else None})
            if msg.battery_pct is not None:
                self._telemetry.append({"device_id": msg.device_id, "metric": "battery_pct",
                                        "value": msg.battery_pct, "ts": iso_utc(msg.ts),
                                        "zone": zone.id if zone else None})
            if len(self._telemetry) >= MAX_TELEMETRY_POINTS:
                self._flush_telemetry()
        elif isinstance(msg, DeviceStatus):
            self.apply(self.engine.on_device_status(msg.device_id, msg.online, utcnow()))
        self.journal.after_commit(ack)

    def _flush_telemetry(self) -> None:
        if not self._telemetry or self.journal is None:
            return
        points, self._telemetry = self._telemetry, []
        with self.journal.transaction(durable=False):
            for i in range(0, len(points), MAX_TELEMETRY_POINTS):
                chunk = [{k: v for k, v in p.items() if k != "zone"} for p in points[i:i + MAX_TELEMETRY_POINTS]]
                self._enqueue(self._envelope("telemetry.batch", {"points": chunk}, utcnow()), Priority.TELEMETRY)
            self.journal.outbox.enforce_cap()
            self.journal.set_state("seq", self._seq)
        self.uplink.kick()

    # --- actions ------------------------------------------------------------------------
    def apply(self, actions: list[Action]) -> None:
        """Carry out the engine's actions in one durable transaction, then the police and the cloud.

        When the police must be told, the frame goes out before the fsync: the delivery
        tasks take their first step (the frame written) ahead of the commit scheduled
        behind them, and the fsync runs while the frame travels (edge/journal.py says
        why nothing is lost by it)."""
        police: list[PoliceRecord] = []
        panics: list[AlarmRecord] = []
        raised: list[tuple[AlarmRecord, RaiseAlarm]] = []
        clip_jobs: list[dict] = []
        with self.journal.open_deferred():
            for action in actions:
                if isinstance(action, RaiseAlarm):
                    rec, to_police = self._raise(action)
                    police += to_police
                    if rec is not None:
                        raised.append((rec, action))
                    if rec is not None and rec.kind in SCENE_KINDS and action.zone and action.zone.cameras:
                        panics.append(rec)
                        clip_jobs += self._clip_jobs(rec, action.zone.cameras)
                elif isinstance(action, ClearAlarm):
                    police += self._clear(action)
                elif isinstance(action, LogEvent):
                    self._enqueue(self._envelope(action.type, action.body, action.ts), Priority.EVENT)
            self._save_state()
        for rec in police:
            self._spawn(self._deliver(rec))
        for rec in panics:
            self._spawn(self._send_snapshots(rec))
        for job in clip_jobs:
            self._spawn(self._send_clip(job))
        if police:
            asyncio.get_running_loop().call_soon(self._commit_and_kick)
        else:
            self._commit_and_kick()
        if self.gb is not None and raised:
            # Queued behind the DC-09 frames' first steps and the commit: the video platform hears second.
            asyncio.get_running_loop().call_soon(self._notify_video_platform, raised)

    def _commit_and_kick(self) -> None:
        self.journal.commit_pending()
        self.uplink.kick()

    def _raise(self, a: RaiseAlarm) -> tuple[Optional[AlarmRecord], list[PoliceRecord]]:
        if self.journal.active_alarm(a.source, a.kind) is not None:
            return None, []  # one active alarm per (source, kind)
        # Derived from the press, so a press the broker delivers again after a crash is the
        # same alarm at the police receiver, which stores it once.
        alarm_id = uuid.uuid5(ALARM_ID_NAMESPACE, f"{self.facility}/{a.origin_id}") if a.origin_id else uuid.uuid4()
        rec = AlarmRecord(alarm_id, a.kind, (a.severity or DEFAULT_SEVERITY[a.kind]).value, a.source,
                          a.zone.id if a.zone else None, a.device_id, a.ts, a.detail)
        self.journal.insert_alarm(rec)
        out = []
        if a.kind in POLICE_KINDS and a.zone is not None:
            out.append(self.journal.insert_police_event(rec.alarm_id, a.kind, False, a.zone.number, a.ts))
        self._enqueue(self._envelope("alarm.raised", self._alarm_body(rec, AlarmState.ACTIVE).model_dump(mode="json"),
                                     a.ts), Priority.ALARM)
        log.warning("alarm raised: %s %s (zone %s) %s", a.kind.value, a.source, rec.zone, rec.alarm_id)
        return rec, out

    def _clear(self, c: ClearAlarm) -> list[PoliceRecord]:
        alarm_id = self.journal.active_alarm(c.source, c.kind)
        if alarm_id is None:
            return []
        rec = self.journal.alarm(alarm_id)
        self.journal.clear_alarm(alarm_id, c.ts)
        out = []
        if c.kind in POLICE_KINDS and has_restore_code(c.kind) and c.zone is not None:
            out.append(self.journal.insert_police_event(alarm_id, c.kind, True, c.zone.number, c.ts))
        body = self._alarm_body(rec, AlarmState.CLEARED)
        body.detail = {**rec.detail, **c.detail}
        self._enqueue(self._envelope("alarm.cleared", body.model_dump(mode="json"), c.ts), Priority.ALARM)
        return out

    @staticmethod
    def _alarm_body(rec: AlarmRecord, state: AlarmState) -> AlarmBody:
        return AlarmBody(alarm_id=rec.alarm_id, kind=rec.kind, severity=rec.severity, source=rec.source,
                         zone=rec.zone, device_id=rec.device_id, state=state, detail=rec.detail)

    # --- police video platform (GB/T 28181) ---------------------------------------------
    def _notify_video_platform(self, raised: list[tuple[AlarmRecord, RaiseAlarm]]) -> None:
        for rec, action in raised:
            camera = rec.source if rec.kind is AlarmKind.CAMERA_FAULT else None
            where = (action.zone.name or action.zone.id) if action.zone else rec.source
            self.gb.notify_alarm(rec.kind, rec.raised_at, where, camera_id=camera)

    def _cameras_online(self) -> dict[str, bool]:
        return {h["camera_id"]: h["state"] == "streaming" and not h.get("fault") for h in self.cameras.health()}

    def _on_video_platform(self, up: bool, reason: str) -> None:
        platform = f"{self.cfg.gb28181.platform_host}:{self.cfg.gb28181.platform_port}"
        self.apply([fault_rules.video_platform(platform, up, reason, utcnow())])

    # --- cameras ------------------------------------------------------------------------
    async def _send_snapshots(self, alarm: AlarmRecord) -> None:
        """The zone's pictures to the cloud with a panic, behind the DC-09 frame, never before it."""
        await asyncio.sleep(0)
        zone = next(z for z in self.cfg.zones if z.id == alarm.zone)
        pictures = [(cid, await asyncio.to_thread(self.cameras.snapshot, cid)) for cid in zone.cameras]
        self._enqueue_snapshots(alarm.alarm_id, zone.id, pictures, Priority.ALARM)

    def _enqueue_snapshots(self, alarm_id: uuid.UUID, zone: Optional[str], pictures, priority: Priority) -> None:
        with self.journal.transaction(durable=False):
            for camera_id, jpeg in pictures:
                if jpeg is None:
                    log.warning("no picture from camera %s for alarm %s", camera_id, alarm_id)
                    continue
                body = {"camera_id": camera_id, "alarm_id": str(alarm_id), "zone": zone,
                        "jpeg_b64": base64.b64encode(jpeg).decode("ascii")}
                self._enqueue(self._envelope("camera.snapshot", body, utcnow()), priority)
                self.snapshots_sent += 1
            self.journal.set_state("seq", self._seq)
        self.uplink.kick()

    def _clip_jobs(self, alarm: AlarmRecord, cameras: list[str]) -> list[dict]:
        """One clip per camera of the zone, kept in the journal's state (in the alarm's transaction)
        so that a restart before the window ends still sends it."""
        jobs = [{"alarm_id": str(alarm.alarm_id), "camera_id": c, "zone": alarm.zone, "at": iso_utc(alarm.raised_at)}
                for c in cameras]
        self.journal.set_state("clip_jobs", self.journal.get_state("clip_jobs", []) + jobs)
        return jobs

    async def _send_clip(self, job: dict) -> None:
        """The clip of one camera around an alarm, to the cloud in chunks through the outbox, once its
        window has been recorded. Behind the DC-09 frame by construction: it waits for the window;
        cut one at a time on a thread of its own, so clips never take the threads or cores the
        alarm path and the live view need."""
        v = self.cfg.video
        at = datetime.fromisoformat(job["at"])
        start, end = at - timedelta(seconds=v.clip_before_s), at + timedelta(seconds=v.clip_after_s)
        await asyncio.sleep(max(0.0, (end - utcnow()).total_seconds() + CLIP_SETTLE_S))
        loop = asyncio.get_running_loop()
        bodies = await loop.run_in_executor(self._clip_pool, self._cut_clip, job, start, end)
        if bodies is None:
            return
        seq0, self._seq = self._seq, self._seq + len(bodies)
        await loop.run_in_executor(self._clip_pool, self._store_clip, bodies, seq0)
        # The chunks are on disk in the media outbox: the job is done. Lost in a power cut, it is
        # done again, and the cloud stores each chunk once.
        with self.journal.transaction(durable=False):
            self.journal.set_state("clip_jobs", [j for j in self.journal.get_state("clip_jobs", []) if j != job])
            self.journal.set_state("seq", self._seq)
        self.clips_sent += 1
        self.media_sender.wake()

    def _store_clip(self, bodies: list[dict], seq0: int) -> None:
        """On the clip thread: the chunk envelopes into the media outbox, away from the alarm journal."""
        topic = topics.up(self.facility, topics.Stream.CAMERA)
        self.media.put_many([(topic, make_envelope(self.facility, "camera.clip", body, seq=seq0 + 1 + i,
                                                   ts=utcnow()).to_bytes()) for i, body in enumerate(bodies)])

    def _cut_clip(self, job: dict, start: datetime, end: datetime) -> Optional[list[dict]]:
        """On the clip thread: the chunk bodies of the camera's clip, or None when the agent is stopping."""
        v = self.cfg.video
        camera = next((c for c in self.cfg.cameras if c.id == job["camera_id"]), None)
        try:
            segments = clip_cutter.find_segments(v.recordings_root / camera.id, start, end, v.segment_s) \
                if camera is not None and camera.record else []
            clip = clip_cutter.cut_clip(clip_cutter.plan_clip(segments, start, end), max_bytes=v.clip_max_bytes,
                                        cancel=self._stopping)
        except clip_cutter.ClipError as exc:
            if self._stopping.is_set():
                return None
            log.error("clip of %s for alarm %s failed: %s", job["camera_id"], job["alarm_id"], exc)
            clip = clip_cutter.Clip(clip_cutter.plan_clip([], start, end), b"", transcoded=False)
        plan = clip.plan
        count = clip_cutter.chunk_count(clip.data, CLIP_CHUNK_BYTES)
        clip_id = uuid.uuid5(ALARM_ID_NAMESPACE, f"clip/{job['alarm_id']}/{job['camera_id']}")
        log.info("clip of %s for alarm %s: %d bytes in %d chunks, %d gaps", job["camera_id"], job["alarm_id"],
                 len(clip.data), count, len(plan.missing))
        return [ClipChunkBody(clip_id=clip_id, alarm_id=job["alarm_id"], camera_id=job["camera_id"], index=index,
                              count=count, window_start=plan.window_start, window_end=plan.window_end,
                              start=plan.start, end=plan.end,
                              missing=[MissingSpan(start=a, end=b) for a, b in plan.missing], size=len(clip.data),
                              sha256=clip.sha256, transcoded=clip.transcoded, truncated=clip.truncated,
                              data_b64=base64.b64encode(piece).decode("ascii")).model_dump(mode="json")
                for index, piece in enumerate(clip_cutter.chunks(clip.data, CLIP_CHUNK_BYTES))]

    def _on_camera_fault(self, ev: FaultEvent) -> None:
        zone = self.zone_of_camera.get(ev.camera_id)
        self.apply([fault_rules.camera_fault(ev, zone)])
        alarm_id = self.journal.active_alarm(ev.camera_id, AlarmKind.CAMERA_FAULT)
        if ev.state is AlarmState.ACTIVE and alarm_id is not None and ev.snapshot_jpeg is not None:
            self._enqueue_snapshots(alarm_id, zone.id if zone else None, [(ev.camera_id, ev.snapshot_jpeg)],
                                    Priority.ALARM)

    def _camera_health(self) -> None:
        with self.journal.transaction(durable=False):
            self._enqueue(self._envelope("camera.health", {"cameras": self.cameras.health(),
                                                           "recorders": self.recorder.status()}, utcnow()),
                          Priority.TELEMETRY)
            self.journal.set_state("seq", self._seq)
        self.uplink.kick()

    # --- retention ----------------------------------------------------------------------
    async def _retention_loop(self) -> None:
        while True:
            try:
                await self.check_retention()
            except Exception:
                log.exception("retention check failed")
            await asyncio.sleep(self.cfg.video.retention_check_s)

    async def check_retention(self) -> None:
        """Audit the footage; report it to the cloud; raise what is short, tampered or refused."""
        result = await self.retention.check()
        self.apply(fault_rules.retention(result, self.cfg.cameras, utcnow()))

    # --- police path --------------------------------------------------------------------
    async def _deliver(self, rec: PoliceRecord) -> None:
        delivery = await self.police.send(PoliceEvent(alarm_id=rec.alarm_id, kind=rec.kind, restore=rec.restore,
                                                      zone=rec.zone_number, ts=rec.ts))
        # No fsync: if a power cut loses this, the event goes to the police again on start
        # and the receiver stores it once (same alarm id); meanwhile the loop stays free.
        with self.journal.transaction(durable=False):
            self.journal.mark_police_delivered(rec.event_id, delivery.delivered_at, delivery.receiver,
                                               delivery.attempts)
            alarm = self.journal.alarm(rec.alarm_id)
            if alarm is not None and not rec.restore:
                body = self._alarm_body(alarm, AlarmState.ACTIVE)
                body.delivered_at = iso_utc(delivery.delivered_at)
                body.receiver = delivery.receiver
                body.detail = {**alarm.detail, "dc09_seq": delivery.seq, "attempts": delivery.attempts}
                self._enqueue(self._envelope("alarm.delivered", body.model_dump(mode="json"), delivery.delivered_at),
                              Priority.ALARM)
            self._save_state()
        self.uplink.kick()

    def _on_police_reply_refused(self, receiver: str, reason: str) -> None:
        self.security.report(SecurityKind.DC09_REPLY_REFUSED, receiver, reason, utcnow())

    def _emit_security(self, body: SecurityEventBody) -> None:
        self.apply([LogEvent("event.security", utcnow(), body.model_dump(mode="json"))])

    def _on_police_path(self, receiver: str, up: bool, reason: str) -> None:
        if up:
            log.info("police path %s up", receiver)
        else:
            log.error("police path %s down: %s", receiver, reason)
        self.apply([fault_rules.police_path(receiver, up, reason, utcnow())])

    # --- cloud input --------------------------------------------------------------------
    def _on_down_rejected(self, topic: str, reason: str) -> None:
        self.security.report(SecurityKind.COMMAND_REFUSED, DOWNLINK, f"{topic}: {reason}", utcnow())

    def _on_down(self, env: Envelope) -> None:
        """A command from the cloud, carried out only once the guard admits it. The id is on disk
        before the command acts, so a crash in between loses the command (the cloud shows it
        unconfirmed and it can be sent again, with a new id) rather than letting a replay in."""
        try:
            with self.journal.transaction():
                self.commands.admit(env, utcnow())
        except CommandRefused as exc:
            log.warning("down message %s %s refused: %s", env.type, env.id, exc)
            self.security.report(SecurityKind.COMMAND_REFUSED, DOWNLINK, f"{env.type} {env.id}: {exc}", utcnow())
            return
        try:
            if env.type == DownType.ACK_ALARM:
                ack = AlarmAckBody.model_validate(env.body)
                self.acked_by_cloud[str(ack.alarm_id)] = ack.model_dump(mode="json")
                while len(self.acked_by_cloud) > RECENT_ACKS:
                    self.acked_by_cloud.popitem(last=False)
                log.info("alarm %s acknowledged by %s", ack.alarm_id, ack.acked_by)
            elif env.type == DownType.LIVE_VIEW:
                body = LiveViewBody.model_validate(env.body)
                if self.live is not None:
                    self.live.request(body)
            elif env.type == DownType.ARM_SET:
                cmd = ArmSetBody.model_validate(env.body)
                self.command(cmd.action.value, cmd.zone, cmd.by)
            else:
                log.info("down message %s ignored", env.type)
        except ValidationError as exc:
            log.warning("down message %s refused: %s", env.type, describe_validation_error(exc))

    def command(self, action: str, zone: str, by: str) -> None:
        try:
            actions = self.engine.command(action, zone, by, utcnow())
        except CommandError as exc:
            log.warning("command %s on %s refused: %s", action, zone, exc)
            actions = [LogEvent("event.arming", utcnow(), {"zone": zone, "action": action, "by": by,
                                                           "refused": str(exc), "refused_key": exc.key.value,
                                                           "refused_params": exc.params})]
        self.apply(actions)

    # --- periodic -----------------------------------------------------------------------
    def _tick(self) -> None:
        actions = self.engine.tick(utcnow())
        if actions:
            self.apply(actions)
        self.security.flush()

    def _heartbeat(self) -> None:
        body = {"uptime_s": round(time.monotonic() - self._started_mono, 1),
                "outbox": self.journal.outbox.count(),
                "police_paths": self.police.path_states(),
                "police_encrypted": self.cfg.police.key is not None,
                "devices_rejected": dict(self.devices.rejected),
                "latched": self.engine.snapshot()["latched"]}
        if self.gb is not None:
            body["gb28181"] = self.gb.status()
        self.uplink.publish_direct(self._envelope("heartbeat", body, utcnow()))


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the gateway's TOML configuration")
    parser.add_argument("--log-level", default="INFO")


async def _run(cfg: EdgeConfig) -> None:
    agent = EdgeAgent(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await agent.start()
    await stop.wait()
    await agent.stop()


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config)
        local_broker_url(cfg)  # the provisioned login is there before anything starts
    except ConfigError as exc:
        print(f"careguard edge: bad configuration: {exc}", flush=True)
        return 2
    asyncio.run(_run(cfg))
    return 0
