"""`careguard run` (what `make run` calls): the whole system on embedded defaults.

One process: an in-process MQTT broker (amqtt), the cloud (ingest, SQLite, API, pages), the
police alarm centre's DC-09 receiver, and three simulated facilities, each with its edge agent,
a one-button alarm per class, a few sensors and two simulated cameras (small MJPEG streams that
its agent analyses and records). The registry, the care records and a history of footage are
seeded so that each facility tells the story careguard/demo_data.py describes. Nothing to install
beyond the Python packages (and ffmpeg, for recording); state lives under `var/`.

Each facility's local broker takes only its provisioned logins (edge/broker_auth.py), as on
site: the devices and the agent log in with the credentials under `var/broker-<facility>/`.

What `careguard sim scenario` needs to drive a story against it (URLs, ports, tokens, camera
fault URLs, the credentials files, and a small control endpoint that takes a gateway or the
police receiver off the air for a while) is written to `var/run-state.json` (mode 0600)."""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import os
import re
import secrets
import signal
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import func, select

from arc.receiver import ArcAccount, ArcReceiver
from arc.store import ArcStore
from careguard.demo_data import (CAMERAS, CLASSES, FACILITIES, REQUIRED_DAYS, Z2M_DEVICES, ZONE_CAMERAS, ZONES,
                                 DemoFacility, camera_id,
                                 children_of, demo_tokens, seed_care, seed_footage, seed_registry)
from careguard.embedded_broker import EmbeddedBroker
from cloud.alarms.signing_key import load_or_create
from cloud.care.privacy import app_cipher
from cloud.config import CloudConfig
from cloud.main import CloudService
from cloud.store.db import alarms
from contracts.alarms import AlarmKind
from contracts.device import ANALOGUE_KINDS
from contracts.timefmt import utcnow
from edge.agent import EdgeAgent
from edge.broker_auth import SECRETS_FILE, Provisioned, provision
from edge.config import parse_config
from firmware_sim import SensorFleet, Zigbee2MqttBridge
from firmware_sim.camera import SceneCamera, SimulatedCamera
from firmware_sim.camera_rtsp import RtspCamera, RtspServerUnavailable
from firmware_sim.camera_scene import scene_by_name
from firmware_sim.video_platform import SimulatedVideoPlatform
from testing.services import LOOPBACK, free_port
from wire.envelope_signing import public_key_hex

log = logging.getLogger("careguard.run")

STATE_FILE = "run-state.json"
RECEIVER_LABEL = "济宁市公安局110指挥中心"
# Small and slow on purpose: six cameras analysed and recorded on a 2-core laptop stay cheap.
CAMERA_FPS = 2.0
CAMERA_SIZE = (320, 180)
ANALYSIS_FPS = 0.5
DRILL_EVERY_DAYS = 25
MAX_OFFLINE_S = 600
# GB/T 28181 codes (20 digits: 10 of the domain, 3 of the type, 7 of the serial) of the simulated police
# video platform (type 200) and, per facility, its gateway (type 118, an NVR) and channels (131, cameras).
VIDEO_DOMAIN = "3708110000"
VIDEO_PLATFORM_ID = f"{VIDEO_DOMAIN}2000000001"
Z2M_LOGIN = "zigbee2mqtt"  # the bridge's login on the facility broker (edge config's default bridge_username)


def _port_or_free(preferred: int) -> int:
    if preferred == 0:
        return free_port()
    with socket.socket() as s:
        try:
            s.bind((LOOPBACK, preferred))
            return preferred
        except OSError:
            return free_port()


