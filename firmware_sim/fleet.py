"""A fleet of simulated facility gateways in one process, to load a cloud with a city or a province.

Each gateway speaks to the uplink broker as the edge agent does (edge/uplink): its own MQTT
connection with credentials, client id `edge-{facility}` on a persistent session, a retained
`status.gateway` online on connect and offline as its last will, a subscription to its downlink,
QoS 1 facts from an outbox that keeps what was not acknowledged (resent after a reconnect, as paho
does) and heartbeats at QoS 0 while connected. The envelopes are built with the contracts' models,
as the agent builds them: heartbeats, telemetry batches, camera health, retention reports, and
now and then an alarm (raised, delivered to the police for police kinds, cleared later) and an
outage (the connection dropped without a goodbye, facts piling up with their own times, then
drained), at the rates of `FleetConfig`.

One asyncio loop carries every gateway: a `Protocol` per connection (no reader task each) and
the loop's timers for the schedule, with the MQTT packets from wire.mqtt_codec. A gateway lists
several broker addresses and moves to the next one when a connection fails or is lost."""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import logging
import random
import resource
import statistics
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contracts import topics
from contracts.alarms import DEFAULT_SEVERITY, AlarmBody, AlarmKind, AlarmState
from contracts.dc09_codes import POLICE_KINDS
from contracts.envelope import (
    CameraHealthBody,
    CameraHealthItem,
    Envelope,
    RetentionCameraItem,
    RetentionReportBody,
    TelemetryBatch,
    TelemetryPoint,
    make_envelope,
)
from contracts.errors import describe_validation_error
from contracts.timefmt import iso_utc, utcnow
from contracts.video_platform import VideoPlatformStatus
from wire import mqtt_codec as codec
from wire.mqtt_client import BrokerAddress, parse_broker_url

log = logging.getLogger("careguard.sim.fleet")

# Kinds a gateway raises now and then, with their weights (panics are rare, camera faults are not).
ALARM_MIX = ((AlarmKind.CAMERA_FAULT, 5), (AlarmKind.DEVICE_OFFLINE, 3), (AlarmKind.INTRUSION, 1),
             (AlarmKind.PANIC, 1))
CLIMATE = (("temperature", 23.0, 1.0), ("humidity", 50.0, 5.0), ("co2", 650.0, 80.0))
MAX_DOWN_PACKET = 512 * 1024


class FleetConfig(BaseModel):
    """Rates are per gateway; defaults are the edge agent's own periods."""
    model_config = ConfigDict(extra="forbid")

    gateways: int = Field(ge=1, le=100_000)
    brokers: list[str] = Field(min_length=1,
                               description="mqtt://host:port, tried in turn (each gateway starts at its own)")
    facility_prefix: str = Field(default="SIM", pattern=r"^[A-Za-z0-9_-]{1,20}$")
    first_index: int = Field(default=1, ge=0, description="facility ids run from {prefix}{first_index:05d}")
    cameras: int = Field(default=4, ge=0, le=64)
    sensors: int = Field(default=2, ge=0, le=64, description="climate sensors (temperature, humidity, CO2 each)")
    heartbeat_s: float = Field(default=10.0, gt=0)
    camera_health_s: float = Field(default=10.0, gt=0)
    telemetry_s: float = Field(default=60.0, gt=0)
    retention_s: float = Field(default=300.0, gt=0)
    required_days: float = Field(default=90.0, gt=0)
    alarms_per_hour: float = Field(default=0.1, ge=0)
    alarm_clear_s: float = Field(default=60.0, gt=0)
    outages_per_hour: float = Field(default=0.02, ge=0)
    outage_s: float = Field(default=60.0, gt=0)
    connect_per_s: float = Field(default=1000.0, gt=0, description="pace of the first connections")
    keepalive_s: int = Field(default=60, ge=5, le=3600)
    reconnect_min_s: float = Field(default=0.5, gt=0, le=60,
                                   description="first wait before connecting again (jittered ±50 %, doubling to 10 s)")
    connack_timeout_s: float = Field(default=10.0, gt=0, description="give up on a connection not accepted by then")
    in_flight: int = Field(default=20, ge=1, le=1000, description="QoS 1 messages awaiting PUBACK, per gateway")
    outbox_cap: int = Field(default=20_000, ge=10, description="facts kept per gateway while disconnected")
    v5: bool = Field(default=False, description="MQTT 5 instead of 3.1.1 (the edge agent's default)")
    clean_session: bool = Field(default=False, description="a new session on every connection (the edge agent "
                                                           "keeps its own, for the downlink it subscribes to)")
    record_ids: bool = Field(default=False, description="remember every fact's envelope id, and those the broker "
                                                        "acknowledged (for loss checks)")
    seed: int = 0

    @field_validator("brokers")
    @classmethod
    def _brokers(cls, v: list[str]) -> list[str]:
        for url in v:
            parse_broker_url(url)
        return v

    def facility(self, i: int) -> str:
        return f"{self.facility_prefix}{self.first_index + i:05d}"


