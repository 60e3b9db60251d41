"""Camera capture on the gateway: OpenCV reading with timeouts, a watchdog and reconnects,
health numbers per camera, and the monitor that feeds frames to the health analyser.

`CameraCapture` reads one source (RTSP, HTTP MJPEG, file) through OpenCV's FFMPEG backend
with open and read timeouts (CAP_PROP_OPEN_TIMEOUT_MSEC / CAP_PROP_READ_TIMEOUT_MSEC). Those
timeouts do not cover every way a stream can hang, so a watchdog also gives up on a reader
that has delivered no frame for `read_timeout_s`: it abandons that reader thread (a blocked
OpenCV call cannot be interrupted safely from another thread; the reader releases its
capture and exits when the call returns) and reconnects with bounded exponential backoff.

`CameraMonitor` is what the edge agent runs per camera: capture plus analysis at a low rate
(1 fps by default) of a small grey copy of the latest frame, fault events to a callback with
a JPEG snapshot, `health()` numbers, and `latest_jpeg()` for panic snapshots."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from datetime import timedelta
from typing import Callable, Optional

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from contracts.alarms import AlarmState
from contracts.timefmt import utcnow
from edge.video.health import CameraFault, CameraHealthAnalyser, FaultEvent, HealthConfig, to_small_grey

log = logging.getLogger("careguard.edge.camera")
# Abandoned readers still blocked in OpenCV; past this many the watchdog waits rather than
# start more threads against a camera that is not answering.
MAX_ABANDONED_READERS = 2
JPEG_QUALITY = 80


class CaptureConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    open_timeout_s: float = Field(default=5.0, gt=0, description="give up opening the stream after this long")
    read_timeout_s: float = Field(default=5.0, gt=0, description="no frame for this long: a stall, reconnect")
    backoff_initial_s: float = Field(default=0.5, gt=0, description="first wait before reconnecting")
    backoff_max_s: float = Field(default=30.0, gt=0, description="longest wait between reconnects")
    retrieve_fps: float = Field(default=2.0, gt=0,
                                description="frames per second converted to pictures; the rest are only grabbed")
    expected_fps: Optional[float] = Field(default=None, gt=0,
                                          description="the camera's configured rate; default: the best rate seen")
    fps_window_s: float = Field(default=5.0, gt=0, description="window camera_fps is measured over")
    quality_window_s: float = Field(default=600.0, gt=0, description="stalls and reconnects this recent lower quality")


class CaptureHealth(BaseModel):
    """Per camera, as Frigate reports them: numbers, not prose."""
    camera_id: str
    state: str = Field(description="connecting | streaming | stalled | stopped")
    camera_fps: float
    last_frame_age_s: Optional[float] = None
    frames: int
    reconnects: int
    stalls: int
    connection_quality: float = Field(description="0..1: rate against expected, lowered by recent stalls/reconnects")


class CameraHealth(CaptureHealth):
    fault: Optional[CameraFault] = None
    fault_since_s: Optional[float] = None
    features: Optional[dict] = None


class CameraCapture:
    """Reads one source in the background; keeps the latest picture and the health numbers."""

    def __init__(self, camera_id: str, source: str, config: Optional[CaptureConfig] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.camera_id, self.source = camera_id, source
        self.config = config or CaptureConfig()
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._generation = 0
        self._readers: list[threading.Thread] = []
        self._watchdog: Optional[threading.Thread] = None
        self._frame_times: deque[float] = deque()
        self._latest: Optional[np.ndarray] = None
        self._latest_no = 0
        self._latest_t: Optional[float] = None
        self._last_grab_t: Optional[float] = None
        self._jpeg_cache: tuple[int, Optional[bytes]] = (0, None)
        self._failed = threading.Event()
        self._incidents: deque[float] = deque()
        self._peak_fps = 0.0
        self.frames = 0
        self.reconnects = 0
        self.stalls = 0
        self.state = "stopped"

    # --- reading -----------------------------------------------------------------------------

    def _open(self) -> cv2.VideoCapture:
        c = self.config
        return cv2.VideoCapture(self.source, cv2.CAP_FFMPEG,
                                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(c.open_timeout_s * 1000),
                                 cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(c.read_timeout_s * 1000)])

    def _read_loop(self, generation: int) -> None:
        cap = None
        try:
            cap = self._open()
            if not cap.isOpened():
                log.warning("camera %s: cannot open %s", self.camera_id, self.source)
                return
            retrieve_every = 1.0 / self.config.retrieve_fps
            last_retrieve = -float("inf")
            while not self._stop.is_set() and generation == self._generation:
                # grab() demuxes and decodes; retrieve() adds the colour conversion, needed
                # only for the frames that are analysed or snapshotted.
                if not cap.grab():
                    log.warning("camera %s: stream ended or read failed", self.camera_id)
                    return
                now = self._clock()
                frame = None
                if now - last_retrieve >= retrieve_every:
                    ok, frame = cap.retrieve()
                    if ok:
                        last_retrieve = now
                    else:
                        frame = None
                with self._lock:
                    if generation != self._generation:
                        return
                    self.frames += 1
                    self._last_grab_t = now
                    self._frame_times.append(now)
                    if self.state != "streaming":
                        self.state = "streaming"
                    if frame is not None:
                        self._latest, self._latest_t = frame, now
                        self._latest_no += 1
        except cv2.error as exc:
            log.warning("camera %s: OpenCV error: %s", self.camera_id, exc)
        finally:
            if cap is not None:
                cap.release()
            if generation == self._generation:
                self._failed.set()

    def _watch(self) -> None:
        c = self.config
        backoff = c.backoff_initial_s
        first = True
        while not self._stop.is_set():
            self._readers = [r for r in self._readers if r.is_alive()]
            if len(self._readers) > MAX_ABANDONED_READERS:
                self._stop.wait(c.backoff_max_s)
                continue
            with self._lock:
                self._generation += 1
                generation = self._generation
                self.state = "connecting"
                if not first:
                    self.reconnects += 1
                    self._incidents.append(self._clock())
                started = self._clock()
            first = False
            self._failed.clear()
            reader = threading.Thread(target=self._read_loop, args=(generation,), daemon=True,
                                      name=f"cam-read-{self.camera_id}")
            reader.start()
            self._readers.append(reader)
            got_frames = self._supervise(started)
            with self._lock:
                self._generation += 1  # abandon the reader, whatever state it is in
                if not self._stop.is_set():
                    self.state = "stalled"
            if self._stop.is_set():
                break
            backoff = c.backoff_initial_s if got_frames else min(backoff * 2, c.backoff_max_s)
            self._stop.wait(backoff)

    def _supervise(self, started: float) -> bool:
        """Wait while the reader delivers; return whether it delivered any frame."""
        c = self.config
        while not self._stop.is_set():
            if self._failed.wait(0.1):
                break
            with self._lock:
                last = self._last_grab_t if self._last_grab_t is not None and self._last_grab_t >= started else None
            quiet_since = last if last is not None else started
            limit = c.read_timeout_s if last is not None else c.open_timeout_s + c.read_timeout_s
            if self._clock() - quiet_since > limit:
                with self._lock:
                    self.stalls += 1
                    self._incidents.append(self._clock())
                log.warning("camera %s: no frame for %.1f s, reconnecting", self.camera_id, limit)
                break
        with self._lock:
            return self._last_grab_t is not None and self._last_grab_t >= started

    # --- lifecycle and results ----------------------------------------------------------------

    def start(self) -> "CameraCapture":
        self._stop.clear()
        self._watchdog = threading.Thread(target=self._watch, daemon=True, name=f"cam-watch-{self.camera_id}")
        self._watchdog.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            self._generation += 1
            self.state = "stopped"
        if self._watchdog is not None:
            self._watchdog.join(timeout)
        for reader in self._readers:
            reader.join(timeout)

    def latest(self) -> tuple[int, Optional[float], Optional[np.ndarray]]:
        """(picture number, capture time on the monotonic clock, BGR picture)."""
        with self._lock:
            return self._latest_no, self._latest_t, self._latest

    def latest_jpeg(self) -> Optional[bytes]:
        """The latest picture as JPEG (encoded once per picture), or None before the first."""
        no, _, frame = self.latest()
        if frame is None:
            return None
        cached_no, cached = self._jpeg_cache
        if cached_no == no and cached is not None:
            return cached
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        jpeg = buf.tobytes() if ok else None
        self._jpeg_cache = (no, jpeg)
        return jpeg

    def health(self) -> CaptureHealth:
        c = self.config
        now = self._clock()
        with self._lock:
            while self._frame_times and now - self._frame_times[0] > c.fps_window_s:
                self._frame_times.popleft()
            while self._incidents and now - self._incidents[0] > c.quality_window_s:
                self._incidents.popleft()
            fps = len(self._frame_times) / c.fps_window_s
            age = None if self._last_grab_t is None else now - self._last_grab_t
            self._peak_fps = max(self._peak_fps, fps)
            expected = c.expected_fps or self._peak_fps
            ratio = min(1.0, fps / expected) if expected > 0 else 0.0
            quality = ratio / (1 + len(self._incidents)) if self.state == "streaming" else 0.0
            return CaptureHealth(camera_id=self.camera_id, state=self.state, camera_fps=round(fps, 2),
                                 last_frame_age_s=None if age is None else round(age, 3), frames=self.frames,
                                 reconnects=self.reconnects, stalls=self.stalls,
                                 connection_quality=round(quality, 3))


class CameraMonitor:
    """Capture plus health analysis for one camera. `on_fault(event)` is called from the
    monitor's thread for every fault raised or cleared; raised events carry a JPEG snapshot.
    The edge agent turns them into `camera_fault` alarms (source = camera_id,
    detail = event.alarm_detail())."""

    def __init__(self, camera_id: str, source: str, on_fault: Callable[[FaultEvent], None], *,
                 capture: Optional[CaptureConfig] = None, health: Optional[HealthConfig] = None,
                 analysis_fps: float = 1.0, clock: Callable[[], float] = time.monotonic):
        if analysis_fps <= 0:
            raise ValueError(f"analysis_fps must be > 0, got {analysis_fps}")
        self.camera_id = camera_id
        self.on_fault = on_fault
        self.analysis_fps = analysis_fps
        self._clock = clock
        self.capture = CameraCapture(camera_id, source, capture, clock)
        self.analyser = CameraHealthAnalyser(camera_id, health)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._analysed_no = 0
        self.callback_errors = 0

    def start(self) -> "CameraMonitor":
        self.capture.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"cam-health-{self.camera_id}")
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.capture.stop(timeout)

    def __enter__(self) -> "CameraMonitor":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def latest_jpeg(self) -> Optional[bytes]:
        """The newest picture as JPEG, at most 1/retrieve_fps old while streaming (panic snapshots)."""
        return self.capture.latest_jpeg()

    def health(self) -> CameraHealth:
        a = self.analyser
        return CameraHealth(**self.capture.health().model_dump(), fault=a.active, fault_since_s=a.active_since,
                            features=None if a.last_features is None else a.last_features.model_dump(exclude_none=True))

    def check_once(self) -> list[FaultEvent]:
        """One analysis step: the newest picture if there is one, else a missed frame."""
        no, t, frame = self.capture.latest()
        if frame is not None and no != self._analysed_no and t is not None:
            self._analysed_no = no
            size = self.analyser.config
            events = self.analyser.check(to_small_grey(frame, size.width, size.height), t)
        else:
            events = self.analyser.no_frame(self._clock())
        for event in events:
            event.occurred_at = utcnow() - timedelta(seconds=max(0.0, self._clock() - event.since_s))
            if event.state is AlarmState.ACTIVE:
                event.snapshot_jpeg = self.latest_jpeg()
            try:
                self.on_fault(event)
            except Exception:  # a failing consumer must not stop camera supervision
                self.callback_errors += 1
                log.exception("camera %s: on_fault callback failed", self.camera_id)
        return events

    def _run(self) -> None:
        period = 1.0 / self.analysis_fps
        next_at = self._clock()
        while not self._stop.is_set():
            self.check_once()
            next_at = max(next_at + period, self._clock())
            self._stop.wait(max(0.0, next_at - self._clock()))
