"""Reading camera streams (RTSP with H.264/H.265, MJPEG over HTTP, or a file) with PyAV,
with open and read timeouts that interrupt a blocked read; a camera that stops sending is a
stall, a connection that ends is a drop, and either is reconnected with bounded exponential
backoff. A watchdog also gives up on a reader that has delivered nothing for `read_timeout_s`
(should a read hang where FFmpeg's interrupt does not reach) and abandons it.

Only what is analysed is decoded: MJPEG frames (each a picture of its own) are decoded at
`retrieve_fps`, the others only counted; H.264/H.265 must be decoded in full unless
`keyframes_only`, where the decoder skips all but key frames (one every GOP, typically 1-2 s)
at a fraction of the cost. A picture that changes size mid-stream is counted and analysed
at the analysis size like any other. Credentials in the source never reach a log.

`CameraMonitor` is what the edge agent runs per camera: capture plus analysis at a low rate
(1 fps by default) of a small grey copy of the latest frame, fault events to a callback with
a JPEG snapshot, `health()` numbers, and `latest_jpeg()` for panic snapshots."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from datetime import timedelta
from typing import Callable, Optional

import av
import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from contracts.alarms import AlarmState
from contracts.timefmt import utcnow
from edge.video.health import CameraFault, CameraHealthAnalyser, FaultEvent, HealthConfig
from edge.video.source import Transport, open_video, redact, video_stream

log = logging.getLogger("careguard.edge.camera")
# Abandoned readers still blocked in OpenCV; past this many the watchdog waits rather than
# start more threads against a camera that is not answering.
MAX_ABANDONED_READERS = 2
WATCHDOG_GRACE_S = 2.0
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
    transport: Transport = Field(default="tcp", description="RTSP transport: tcp (interleaved) or udp")
    keyframes_only: bool = Field(default=False, description="H.264/H.265: decode key frames only (analysis "
                                                            "and snapshots at the key frame rate, far less CPU)")


class CaptureHealth(BaseModel):
    """Per camera, as Frigate reports them: numbers, not prose."""
    camera_id: str
    state: str = Field(description="connecting | streaming | stalled | stopped")
    camera_fps: float
    last_frame_age_s: Optional[float] = None
    frames: int
    reconnects: int
    stalls: int = Field(description="times the camera stayed connected but sent nothing for read_timeout_s")
    drops: int = Field(description="times a connection that was delivering ended or failed")
    resolution_changes: int
    resolution: Optional[str] = Field(default=None, description="WIDTHxHEIGHT of the latest picture")
    codec: Optional[str] = None
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
        self.source_name = redact(source)
        self.config = config or CaptureConfig()
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._generation = 0
        self._readers: list[threading.Thread] = []
        self._watchdog: Optional[threading.Thread] = None
        self._frame_times: deque[float] = deque()
        self._latest: Optional[av.VideoFrame] = None
        self._latest_no = 0
        self._latest_key: Optional[int] = None
        # Key frames decoded, over every connection: a picture carries the number of the key
        # frame it was decoded from, so the analyser knows which pictures share one.
        self._key_numbers = itertools.count(1)
        self._latest_t: Optional[float] = None
        self._last_grab_t: Optional[float] = None
        self._jpeg_cache: tuple[int, Optional[bytes]] = (0, None)
        self._failed = threading.Event()
        self._incidents: deque[float] = deque()
        self._peak_fps = 0.0
        self._size: Optional[tuple[int, int]] = None
        self.codec: Optional[str] = None
        self.frames = 0
        self.reconnects = 0
        self.stalls = 0
        self.drops = 0
        self.resolution_changes = 0
        self.state = "stopped"

    # --- reading -----------------------------------------------------------------------------

    def _read_loop(self, generation: int) -> None:
        c = self.config
        container = None
        delivered = False
        try:
            container = open_video(self.source, transport=c.transport, open_timeout_s=c.open_timeout_s,
                                   read_timeout_s=c.read_timeout_s)
            stream = video_stream(container, keyframes_only=c.keyframes_only)
            intra_only = stream.codec_context.codec.intra_only
            with self._lock:
                self.codec = stream.codec_context.codec.name
            retrieve_every = 1.0 / c.retrieve_fps
            last_retrieve = -float("inf")
            keyed = False
            key_no: Optional[int] = None
            for packet in container.demux(stream):
                if self._stop.is_set() or generation != self._generation:
                    return
                if packet.size == 0:  # the demuxer's end-of-stream flush
                    break
                now = self._clock()
                wanted = now - last_retrieve >= retrieve_every
                frame = None
                # A picture coded on its own (MJPEG) need not be decoded unless it is kept;
                # inter-coded video must go through the decoder to decode what follows.
                if wanted or not intra_only:
                    for decoded in packet.decode():
                        # Joining mid-GOP, the decoder guesses at what it never saw: grey
                        # smears that would read as a moved or blurred view. Wait for a key frame.
                        keyed = keyed or decoded.key_frame
                        if decoded.key_frame and not intra_only:
                            key_no = next(self._key_numbers)
                        if keyed and not decoded.is_corrupt:
                            frame = decoded
                if frame is not None and wanted:
                    last_retrieve = now
                else:
                    frame = None
                with self._lock:
                    if generation != self._generation:
                        return
                    delivered = True
                    self.frames += 1
                    self._last_grab_t = now
                    self._frame_times.append(now)
                    self.state = "streaming"
                    if frame is not None:
                        self._note_size(frame.width, frame.height)
                        self._latest, self._latest_t, self._latest_key = frame, now, key_no
                        self._latest_no += 1
            log.warning("camera %s: stream ended (%s)", self.camera_id, self.source_name)
            self._count_end(generation, delivered, timed_out=False)
        except ValueError as exc:  # open_video's message, already redacted
            log.warning("camera %s: %s", self.camera_id, exc)
        except av.error.FFmpegError as exc:
            timed_out = isinstance(exc, (av.error.ExitError, av.error.TimeoutError))
            log.warning("camera %s: %s: %s", self.camera_id, "no data, read timed out" if timed_out else "read failed",
                        redact(str(exc)))
            self._count_end(generation, delivered, timed_out)
        finally:
            if container is not None:
                container.close()
            if generation == self._generation:
                self._failed.set()

    def _note_size(self, width: int, height: int) -> None:
        if self._size is not None and self._size != (width, height):
            self.resolution_changes += 1
            log.warning("camera %s: picture size changed from %dx%d to %dx%d", self.camera_id, *self._size,
                        width, height)
        self._size = (width, height)

    def _count_end(self, generation: int, delivered: bool, timed_out: bool) -> None:
        """A connection that delivered and then went quiet is a stall; one that ended or
        failed is a drop. Either lowers the connection quality."""
        with self._lock:
            if generation != self._generation or not delivered:
                return
            if timed_out:
                self.stalls += 1
            else:
                self.drops += 1
            self._incidents.append(self._clock())

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
            # A backstop: FFmpeg's own read timeout normally ends the reader first, and tells
            # a stall from a drop; this catches a read that hangs where it does not reach.
            limit = (c.read_timeout_s if last is not None else c.open_timeout_s + c.read_timeout_s) + WATCHDOG_GRACE_S
            if self._clock() - quiet_since > limit:
                with self._lock:
                    if last is not None:
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

    def latest(self) -> tuple[int, Optional[float], Optional[av.VideoFrame], Optional[int]]:
        """(picture number, capture time on the monotonic clock, decoded picture, number of the
        key frame it was decoded from, None for pictures coded on their own as MJPEG's)."""
        with self._lock:
            return self._latest_no, self._latest_t, self._latest, self._latest_key

    def latest_jpeg(self) -> Optional[bytes]:
        """The latest picture as JPEG (encoded once per picture), or None before the first."""
        no, _, frame, _ = self.latest()
        if frame is None:
            return None
        cached_no, cached = self._jpeg_cache
        if cached_no == no and cached is not None:
            return cached
        ok, buf = cv2.imencode(".jpg", frame.to_ndarray(format="bgr24"), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
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
                                 reconnects=self.reconnects, stalls=self.stalls, drops=self.drops,
                                 resolution_changes=self.resolution_changes,
                                 resolution=None if self._size is None else f"{self._size[0]}x{self._size[1]}",
                                 codec=self.codec, connection_quality=round(quality, 3))


def small_grey_from_frame(frame: av.VideoFrame, config: HealthConfig) -> np.ndarray:
    """The analyser's small grey frame straight from the decoder's picture: swscale takes the
    luma plane and averages it down, with no colour conversion of the full picture."""
    return frame.reformat(width=config.width, height=config.height, format="gray",
                          interpolation="AREA").to_ndarray()


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
        no, t, frame, key_no = self.capture.latest()
        if frame is not None and no != self._analysed_no and t is not None:
            self._analysed_no = no
            events = self.analyser.check(small_grey_from_frame(frame, self.analyser.config), t, keyframe_id=key_no)
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