Credentials = Callable[[str], tuple[str, str]]


@dataclass
class FleetStats:
    connected: int = 0
    connects: int = 0
    connect_failures: int = 0
    refused: int = 0
    lost: int = 0
    facts: int = 0
    published: int = 0
    acked: int = 0
    refused_publishes: int = 0
    heartbeats: int = 0
    down_messages: int = 0
    alarms: int = 0
    outages: int = 0
    dropped: int = 0
    first_connect_s: list[float] = field(default_factory=list)


class _Link(asyncio.Protocol):
    """One MQTT connection of one gateway: bytes in to the decoder, packets to the gateway."""

    def __init__(self, gateway: "SimGateway"):
        self.gateway = gateway
        self.transport: Optional[asyncio.Transport] = None
        self.decoder = codec.Decoder(v5=gateway.fleet.config.v5, max_packet_bytes=MAX_DOWN_PACKET)

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.gateway.on_transport(self)

    def data_received(self, data: bytes) -> None:
        try:
            packets = self.decoder.feed(data)
        except codec.MqttProtocolError as exc:
            log.warning("%s: broker sent bad MQTT (%s); reconnecting", self.gateway.facility, exc)
            self.transport.abort()
            return
        for packet in packets:
            self.gateway.on_packet(self, packet)

    def connection_lost(self, exc) -> None:
        self.gateway.on_lost(self)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


