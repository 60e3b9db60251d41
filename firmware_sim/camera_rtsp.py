"""A simulated IP camera over RTSP, as the cameras facilities buy serve it: a main stream
(recorded) and a sub-stream (analysed), H.264 or H.265, optionally behind a user name and
password, from GStreamer's RTSP server (rtsp_gst_server.py, run with the system Python).

    with RtspCamera(scene_by_name("nursery"), codec="h265") as cam:
        cam.url("sub"), cam.url("main")          # rtsp://127.0.0.1:PORT/sub ...
        cam.inject("stall", duration_s=10)       # connected, nothing sent
        cam.inject("drops", every_s=4)           # every connection closed every 4 s
        cam.inject("resolution", width=480, height=270)   # the sub-stream changes size
        cam.inject("offline", duration_s=5)      # the server goes away, then comes back

The scene is rendered once at `width` x `height` and each stream is scaled to its own size
by GStreamer, so a 1080p main stream costs an upscale and an encode, not a 1080p render."""

from __future__ import annotations

import json
import logging
import struct
import subprocess
import threading
from collections import deque
from pathlib import Path
from typing import Literal, Optional, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from firmware_sim.camera import SceneCamera
from firmware_sim.camera_scene import Fault, FaultKind, Scene

log = logging.getLogger("careguard.sim.camera_rtsp")
SERVER_SCRIPT = Path(__file__).with_name("rtsp_gst_server.py")
# PyGObject and GStreamer's bindings come from Debian, for Debian's own Python.
SYSTEM_PYTHON = "/usr/bin/python3"
START_TIMEOUT_S = 15.0
DEBIAN_PACKAGES = ("python3-gi", "gir1.2-gst-rtsp-server-1.0", "gstreamer1.0-plugins-good",
                   "gstreamer1.0-plugins-ugly", "gstreamer1.0-plugins-bad")


class RtspStream(BaseModel):
    """One stream of the camera, served at rtsp://host:port/{name}."""
    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern="^[a-z]{1,16}$")
    width: int = Field(ge=16, le=3840)
    height: int = Field(ge=16, le=2160)
    kbps: int = Field(default=1024, ge=32, le=50_000, description="encoder bit rate")
    gop: int = Field(default=20, ge=1, le=600, description="frames between key frames")


class RtspServerUnavailable(RuntimeError):
    """GStreamer's RTSP server cannot be started here (a Debian package is missing)."""


