"""A simulated IP camera: the scenes of camera_scene.py served as MJPEG over HTTP (RTSP in
camera_rtsp.py), with faults injected at run time, and written as labelled video files.

HTTP interface (what cheap IP cameras offer, plus fault control for tests and drills):
    GET  /stream.mjpg            multipart/x-mixed-replace MJPEG stream ("/" too)
    GET  /snapshot.jpg           the latest frame
    GET  /fault                  active faults as JSON
    POST /fault?kind=covered[&cover=cloth][&duration=S]   inject (other Fault fields as query)
    POST /fault?kind=none        clear all faults
An `offline` fault stops the camera serving: streams end and new requests are refused
until it is cleared (over HTTP is then impossible, so give `duration`). `stall` keeps the
connections and sends nothing, `drops` ends every stream every `every_s` seconds and
`resolution` changes the picture's size. `--rtsp h264|h265` serves the same scene over RTSP
(camera_rtsp.py)."""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional, Sequence
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np
from pydantic import BaseModel, ValidationError

from contracts.errors import describe_validation_error
from firmware_sim.camera_scene import DELIVERY_KINDS, SCENES, Fault, FaultKind, Scene, frame_at, scene_by_name
from firmware_sim.osd import stamp

log = logging.getLogger("careguard.sim.camera")
BOUNDARY = "careguardframe"
JPEG_QUALITY = 80
# Cameras send a frame every 1/fps; a client that has not read for this long is dropped.
CLIENT_WRITE_TIMEOUT_S = 10.0


class FaultLabel(BaseModel):
    """One labelled fault interval of a clip, in seconds from the clip's start."""
    kind: str
    start_s: float
    end_s: float