class SimGateway:
    def __init__(self, fleet: "Fleet", index: int):
        self.fleet = fleet
        self.index = index
        cfg = fleet.config
        self.facility = cfg.facility(index)
        self.rng = random.Random(cfg.seed * 1_000_003 + index)
        self.brokers = fleet.addresses[index % len(fleet.addresses):] + fleet.addresses[:index % len(fleet.addresses)]
        self.broker_i = 0
        self.seq = 0
        self.outbox: deque[tuple[str, bytes, Optional[str]]] = deque()
        self.in_flight: dict[int, tuple[str, bytes, Optional[str]]] = {}
        self.next_pid = 1
        self.link: Optional[_Link] = None
        self.connected = False
        self.killed = False
        self.in_outage = False
        self.started = time.monotonic()
        self.first_attempt = self.started  # set by Fleet.start to the gateway's turn in the ramp
        self.ever_connected = False
        self.backoff = self.fleet.config.reconnect_min_s
        self.active_alarms: dict[str, AlarmBody] = {}
        # Registered with the police video platform (GB/T 28181), every camera a channel.
        self.video_platform = VideoPlatformStatus(
            registered=True, platform="10.0.0.1:5060", platform_id="37080000002000000001",
            device_id=f"3708000000118{index:07d}", transport="udp", since=iso_utc(utcnow()), reason="registered",
            cameras=[f"cam-{k}" for k in range(1, cfg.cameras + 1)], streams=0).model_dump(mode="json")

    # --- envelopes, as the edge agent builds them ----------------------------------------------
    def envelope(self, type_: str, body: dict | BaseModel, ts: Optional[datetime] = None) -> Envelope:
        self.seq += 1
        return make_envelope(self.facility, type_, body, seq=self.seq, ts=ts or utcnow())

    def status(self, online: bool) -> bytes:
        return self.envelope("status.gateway", {"state": "online" if online else "offline"}).to_bytes()

    def fact(self, env: Envelope) -> None:
        """Into the outbox (QoS 1, kept until acknowledged), as the agent's journal does."""
        stats = self.fleet.stats
        stats.facts += 1
        if len(self.outbox) >= self.fleet.config.outbox_cap:
            self.outbox.popleft()
            stats.dropped += 1
        eid = str(env.id)
        if self.fleet.ids is not None:
            self.fleet.ids.append(eid)
        self.outbox.append((topics.up(self.facility, env.stream), env.to_bytes(), eid))
        self.drain()

    # --- connection ---------------------------------------------------------------------------
    def connect(self) -> None:
        if self.killed or self.in_outage or self.link is not None:
            return
        addr = self.brokers[self.broker_i % len(self.brokers)]
        self.link = _Link(self)
        link = self.link
        loop = self.fleet.loop

        async def open_() -> None:
            try:
                await asyncio.wait_for(loop.create_connection(lambda: link, addr.host, addr.port), 10)
            except (OSError, asyncio.TimeoutError) as exc:
                log.debug("%s: %s:%d unreachable: %s", self.facility, addr.host, addr.port, exc)
                self.fleet.stats.connect_failures += 1
                if self.link is link:
                    self.link = None
                    self.retry()
                return
            loop.call_later(self.fleet.config.connack_timeout_s, give_up, link)

        def give_up(link: _Link) -> None:
            # No CONNACK in time: the broker is not answering; try the next one.
            if self.link is link and not self.connected and link.transport is not None:
                link.transport.abort()

        self.fleet.spawn(open_())

    def on_transport(self, link: _Link) -> None:
        cfg = self.fleet.config
        user, password = self.fleet.credentials(self.facility) if self.fleet.credentials else (None, None)
        # A fresh will for each connection: the cloud is idempotent on envelope id.
        link.write(codec.encode_connect(f"edge-{self.facility}", v5=cfg.v5, keepalive_s=cfg.keepalive_s,
                                        clean=cfg.clean_session,
                                        session_expiry_s=0 if cfg.clean_session or not cfg.v5 else 7 * 24 * 3600,
                                        username=user,
                                        password=password, will_topic=topics.up(self.facility, topics.Stream.STATUS),
                                        will_payload=self.status(False), will_qos=1, will_retain=True))

    def on_packet(self, link: _Link, packet) -> None:
        kind = type(packet)
        stats = self.fleet.stats
        if kind is codec.PubAck:
            item = self.in_flight.pop(packet.packet_id, None)
            if item is not None:
                if packet.reason_code >= 0x80:
                    stats.refused_publishes += 1
                elif item[2] is not None:
                    stats.acked += 1
                    if self.fleet.acked_ids is not None:
                        self.fleet.acked_ids.append(item[2])
                self.drain()
        elif kind is codec.ConnAck:
            if packet.reason_code:
                stats.refused += 1
                log.warning("%s: broker refused the connection (code %d)", self.facility, packet.reason_code)
                link.transport.abort()
                return
            self.connected = True
            self.backoff = self.fleet.config.reconnect_min_s
            stats.connects += 1
            stats.connected += 1
            if not self.ever_connected:
                self.ever_connected = True
                stats.first_connect_s.append(time.monotonic() - self.first_attempt)
            link.write(codec.encode_subscribe(1, topics.down_all(self.facility), 1, v5=self.fleet.config.v5))
            # What was in flight goes again, first (paho resends its in-flight messages on reconnect).
            pending = [item for item in self.in_flight.values() if item[2] is not None]
            self.in_flight.clear()
            self.outbox.extendleft(reversed(pending))
            self.publish_qos1((topics.up(self.facility, topics.Stream.STATUS), self.status(True), None), retain=True)
            self.drain()
        elif kind is codec.Publish:
            stats.down_messages += 1
            if packet.qos:
                link.write(codec.encode_puback(packet.packet_id))
        elif kind is codec.Disconnect:
            link.transport.abort()

    def on_lost(self, link: _Link) -> None:
        if self.link is not link:
            return
        self.link = None
        if self.connected:
            self.connected = False
            self.fleet.stats.connected -= 1
            self.fleet.stats.lost += 1
        self.retry()

    def retry(self) -> None:
        """Connect again after a jittered backoff, to the next address: the node may be gone."""
        if self.killed or self.in_outage:
            return
        delay = self.backoff * (0.5 + self.rng.random())
        self.backoff = min(self.backoff * 2, 10.0)
        self.broker_i += 1
        self.fleet.loop.call_later(delay, self.connect)

    def drop(self) -> None:
        """The connection ends without a goodbye (power cut, cable): the broker sends the will."""
        if self.link is not None and self.link.transport is not None:
            self.link.transport.abort()

    # --- publishing ---------------------------------------------------------------------------
    def publish_qos1(self, item: tuple[str, bytes, Optional[str]], retain: bool = False) -> None:
        pid = self.next_pid
        while pid in self.in_flight:
            pid = pid % 0xFFFF + 1
        self.next_pid = pid % 0xFFFF + 1
        self.in_flight[pid] = item
        self.link.write(codec.encode_publish(item[0], item[1], qos=1, packet_id=pid, v5=self.fleet.config.v5,
                                             retain=retain))
        self.fleet.stats.published += 1

    def drain(self) -> None:
        if not self.connected:
            return
        while self.outbox and len(self.in_flight) < self.fleet.config.in_flight:
            self.publish_qos1(self.outbox.popleft())

    # --- what the agent sends -------------------------------------------------------------------
    def heartbeat(self) -> None:
        if not self.connected:
            return  # state, not a fact: never buffered
        body = {"uptime_s": round(time.monotonic() - self.started, 1), "outbox": len(self.outbox),
                "police_paths": {"arc-primary": True, "arc-backup": True}, "police_encrypted": True,
                "devices_rejected": {}, "latched": {}, "gb28181": self.video_platform}
        env = self.envelope("heartbeat", body)
        self.link.write(codec.encode_publish(topics.up(self.facility, topics.Stream.HEARTBEAT), env.to_bytes(),
                                             v5=self.fleet.config.v5))
        self.fleet.stats.heartbeats += 1

    def camera_health(self) -> None:
        n = self.fleet.config.cameras
        faulty = {a.source for a in self.active_alarms.values() if a.kind is AlarmKind.CAMERA_FAULT}
        items = []
        for k in range(1, n + 1):
            cam = f"cam-{k}"
            fault = "covered" if cam in faulty else None
            fps = round(5.0 + self.rng.uniform(-0.3, 0.3), 2)
            items.append(CameraHealthItem(camera_id=cam, state="streaming", fault=fault, camera_fps=fps,
                                          last_frame_age_s=round(self.rng.uniform(0.05, 0.4), 3),
                                          frames=int((time.monotonic() - self.started) * fps), reconnects=0, stalls=0,
                                          connection_quality=round(self.rng.uniform(0.95, 1.0), 3),
                                          fault_since_s=None))
        recorders = {f"cam-{k}": {"running": True, "restarts": 0, "last_error": None} for k in range(1, n + 1)}
        self.fact(self.envelope("camera.health", CameraHealthBody(cameras=items, recorders=recorders)))

    def telemetry(self) -> None:
        now = utcnow()
        points = [TelemetryPoint(device_id=f"th-{k}", metric=metric, value=round(self.rng.gauss(mean, sd), 2), ts=now)
                  for k in range(1, self.fleet.config.sensors + 1) for metric, mean, sd in CLIMATE]
        if points:
            self.fact(self.envelope("telemetry.batch", TelemetryBatch(points=points)))

    def retention(self) -> None:
        cfg = self.fleet.config
        now = utcnow()
        days = cfg.required_days + 5 + self.index % 7
        cams = [RetentionCameraItem(camera_id=f"cam-{k}", achieved_days=days, compliant=True, segment_s=60.0,
                                    segments=int(days * 1440), oldest=iso_utc(now - timedelta(days=days)),
                                    newest=iso_utc(now), gaps=[], required_days=cfg.required_days,
                                    projected_breach=False, projected_days_short=0.0, findings=[])
                for k in range(1, cfg.cameras + 1)]
        body = RetentionReportBody(required_days=cfg.required_days, cameras=cams, root="/var/lib/careguard/recordings",
                                   checked_at=iso_utc(now), compliant=True, projected_breach=False, tamper=[],
                                   findings=[])
        self.fact(self.envelope("retention.report", body))

    def alarm(self) -> None:
        kinds, weights = zip(*ALARM_MIX)
        kind = self.rng.choices(kinds, weights)[0]
        if kind is AlarmKind.CAMERA_FAULT and self.fleet.config.cameras:
            source, device, zone = f"cam-{self.rng.randint(1, self.fleet.config.cameras)}", None, None
        else:
            source = device = f"dev-{self.rng.randint(1, 8)}"
            zone = f"zone-{self.rng.randint(1, 4)}"
        key = f"{kind.value}/{source}"
        if key in self.active_alarms:
            return  # one active alarm per (source, kind), as the engine keeps it
        body = AlarmBody(alarm_id=uuid.uuid4(), kind=kind, severity=DEFAULT_SEVERITY[kind], source=source, zone=zone,
                         device_id=device, detail={"sim": True})
        raised = utcnow()
        self.active_alarms[key] = body
        self.fleet.stats.alarms += 1
        self.fact(self.envelope("alarm.raised", body, raised))
        if kind in POLICE_KINDS:
            delivered = raised + timedelta(milliseconds=self.rng.uniform(80, 400))
            self.fact(self.envelope("alarm.delivered", body.model_copy(update={
                "delivered_at": iso_utc(delivered), "receiver": "arc-primary",
                "detail": {**body.detail, "dc09_seq": self.seq % 10_000, "attempts": 1}}), delivered))
        self.fleet.after(self.fleet.config.alarm_clear_s * (0.5 + self.rng.random()), self, self.clear_alarm, key)

    def clear_alarm(self, key: str) -> None:
        body = self.active_alarms.pop(key, None)
        if body is not None:
            self.fact(self.envelope("alarm.cleared", body.model_copy(update={"state": AlarmState.CLEARED})))

    def outage(self) -> None:
        if self.in_outage or not self.connected:
            return
        self.in_outage = True
        self.fleet.stats.outages += 1
        self.drop()
        self.fleet.after(self.fleet.config.outage_s * (0.5 + self.rng.random()), self, self.end_outage)

    def end_outage(self) -> None:
        self.in_outage = False
        self.backoff = self.fleet.config.reconnect_min_s
        self.connect()

    def kill(self, silent: bool = False) -> None:
        """Gone for good: no goodbye, no reconnect, nothing more sent. `silent`: the connection
        is left open, as by a hung gateway or a cut cable the broker learns of only from its
        keepalive, instead of dropped (the broker sends the last will at once)."""
        self.killed = True
        if not silent:
            self.drop()