def default_streams(width: int, height: int) -> list[RtspStream]:
    """A main stream at the rendered size and a sub-stream at half of it, as cameras ship."""
    return [RtspStream(name="main", width=width, height=height, kbps=2048),
            RtspStream(name="sub", width=max(16, width // 2 // 2 * 2), height=max(16, height // 2 // 2 * 2),
                       kbps=512)]


class RtspCamera(SceneCamera):
    def __init__(self, scene: Scene, *, codec: Literal["h264", "h265"] = "h264", host: str = "127.0.0.1",
                 port: int = 0, fps: float = 10.0, width: int = 640, height: int = 360,
                 streams: Optional[Sequence[RtspStream]] = None, user: str = "", password: str = "",
                 faults: Sequence[Fault] = (), osd: bool = False):
        if codec not in ("h264", "h265"):
            raise ValueError(f"codec must be h264 or h265, got {codec!r}")
        super().__init__(scene, fps=fps, width=width, height=height, faults=faults, osd=osd)
        self.codec, self.host, self.port = codec, host, port
        self.streams = list(streams) if streams is not None else default_streams(width, height)
        self.user, self.password = user, password
        self._proc: Optional[subprocess.Popen] = None
        self._write_lock = threading.Lock()
        self._seen_epoch = 0
        self._resized: Optional[tuple[str, int, int]] = None
        self.restarts = 0

    def url(self, stream: str = "sub", *, with_credentials: bool = True) -> str:
        auth = f"{self.user}:{self.password}@" if self.user and with_credentials else ""
        return f"rtsp://{auth}{self.host}:{self.port}/{stream}"

    # --- the server process --------------------------------------------------------------------

    def _spawn(self) -> None:
        if not Path(SYSTEM_PYTHON).exists():
            raise RtspServerUnavailable(f"{SYSTEM_PYTHON} not found; needs the Debian packages {' '.join(DEBIAN_PACKAGES)}")
        specs = [{"path": f"/{s.name}", "codec": self.codec, "width": s.width, "height": s.height,
                  "gop": s.gop, "kbps": s.kbps} for s in self.streams]
        cmd = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--host", self.host, "--port", str(self.port),
               "--fps", str(max(1, round(self.fps))), "--streams", json.dumps(specs)]
        if self.user:
            cmd += ["--user", self.user, "--password", self.password]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ready: dict = {}
        errors: deque[bytes] = deque(maxlen=20)

        def drain_stderr() -> None:  # GStreamer's warnings must never fill the pipe and block it
            for line in proc.stderr:
                errors.append(line)

        def read_ready() -> None:
            line = proc.stdout.readline()
            try:
                ready.update(json.loads(line))
            except ValueError:
                pass

        threading.Thread(target=drain_stderr, daemon=True).start()
        reader = threading.Thread(target=read_ready, daemon=True)
        reader.start()
        reader.join(START_TIMEOUT_S)
        if "port" not in ready:
            proc.kill()
            proc.wait(5)
            err = b"".join(errors).decode("utf-8", "replace").strip()
            raise RtspServerUnavailable(
                f"GStreamer's RTSP server did not start ({ready.get('error') or err[-400:]}); it needs the Debian "
                f"packages {' '.join(DEBIAN_PACKAGES)}")
        self.port = int(ready["port"])
        self._proc = proc
        self._resized = None

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def _send(self, kind: bytes, payload: bytes) -> None:
        proc = self._proc
        if proc is None:
            return
        with self._write_lock:
            try:
                proc.stdin.write(kind + struct.pack(">I", len(payload)) + payload)
                proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                log.warning("RTSP server of the simulated camera on port %s is gone", self.port)

    def _command(self, **order) -> None:
        self._send(b"C", json.dumps(order).encode())

    # --- delivery ------------------------------------------------------------------------------

    def _deliver(self, frame: Optional[np.ndarray]) -> None:
        if frame is None:  # offline: the camera is switched off
            if self._proc is not None:
                self._kill()
            return
        if self._proc is None and not self._stop.is_set():
            self._spawn()  # back from offline, on the same port
            self.restarts += 1
        if self.drop_epoch != self._seen_epoch:
            self._seen_epoch = self.drop_epoch
            self._command(op="kick")
        self._apply_resolution()
        h, w = frame.shape[:2]
        self._send(b"F", struct.pack(">HH", w, h) + np.ascontiguousarray(frame).tobytes())

    def _apply_resolution(self) -> None:
        fault = next((f for f in self.active_faults() if f.kind is FaultKind.RESOLUTION), None)
        wanted = (fault.stream, fault.width, fault.height) if fault is not None else None
        if wanted == self._resized:
            return
        for s in self.streams:
            if self._resized is not None and self._resized[0] == s.name:
                self._command(op="size", path=f"/{s.name}", width=s.width, height=s.height)
            if wanted is not None and wanted[0] == s.name:
                self._command(op="size", path=f"/{s.name}", width=wanted[1], height=wanted[2])
        self._resized = wanted

    def _picture_size(self, active) -> tuple[int, int]:
        return self.width, self.height  # the server scales each stream (see _apply_resolution)

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> "RtspCamera":
        self._spawn()
        self.start_rendering()
        return self

    def stop(self) -> None:
        self.stop_rendering()
        self._kill()

    def __enter__(self) -> "RtspCamera":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