def encode_jpeg(frame: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


class SceneCamera:
    """A camera's picture: the scene rendered at `fps` on a thread of its own, with faults
    injected at run time; subclasses serve what `_deliver` hands them.

    Scene time is seconds since `start_rendering()`; faults injected at run time start "now".
    Delivery faults are honoured here: offline and stall deliver nothing (offline also tells
    `_deliver` with None), resolution renders at the fault's size, drops bump `drop_epoch`
    every `every_s` seconds for the subclass to close its connections."""

    def __init__(self, scene: Scene, *, fps: float = 10.0, width: int = 640, height: int = 360,
                 faults: Sequence[Fault] = (), osd: bool = False):
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.scene, self.fps, self.width, self.height = scene, fps, width, height
        self.osd = osd  # the time burnt into each frame, as real cameras do (firmware_sim/osd.py)
        self._faults: list[Fault] = list(faults)
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._t0 = 0.0
        self._t0_wall = 0.0
        self._render_thread: Optional[threading.Thread] = None
        self._last_drop = 0.0
        self.drop_epoch = 0
        self.frames_rendered = 0

    def now(self) -> float:
        return time.monotonic() - self._t0

    # --- faults ------------------------------------------------------------------------------

    def inject(self, kind: str, duration_s: Optional[float] = None, **params) -> Fault:
        """Start a fault now (for `duration_s`, or until cleared). Raises ValueError on bad input."""
        t = self.now()
        end = math.inf if duration_s is None else t + duration_s
        try:
            fault = Fault(kind=kind, start_s=t, end_s=end, **params)
        except ValidationError as exc:
            raise ValueError(describe_validation_error(exc)) from None
        with self._lock:
            self._faults = [f for f in self._faults if f.kind is not fault.kind] + [fault]
        log.info("camera fault %s injected at %.1f s", fault.kind.value, t)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults = []

    def active_faults(self) -> list[Fault]:
        t = self.now()
        with self._lock:
            return [f for f in self._faults if f.active(t)]

    def offline(self) -> bool:
        return any(f.kind is FaultKind.OFFLINE for f in self.active_faults())

    # --- frames ------------------------------------------------------------------------------

    def _interval(self, active: dict[FaultKind, Fault]) -> float:
        low = active.get(FaultKind.LOW_FPS)
        return 1.0 / min(self.fps, low.fps) if low is not None else 1.0 / self.fps

    def _deliver(self, frame: Optional[np.ndarray]) -> None:
        raise NotImplementedError

    def _picture_size(self, active: dict[FaultKind, Fault]) -> tuple[int, int]:
        size = active.get(FaultKind.RESOLUTION)
        return (size.width, size.height) if size is not None else (self.width, self.height)

    def _render_loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            t = self.now()
            with self._lock:
                faults = list(self._faults)
            active = {f.kind: f for f in faults if f.active(t)}
            drops = active.get(FaultKind.DROPS)
            if drops is not None and t - self._last_drop >= drops.every_s:
                self._last_drop = t
                self.drop_epoch += 1
            if FaultKind.OFFLINE in active:
                self._deliver(None)
            elif FaultKind.STALL not in active:
                width, height = self._picture_size(active)
                frame = frame_at(self.scene, t, width, height, faults)
                if self.osd:
                    # A frozen camera repeats one frame, its clock included.
                    frozen = active.get(FaultKind.FROZEN)
                    shown = frozen.start_s if frozen is not None else t
                    frame = stamp(frame.copy(), datetime.fromtimestamp(self._t0_wall + shown, timezone.utc))
                self._deliver(frame)
                self.frames_rendered += 1
            next_at = max(next_at + self._interval(active), time.monotonic())
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start_rendering(self) -> None:
        self._t0 = time.monotonic()
        self._t0_wall = time.time()
        self._stop.clear()
        self._render_thread = threading.Thread(target=self._render_loop, name="simcam-render", daemon=True)
        self._render_thread.start()

    def stop_rendering(self) -> None:
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        if self._render_thread is not None:
            self._render_thread.join(timeout=5)


class SimulatedCamera(SceneCamera):
    """The scene as MJPEG over HTTP: the latest JPEG to every client."""

    def __init__(self, scene: Scene, *, host: str = "127.0.0.1", port: int = 0, fps: float = 10.0,
                 width: int = 640, height: int = 360, faults: Sequence[Fault] = (), osd: bool = False):
        super().__init__(scene, fps=fps, width=width, height=height, faults=faults, osd=osd)
        self._jpeg: Optional[bytes] = None
        self._frame_no = 0
        self._serve_thread: Optional[threading.Thread] = None
        self.frames_sent = 0
        self.server = ThreadingHTTPServer((host, port), self._handler_class())
        self.server.daemon_threads = True

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.server.server_address[0]}:{self.port}/stream.mjpg"

    def _deliver(self, frame: Optional[np.ndarray]) -> None:
        jpeg = None if frame is None else encode_jpeg(frame)
        with self._lock:
            self._jpeg = jpeg
            self._frame_no += 1
            self._lock.notify_all()

    def wait_frame(self, after: int, timeout: float) -> tuple[int, Optional[bytes]]:
        """The next frame after frame number `after` (None while offline), or the same on timeout."""
        with self._lock:
            self._lock.wait_for(lambda: self._frame_no > after or self._stop.is_set(), timeout)
            return self._frame_no, self._jpeg

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "SimulatedCamera":
        self.start_rendering()
        self._serve_thread = threading.Thread(target=self.server.serve_forever, name=f"simcam-{self.port}",
                                              daemon=True)
        self._serve_thread.start()
        return self

    def stop(self) -> None:
        self.stop_rendering()
        self.server.shutdown()
        self.server.server_close()
        if self._serve_thread is not None:
            self._serve_thread.join(timeout=5)

    def __enter__(self) -> "SimulatedCamera":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _handler_class(self):
        camera = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, fmt, *args):  # route through logging, not stderr
                log.debug("%s " + fmt, self.address_string(), *args)

            def _reply(self, code: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, code: int, obj) -> None:
                self._reply(code, json.dumps(obj).encode())

            def do_GET(self):
                path = urlsplit(self.path).path
                if path == "/fault":
                    return self._json(200, [f.model_dump(mode="json") for f in camera.active_faults()])
                if camera.offline():
                    # An offline camera does not answer at all.
                    self.close_connection = True
                    return
                if path in ("/", "/stream.mjpg"):
                    return self._stream()
                if path == "/snapshot.jpg":
                    _, jpeg = camera.wait_frame(-1, 0)
                    return self._reply(200, jpeg or b"", "image/jpeg") if jpeg else self._json(503, {"error": "no frame"})
                self._json(404, {"error": f"no such path {path!r}"})

            def do_POST(self):
                url = urlsplit(self.path)
                if url.path != "/fault":
                    return self._json(404, {"error": f"no such path {url.path!r}"})
                params = {k: v[-1] for k, v in parse_qs(url.query).items()}
                kind = params.pop("kind", None)
                if kind is None:
                    return self._json(400, {"error": "missing query parameter 'kind'"})
                if kind == "none":
                    camera.clear_faults()
                    return self._json(200, {"faults": []})
                try:
                    duration = float(params.pop("duration")) if "duration" in params else None
                    fault = camera.inject(kind, duration, **params)
                except ValueError as exc:
                    log.warning("bad fault request %r: %s", self.path, exc)
                    return self._json(400, {"error": str(exc)})
                self._json(200, {"faults": [fault.model_dump(mode="json")]})

            def _stream(self):
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                self.connection.settimeout(CLIENT_WRITE_TIMEOUT_S)
                seen = -1
                epoch = camera.drop_epoch
                try:
                    while not camera._stop.is_set():
                        seen, jpeg = camera.wait_frame(seen, 1.0)
                        if camera.offline() or camera.drop_epoch != epoch:
                            return
                        if jpeg is None:
                            continue
                        self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                         f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                        camera.frames_sent += 1
                except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
                    return

        return Handler