class Fleet:
    """`await fleet.start()`, then `fleet.stats` moves; `kill(n)` drops n gateways for good;
    `await fleet.stop()` says goodbye (offline status) for those still connected."""

    def __init__(self, config: FleetConfig, credentials: Optional[Credentials] = None):
        self.config = config
        self.credentials = credentials
        self.addresses: list[BrokerAddress] = [parse_broker_url(u) for u in config.brokers]
        self.stats = FleetStats()
        self.ids: Optional[list[str]] = [] if config.record_ids else None
        self.acked_ids: Optional[list[str]] = [] if config.record_ids else None
        self.gateways = [SimGateway(self, i) for i in range(config.gateways)]
        self.loop: asyncio.AbstractEventLoop
        self._tasks: set[asyncio.Task] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._stopping = False

    def spawn(self, coro) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def after(self, delay: float, gw: SimGateway, fn, *args) -> None:
        """Call `fn(*args)` in `delay` s unless the gateway is killed or the fleet stopping."""
        def run() -> None:
            self._timers.discard(handle)
            if not gw.killed and not self._stopping:
                fn(*args)
        handle = self.loop.call_later(delay, run)
        self._timers.add(handle)

    def every(self, period: float, gw: SimGateway, fn) -> None:
        """Every `period` s (jittered ±10 %), the first one at a random phase so the fleet spreads out."""
        def tick() -> None:
            fn()
            self.after(period * gw.rng.uniform(0.9, 1.1), gw, tick)
        self.after(period * gw.rng.random(), gw, tick)

    def poisson(self, per_hour: float, gw: SimGateway, fn) -> None:
        if per_hour <= 0:
            return

        def fire() -> None:
            fn()
            self.after(gw.rng.expovariate(per_hour / 3600), gw, fire)
        self.after(gw.rng.expovariate(per_hour / 3600), gw, fire)

    async def start(self) -> "Fleet":
        """Connect every gateway at `connect_per_s` and start their schedules; returns at once."""
        self.loop = asyncio.get_running_loop()
        cfg = self.config
        for i, gw in enumerate(self.gateways):
            gw.first_attempt = time.monotonic() + i / cfg.connect_per_s
            self.after(i / cfg.connect_per_s, gw, gw.connect)
            self.every(cfg.heartbeat_s, gw, gw.heartbeat)
            if cfg.cameras:
                self.every(cfg.camera_health_s, gw, gw.camera_health)
            self.every(cfg.telemetry_s, gw, gw.telemetry)
            if cfg.cameras:
                self.every(cfg.retention_s, gw, gw.retention)
            self.poisson(cfg.alarms_per_hour, gw, gw.alarm)
            self.poisson(cfg.outages_per_hour, gw, gw.outage)
        return self

    async def wait_connected(self, n: Optional[int] = None, timeout: float = 120.0) -> bool:
        want = self.config.gateways if n is None else n
        deadline = time.monotonic() + timeout
        while self.stats.connected < want and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return self.stats.connected >= want

    def kill(self, n: int, silent: bool = False) -> list[str]:
        """Kill `n` connected gateways for good (spread over the fleet, see SimGateway.kill);
        their facility ids."""
        alive = [g for g in self.gateways if g.connected and not g.killed]
        step = max(1, len(alive) // max(n, 1))
        victims = alive[::step][:n]
        for g in victims:
            g.kill(silent)
        return [g.facility for g in victims]

    def backlog(self) -> int:
        """Facts not yet acknowledged by the broker, over the fleet."""
        return sum(len(g.outbox) + sum(1 for i in g.in_flight.values() if i[2] is not None) for g in self.gateways)

    def summary(self) -> dict:
        s = self.stats
        times = sorted(s.first_connect_s)
        out = {k: v for k, v in s.__dict__.items() if k != "first_connect_s"}
        out["ever_connected"] = len(times)
        out["backlog"] = self.backlog()
        out["first_connect_p50_s"] = round(statistics.median(times), 3) if times else None
        out["first_connect_p99_s"] = round(times[min(len(times) - 1, int(len(times) * 0.99))], 3) if times else None
        return out

    async def stop(self, timeout: float = 5.0) -> None:
        """A clean goodbye from each connected gateway: offline status, then DISCONNECT."""
        self._stopping = True
        for handle in list(self._timers):
            handle.cancel()
        self._timers.clear()
        for gw in self.gateways:
            gw.killed = True
            if gw.connected and gw.link is not None:
                gw.publish_qos1((topics.up(gw.facility, topics.Stream.STATUS), gw.status(False), None), retain=True)
                gw.link.write(codec.encode_disconnect(v5=self.config.v5))
        await asyncio.sleep(min(timeout, 0.5))
        for gw in self.gateways:
            if gw.link is not None and gw.link.transport is not None:
                gw.link.transport.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def raise_open_files(want: int) -> int:
    """Lift the soft limit on open files towards `want` (a connection each); returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def load_credentials(path: str) -> Credentials:
    """A CSV file of `facility,username,password` lines."""
    table: dict[str, tuple[str, str]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) != 3:
                raise ValueError(f"{path}:{n}: expected facility,username,password")
            table[row[0]] = (row[1], row[2])

    def lookup(facility: str) -> tuple[str, str]:
        try:
            return table[facility]
        except KeyError:
            raise ValueError(f"{path}: no credentials for facility {facility}") from None
    return lookup


# --- command line -------------------------------------------------------------------------------
def add_fleet_command(sub) -> None:
    p = sub.add_parser("fleet", help="run many simulated gateways against an uplink broker")
    p.add_argument("--gateways", type=int, required=True, help="how many facility gateways")
    p.add_argument("--broker", action="append", required=True, metavar="URL",
                   help="uplink broker mqtt://host:port; repeat for a cluster (gateways move on when one fails)")
    p.add_argument("--credentials", help="CSV of facility,username,password (default: anonymous)")
    p.add_argument("--prefix", default="SIM", help="facility ids are PREFIX00001... (default SIM)")
    p.add_argument("--duration", type=float, help="stop after S seconds (default: until Ctrl-C/SIGTERM)")
    p.add_argument("--alarms-per-hour", type=float, default=0.1, help="per gateway (default 0.1)")
    p.add_argument("--outages-per-hour", type=float, default=0.02, help="per gateway (default 0.02)")
    p.add_argument("--outage-s", type=float, default=60.0, help="mean outage length (default 60)")
    p.add_argument("--cameras", type=int, default=4)
    p.add_argument("--sensors", type=int, default=2)
    p.add_argument("--v5", action="store_true", help="MQTT 5 instead of 3.1.1")
    p.add_argument("--report-s", type=float, default=10.0, help="print a JSON line of counters this often")


def run_fleet_command(args: argparse.Namespace) -> int:
    try:
        cfg = FleetConfig(gateways=args.gateways, brokers=args.broker, facility_prefix=args.prefix,
                          alarms_per_hour=args.alarms_per_hour, outages_per_hour=args.outages_per_hour,
                          outage_s=args.outage_s, cameras=args.cameras, sensors=args.sensors, v5=args.v5)
        credentials = load_credentials(args.credentials) if args.credentials else None
    except (ValidationError, ValueError, OSError) as exc:
        msg = describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
        print(f"careguard sim fleet: {msg}", file=sys.stderr)
        return 2
    limit = raise_open_files(cfg.gateways + 256)
    if limit < cfg.gateways + 64:
        print(f"careguard sim fleet: {cfg.gateways} connections need more open files than the limit of {limit}",
              file=sys.stderr)
        return 2
    try:
        asyncio.run(_run_fleet(cfg, credentials, args.duration, args.report_s))
    except KeyboardInterrupt:
        pass
    return 0


async def _run_fleet(cfg: FleetConfig, credentials: Optional[Credentials], duration: Optional[float],
                     report_s: float) -> None:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    fleet = await Fleet(cfg, credentials).start()
    end = time.monotonic() + duration if duration else None
    while not stop.is_set() and (end is None or time.monotonic() < end):
        try:
            await asyncio.wait_for(stop.wait(), min(report_s, end - time.monotonic()) if end else report_s)
        except asyncio.TimeoutError:
            pass
        print(json.dumps(fleet.summary()), flush=True)
    await fleet.stop()
    print(json.dumps(fleet.summary()), flush=True)