def facility_config(f: DemoFacility, aes_key: str, cloud_key: str, local_url: str, broker_port: int, arc_port: int,
                    var: Path, cameras: dict[str, DemoCamera], video: dict) -> dict:
    """`video`: the gb28181 table (platform, this gateway's code and password) and `channels`, the
    cameras' codes in order."""
    fid = f.facility_id
    zigbee = f.devices == "zigbee2mqtt"
    channels = dict(zip(cameras, video["channels"]))
    return {
        "facility_id": fid,
        "local_broker": local_url,
        # A username gives the gateway a persistent session on the embedded broker.
        "uplink": {"broker": f"mqtt://{fid}:{fid}@{LOOPBACK}:{broker_port}", "heartbeat_s": 10,
                   "cloud_public_key": cloud_key},
        "police": {"account": f.account, "key": aes_key,
                   "receivers": [{"host": LOOPBACK, "port": arc_port, "label": RECEIVER_LABEL}]},
        "outbox": {"path": str(var / f"edge-{fid}.sqlite3")},
        "device_auth": {"dir": str(var / f"broker-{fid}")},
        "cameras": [{"id": cid, "source": cam.source, "analysis_fps": ANALYSIS_FPS, "gb_id": channels[cid],
                     **({"record_source": cam.record_source} if cam.record_source else {})}
                    for cid, cam in cameras.items()],
        "gb28181": video["gb28181"],
        "video": {"recordings_root": str(recordings_root(var, fid)), "index_path": str(segment_index(var, fid)),
                  "required_days": REQUIRED_DAYS, "segment_s": 60},
        # Zigbee devices name their zone themselves (below); CareGuard's own are listed by zone.
        "zones": [{"id": z, "number": n, "name": name, "kind": kind,
                   "devices": [] if zigbee else [f"{fid}-{d}" for d, *_ in devs],
                   "cameras": [camera_id(fid, c) for c in ZONE_CAMERAS.get(z, ())],
                   **({"schedule": [{"arm": "18:00:00", "disarm": "07:00:00"}]} if kind == "intrusion" else {})}
                  for z, n, name, kind, devs in ZONES],
        **({"zigbee2mqtt": {"devices": [{"friendly_name": fn, "device_id": f"{fid}-{d}", "zone": z, "profile": profile}
                                        for fn, _, d, profile, _, _, z in Z2M_DEVICES]}} if zigbee else {}),
    }


def gb_codes(index: int) -> tuple[str, list[str]]:
    """The facility's gateway code and its cameras' channel codes on the police video platform."""
    return (f"{VIDEO_DOMAIN}118{index + 1:07d}",
            [f"{VIDEO_DOMAIN}131{(index + 1) * 100 + n:07d}" for n in range(1, len(CAMERAS) + 1)])


def recordings_root(var: Path, fid: str) -> Path:
    """Each gateway records onto a disk of its own, as on site: its audit sees only its cameras."""
    return var / "recordings" / fid


def segment_index(var: Path, fid: str) -> Path:
    return var / f"segments-{fid}.sqlite3"


def start_devices(f: DemoFacility, broker_url: str, seed: int, auth: Provisioned):
    """The facility's simulated devices, by the source its story chooses: CareGuard's own, each with
    its login, or a Zigbee2MQTT bridge with its paired devices, on the bridge's login."""
    if f.devices == "zigbee2mqtt":
        return Zigbee2MqttBridge(broker_url, [{"friendly_name": fn, "kind": kind, "seed": seed + i, "report_s": 5}
                                              for i, (fn, kind, *_) in enumerate(Z2M_DEVICES)],
                                 username=Z2M_LOGIN, password=auth.passwords[Z2M_LOGIN]).start()
    return SensorFleet(broker_url, [{"device_id": d, "kind": k.value, "seed": seed,
                                     "interval_s": 5 if k in ANALOGUE_KINDS else 30, "password": auth.passwords[d]}
                                    for _, d, k, _ in f.device_list()]).start()


@dataclass
class DemoCamera:
    """A simulated camera and how the gateway reads it: `source` analysed, `record_source` recorded
    (an RTSP camera's main stream), `fault_url` where a scenario injects a fault (MJPEG cameras)."""
    sim: SceneCamera
    kind: str
    source: str
    record_source: Optional[str] = None
    fault_url: Optional[str] = None