# --- clips ---------------------------------------------------------------------------------

def write_clip(path: Path | str, scene: Scene, duration_s: float, *, fps: float = 5.0, width: int = 640,
               height: int = 360, faults: Sequence[Fault] = (), codec: str = "MJPG") -> list[FaultLabel]:
    """Write `duration_s` of the scene with its faults to a video file and return the labels,
    also written beside it as `<path>.labels.json`. Offline cannot be shown in a file of
    constant frame rate (its frames would simply be missing), so it is refused."""
    path = Path(path)
    if duration_s <= 0 or fps <= 0:
        raise ValueError(f"duration_s and fps must be > 0, got {duration_s} and {fps}")
    delivery = sorted(f.kind.value for f in faults if f.kind in DELIVERY_KINDS)
    if delivery:
        raise ValueError(f"{', '.join(delivery)}: a file has one size and no connection to lose; "
                         "serve the camera to show these faults")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
    if not writer.isOpened():
        raise ValueError(f"cannot write video {path} with codec {codec!r}")
    try:
        for k in range(int(round(duration_s * fps))):
            writer.write(frame_at(scene, k / fps, width, height, faults))
    finally:
        writer.release()
    labels = [FaultLabel(kind=f.kind.value, start_s=f.start_s, end_s=min(f.end_s, duration_s)) for f in faults
              if f.start_s < duration_s]
    Path(f"{path}.labels.json").write_text(json.dumps([lb.model_dump() for lb in labels], indent=1))
    return labels


# --- command line ----------------------------------------------------------------------------

def parse_fault(spec: str) -> Fault:
    """`KIND[:key=value,...][@START[-END]]`, e.g. `covered:cover=cloth@10-40`, `displaced:angle_deg=8@30`."""
    body, _, when = spec.partition("@")
    kind, _, params_text = body.partition(":")
    params: dict = {}
    for item in filter(None, params_text.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"fault {spec!r}: parameter {item!r} is not key=value")
        params[key.strip()] = value.strip()
    if when:
        start, _, end = when.partition("-")
        try:
            params["start_s"] = float(start)
            if end:
                params["end_s"] = float(end)
        except ValueError:
            raise ValueError(f"fault {spec!r}: time {when!r} is not START[-END] in seconds") from None
    try:
        return Fault(kind=kind, **params)
    except ValidationError as exc:
        raise ValueError(f"fault {spec!r}: {describe_validation_error(exc)}") from None