def start_cameras(f: DemoFacility, seed: int) -> dict[str, DemoCamera]:
    """The facility's simulated cameras, by the source its story chooses. RTSP cameras need
    GStreamer from Debian (`make test` installs it); without it the facility falls back to MJPEG
    and says so."""
    width, height = CAMERA_SIZE
    out: dict[str, DemoCamera] = {}
    for i, (suffix, _, _, scene) in enumerate(CAMERAS):
        cid = camera_id(f.facility_id, suffix)
        if f.cameras == "rtsp":
            try:
                rtsp = RtspCamera(scene_by_name(scene, seed=seed + i), fps=CAMERA_FPS, width=width, height=height).start()
                out[cid] = DemoCamera(rtsp, "rtsp", rtsp.url("sub"), record_source=rtsp.url("main"))
                continue
            except RtspServerUnavailable as exc:
                log.warning("%s: RTSP cameras unavailable, MJPEG instead: %s", f.facility_id, exc)
        mjpeg = SimulatedCamera(scene_by_name(scene, seed=seed + i), fps=CAMERA_FPS, width=width, height=height).start()
        out[cid] = DemoCamera(mjpeg, "mjpeg", mjpeg.url, fault_url=mjpeg.url.rsplit("/", 1)[0] + "/fault")
    return out