def add_camera_commands(subparsers) -> None:
    """Add `camera` and `clip` to `careguard sim`; dispatch with `run_camera_command(args)`."""
    kinds = ", ".join(k.value for k in FaultKind)
    fault_help = f"KIND[:key=value,...][@START[-END]] (repeatable); kinds: {kinds}"
    cam = subparsers.add_parser("camera", help="serve a simulated camera as MJPEG over HTTP")
    cam.add_argument("--host", default="127.0.0.1")
    cam.add_argument("--port", type=int, default=8554)
    cam.add_argument("--scene", default="nursery", choices=sorted(SCENES))
    cam.add_argument("--seed", type=int, default=0)
    cam.add_argument("--fps", type=float, default=10.0)
    cam.add_argument("--size", default="640x360", help="WIDTHxHEIGHT (default 640x360, a sub-stream)")
    cam.add_argument("--fault", action="append", default=[], help=fault_help)
    cam.add_argument("--duration", type=float, help="stop after S seconds (default: run until stopped)")
    cam.add_argument("--osd", action="store_true", help="burn the time into each frame, as real cameras do")
    cam.add_argument("--rtsp", choices=("h264", "h265"),
                     help="serve RTSP (streams /main and /sub at half size) instead of MJPEG over HTTP")
    cam.add_argument("--user", default="", help="RTSP: user name clients must give (default: none)")
    cam.add_argument("--password", default="", help="RTSP: password for --user")
    cam.set_defaults(camera_command="camera")

    clip = subparsers.add_parser("clip", help="write a labelled video clip of a simulated camera")
    clip.add_argument("--out", required=True, help="video file (.avi with MJPG, .mp4 with mp4v)")
    clip.add_argument("--scene", default="nursery", choices=sorted(SCENES))
    clip.add_argument("--seed", type=int, default=0)
    clip.add_argument("--fps", type=float, default=5.0)
    clip.add_argument("--duration", type=float, default=120.0)
    clip.add_argument("--size", default="640x360")
    clip.add_argument("--codec", default=None, help="FourCC (default MJPG, or mp4v for .mp4)")
    clip.add_argument("--fault", action="append", default=[], help=fault_help)
    clip.set_defaults(camera_command="clip")


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size {text!r} is not WIDTHxHEIGHT") from None
    if not (16 <= w <= 4096 and 16 <= h <= 4096):
        raise ValueError(f"--size {text!r} out of range 16..4096")
    return w, h


def run_camera_command(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        width, height = _size(args.size)
        faults = [parse_fault(spec) for spec in args.fault]
        scene = scene_by_name(args.scene, args.seed)
        if args.camera_command == "clip":
            codec = args.codec or ("mp4v" if args.out.lower().endswith(".mp4") else "MJPG")
            labels = write_clip(args.out, scene, args.duration, fps=args.fps, width=width, height=height,
                                faults=faults, codec=codec)
            print(json.dumps({"out": args.out, "labels": [lb.model_dump() for lb in labels]}))
            return 0
        if args.rtsp:
            from firmware_sim.camera_rtsp import RtspCamera  # it builds on SceneCamera, defined here
            camera = RtspCamera(scene, codec=args.rtsp, host=args.host, port=args.port, fps=args.fps, width=width,
                                height=height, user=args.user, password=args.password, faults=faults, osd=args.osd)
        else:
            camera = SimulatedCamera(scene, host=args.host, port=args.port, fps=args.fps, width=width,
                                     height=height, faults=faults, osd=args.osd)
    except (ValueError, OSError) as exc:
        print(f"careguard sim {args.camera_command}: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        camera.start()
    except RuntimeError as exc:  # the RTSP server could not start
        print(f"careguard sim camera: {exc}", file=sys.stderr)
        return 2
    try:
        urls = [camera.url(s.name, with_credentials=False) for s in camera.streams] if args.rtsp else [camera.url]
        log.info("camera %s serving %s", args.scene, " ".join(urls))
        try:
            stop.wait(args.duration)
        except KeyboardInterrupt:
            pass
    finally:
        camera.stop()
    return 0