class EdgeRuntime:
    """The ARC receiver, the police video platform (when given) and the edge agents on one
    asyncio loop of their own thread."""

    def __init__(self, arc: ArcReceiver, configs: list[dict], video_platform: Optional[SimulatedVideoPlatform] = None):
        self.arc = arc
        self.video_platform = video_platform
        self.configs = configs
        self.agents: list[EdgeAgent] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="edge-runtime", daemon=True)
        self._away: set[str] = set()

    def start(self) -> None:
        self.thread.start()
        self.run(self._start(), 30)

    def run(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        await self.arc.start()
        if self.video_platform is not None:
            await self.video_platform.start()
        agents = [EdgeAgent(parse_config(cfg, f"facility {cfg['facility_id']}")) for cfg in self.configs]
        await asyncio.gather(*(a.start() for a in agents))
        self.agents = agents

    def agent(self, fid: str) -> EdgeAgent:
        return next(a for a in self.agents if a.facility == fid)

    def drill(self, fid: str, zone: str) -> None:
        async def _drill():
            self.agent(fid).command("test", zone, "careguard-demo")
        self.run(_drill())

    def take_offline(self, what: str, seconds: float) -> None:
        """Take a gateway's uplink (`gateway:F001`) or the police receiver (`arc`) off the air for
        `seconds`, then bring it back: what a scenario shows, a dead line, is made for real."""
        if what in self._away:
            raise ValueError(f"{what} is already off the air")
        self._away.add(what)

        async def _cycle():
            try:
                if what == "arc":
                    await self.arc.close()
                else:
                    self.agent(what.split(":", 1)[1]).uplink.stop()
                await asyncio.sleep(seconds)
                if what == "arc":
                    await self.arc.start()
                else:
                    self.agent(what.split(":", 1)[1]).uplink.start()
            finally:
                self._away.discard(what)
        asyncio.run_coroutine_threadsafe(_cycle(), self.loop)

    def stop(self) -> None:
        async def _stop():
            for agent in self.agents:
                await agent.stop()
            await self.arc.close()
            if self.video_platform is not None:
                await self.video_platform.close()
        self.run(_stop(), 30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class DemoControl:
    """A loopback HTTP endpoint for `careguard sim scenario`, behind a bearer token of its own:
    POST /offline/arc?seconds=N and POST /offline/gateway/F001?seconds=N."""

    def __init__(self, runtime: EdgeRuntime, facilities: list[str]):
        self.runtime = runtime
        self.facilities = set(facilities)
        self.token = secrets.token_urlsafe(24)
        self.server = ThreadingHTTPServer((LOOPBACK, 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="demo-control", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server.server_address[1]}"

    def start(self) -> "DemoControl":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        control = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):
                log.info("control: " + fmt, *args)

            def _reply(self, code: int, body: dict) -> None:
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self):
                given = self.headers.get("Authorization", "").removeprefix("Bearer ").encode()
                if not hmac.compare_digest(given, control.token.encode()):
                    return self._reply(401, {"detail": "bearer token of var/run-state.json required"})
                url = urlsplit(self.path)
                try:
                    seconds = float(parse_qs(url.query).get("seconds", ["60"])[0])
                except ValueError:
                    return self._reply(422, {"detail": "seconds: not a number"})
                if not 1 <= seconds <= MAX_OFFLINE_S:
                    return self._reply(422, {"detail": f"seconds: between 1 and {MAX_OFFLINE_S}"})
                m = re.fullmatch(r"/offline/(arc|gateway/([A-Za-z0-9_-]{1,32}))", url.path)
                if m is None or (m[2] is not None and m[2] not in control.facilities):
                    return self._reply(404, {"detail": f"no such thing to take offline: {url.path[:80]}"})
                what = "arc" if m[2] is None else f"gateway:{m[2]}"
                try:
                    control.runtime.take_offline(what, seconds)
                except ValueError as exc:
                    return self._reply(409, {"detail": str(exc)})
                return self._reply(202, {"offline": what, "seconds": seconds})

        return Handler


def write_state(path: Path, state: dict) -> None:
    """The run's state for `careguard sim scenario`, readable by this user only (it holds tokens)."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(state, out, ensure_ascii=False, indent=2)
    os.replace(tmp, path)


def drill_due(cloud: CloudService, fid: str) -> bool:
    a = alarms.c
    with cloud.engine.connect() as conn:
        last = conn.execute(select(func.max(a.delivered_at)).where(a.facility == fid,
                                                                  a.kind == AlarmKind.TEST.value)).scalar()
    return last is None or (utcnow() - last).days >= DRILL_EVERY_DAYS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--http-port", type=int, default=8000, help="dashboards and API (default 8000)")
    parser.add_argument("--broker-port", type=int, default=1883, help="embedded MQTT broker (default 1883, or a free one)")
    parser.add_argument("--arc-port", type=int, default=12128, help="DC-09 receiver (default 12128, or a free one)")
    parser.add_argument("--var", default="var", help="folder for the databases, recordings and the run's state")
    parser.add_argument("--keys", help="folder for the cloud's command signing key (default: `keys` beside --var)")
    parser.add_argument("--log-level", default="WARNING")


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    var = Path(args.var).resolve()
    var.mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker(_port_or_free(args.broker_port)).start()
    arc_port = _port_or_free(args.arc_port)
    cameras = {f.facility_id: start_cameras(f, seed=10 * i) for i, f in enumerate(FACILITIES)}
    # Keys on, as in production: a fresh AES key per police account for this run, and the cloud's
    # signing key (kept across runs) pinned in every gateway's config.
    aes = {f.account: secrets.token_hex(16) for f in FACILITIES}
    signing_key = (Path(args.keys) if args.keys else var.parent / "keys") / "cloud-signing.key"
    cloud_key = public_key_hex(load_or_create(signing_key))
    # Each facility's gateway has its own local broker for its devices, as on site, taking only
    # the logins provisioned for its configuration (the same on every start, unless rotated).
    ports = {f.facility_id: free_port() for f in FACILITIES}
    # The police video platform takes each gateway's registration with the password it gave it.
    video_port = free_port()
    video = {}
    for i, f in enumerate(FACILITIES):
        device_id, channels = gb_codes(i)
        video[f.facility_id] = {"channels": channels, "gb28181": {
            "platform_id": VIDEO_PLATFORM_ID, "platform_domain": VIDEO_DOMAIN, "platform_host": LOOPBACK,
            "platform_port": video_port, "device_id": device_id, "password": secrets.token_urlsafe(12),
            "local_ip": LOOPBACK, "local_port": 0, "name": f.name}}
    platform = SimulatedVideoPlatform(VIDEO_PLATFORM_ID, VIDEO_DOMAIN, {
        v["gb28181"]["device_id"]: v["gb28181"]["password"] for v in video.values()}, host=LOOPBACK, port=video_port)
    configs = {f.facility_id: facility_config(f, aes[f.account], cloud_key, f"mqtt://{LOOPBACK}:{ports[f.facility_id]}",
                                              broker.port, arc_port, var,
                                              cameras[f.facility_id],
                                              video[f.facility_id])
               for f in FACILITIES}
    auth = {fid: provision(parse_config(cfg, f"facility {fid}")) for fid, cfg in configs.items()}
    local = {fid: EmbeddedBroker(ports[fid], auth=auth[fid]).start() for fid in configs}
    arc = ArcReceiver({f.account: ArcAccount(facility=f.facility_id, key=aes[f.account]) for f in FACILITIES},
                      port=arc_port,
                      store=ArcStore(var / "arc.sqlite3"))
    tokens = demo_tokens()
    cloud = CloudService(CloudConfig(
        broker_url=f"mqtt://cloud:cloud@{LOOPBACK}:{broker.port}", db_url=f"sqlite:///{var / 'cloud.db'}",
        port=_port_or_free(args.http_port), tokens=tokens, signing_key_path=signing_key)).start()
    seed_registry(cloud.engine)
    seed_care(cloud.engine, app_cipher(cloud.app))
    for f in FACILITIES:
        seed_footage(recordings_root(var, f.facility_id), segment_index(var, f.facility_id), f)
    runtime = EdgeRuntime(arc, list(configs.values()), platform)
    runtime.start()
    fleets = [start_devices(f, local[f.facility_id].url, i, auth[f.facility_id]) for i, f in enumerate(FACILITIES)]
    for f in FACILITIES:
        if f.drilled and drill_due(cloud, f.facility_id):
            runtime.drill(f.facility_id, ZONES[0][0])
    control = DemoControl(runtime, [f.facility_id for f in FACILITIES]).start()
    write_state(var / STATE_FILE, {
        "cloud": cloud.url, "uplink_broker": broker.url, "control": control.url, "control_token": control.token,
        "arc": {"host": LOOPBACK, "port": arc_port, "label": RECEIVER_LABEL},
        "tokens": {t.role.value: t.token for t in tokens},
        "facilities": {f.facility_id: {
            "name": f.name, "story": f.story, "devices": f.devices, "cameras_from": f.cameras,
            "local_broker": local[f.facility_id].url,
            "credentials": str(auth[f.facility_id].directory / SECRETS_FILE),
            "classes": {c: children_of(f.facility_id, c, enrolled) for c, _, _, _, enrolled in CLASSES},
            "cameras": {cid: {"kind": cam.kind, "stream": cam.source, "fault": cam.fault_url}
                        for cid, cam in cameras[f.facility_id].items()},
        } for f in FACILITIES},
    })

    pages = "  ".join(f"{cloud.url}/{p}" for p in ("police", "health", "supervision", "facility", "inspections",
                                                  "facility-supervision", "public"))
    token_lines = "\n".join(f"    {t.role.value:10} {t.token}   {t.user}" + (f" ({t.facility_id})" if t.facility_id else "")
                            for t in tokens)
    print(f"""
CareGuard is running on embedded defaults (started in {time.monotonic() - started:.1f} s).

  dashboards      {pages}
  tokens (one per role, paste one into a page):
{token_lines}
  uplink broker   {broker.url}   (in-process; gateways to cloud)
  local brokers   {', '.join(f'{fid} {b.url}' for fid, b in local.items())}   (each facility's devices)
  police ARC      DC-09 over TCP on {LOOPBACK}:{arc_port}   accounts {', '.join(f.account for f in FACILITIES)} (AES-128)
  commands        signed by the cloud's key {signing_key}, pinned by each gateway
  video platform  GB/T 28181 over UDP on {LOOPBACK}:{video_port} (simulated), each gateway registered
  facilities      {', '.join(f'{f.facility_id} {f.name} ({f.story})' for f in FACILITIES)}
  cameras         {', '.join(f"{fid} {'/'.join(sorted({c.kind for c in cams.values()}))}" for fid, cams in cameras.items())}: two each, {CAMERA_SIZE[0]}x{CAMERA_SIZE[1]} at {CAMERA_FPS:g} fps, analysed and recorded
  state           {var}/   (scenarios read {STATE_FILE})

Press a one-button alarm (in another terminal; the button logs in with its own credentials):
  .venv/bin/careguard sim press --broker {local['F001'].url} --credentials {auth['F001'].directory / SECRETS_FILE} --device-id F001-btn-1
Or play a story: .venv/bin/careguard sim scenario panic   (also fire, intrusion-at-night, camera-covered,
  gateway-offline, police-path-down, symptom-cluster, drill; `--list` says what each shows)

Ctrl-C stops everything.
""", flush=True)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    print("stopping...", flush=True)
    control.stop()
    for fleet in fleets:
        fleet.stop()
    runtime.stop()
    for cams in cameras.values():
        for cam in cams.values():
            cam.sim.stop()
    cloud.stop()
    for b in (*local.values(), broker):
        b.stop()
    return 0
