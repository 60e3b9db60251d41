"""The recorder: each camera into segment files, without re-encoding (an RTSP camera's main
stream, `record_source`, while the sub-stream is analysed).

ffmpeg's segment muxer with `-c copy` writes `{root}/{camera}/{YYYY-MM-DD}/{HH-MM-SS}.mkv`
named by each segment's UTC start (`-strftime 1` under TZ=UTC), the layout DESIGN.md
fixes so that the retention checker can audit a recorder we did not write as well. ffmpeg
does not create the day folders its file names point into, so the recorder keeps today's
and tomorrow's ready. A dead ffmpeg is restarted with bounded backoff, and every restart
is counted: a gap in the footage must have a cause someone can see."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections import deque
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

from edge.config import CameraConfig, VideoConfig
from edge.retention.segments import FFMPEG_ENV, day_dir_name, ffmpeg_output_pattern
from edge.video.source import Transport, ffmpeg_input_args, redact

log = logging.getLogger("careguard.edge.recorder")

SEGMENT_EXT = "mkv"  # holds any codec ffmpeg copies (H.264, H.265, MJPEG)
BACKOFF_MAX_S = 30.0
READ_TIMEOUT_S = 10.0  # a camera silent this long ends ffmpeg, which is then restarted
ERROR_LINES_KEPT = 20


def ffmpeg_command(ffmpeg: str, source: str, root: Path, camera_id: str, segment_s: int,
                   transport: Transport = "tcp") -> list[str]:
    return [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error",
        *ffmpeg_input_args(source, transport=transport, read_timeout_s=READ_TIMEOUT_S),
        "-map", "0:v", "-c", "copy",
        "-f", "segment", "-segment_time", str(segment_s), "-segment_atclocktime", "1",
        "-reset_timestamps", "1", "-strftime", "1",
        ffmpeg_output_pattern(root, camera_id, SEGMENT_EXT),
    ]


def ensure_day_folders(camera_dir: Path, now: datetime) -> None:
    for day in (now, now + timedelta(days=1)):
        (camera_dir / day_dir_name(day.date())).mkdir(parents=True, exist_ok=True)


class CameraRecorder:
    def __init__(self, camera: CameraConfig, video: VideoConfig, ffmpeg: str):
        self.camera = camera
        self.dir = Path(video.recordings_root) / camera.id
        self.source = camera.record_source or camera.source
        self.cmd = ffmpeg_command(ffmpeg, self.source, Path(video.recordings_root), camera.id, video.segment_s,
                                  camera.transport)
        self.restarts = 0
        self.last_error = ""
        self._proc: Optional[subprocess.Popen] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"recorder-{camera.id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            # 'q' would need stdin; SIGINT makes ffmpeg close the open segment properly.
            proc.send_signal(2)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._thread.join(10)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _run(self) -> None:
        backoff = 1.0
        env = {**os.environ, **FFMPEG_ENV}
        while not self._stop.is_set():
            ensure_day_folders(self.dir, datetime.now(timezone.utc))
            started = time.monotonic()
            self._proc = subprocess.Popen(self.cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE)
            errors: deque[bytes] = deque(maxlen=ERROR_LINES_KEPT)
            # Drained all along: ffmpeg blocks once a full pipe of errors (UDP loss) is unread.
            drain = threading.Thread(target=errors.extend, args=(self._proc.stderr,), daemon=True)
            drain.start()
            while self._proc.poll() is None and not self._stop.is_set():
                # Day folders must exist before ffmpeg opens the first segment after midnight.
                ensure_day_folders(self.dir, datetime.now(timezone.utc))
                try:
                    self._proc.wait(5)  # stop() ends ffmpeg itself, so this wakes at once for it too
                except subprocess.TimeoutExpired:
                    pass
            if self._stop.is_set():
                break
            drain.join(5)
            # ffmpeg repeats the URL, credentials and all, in its messages.
            err = redact(b"".join(errors).decode("utf-8", "replace").strip())
            self.last_error = err[-500:]
            self.restarts += 1
            log.warning("recorder for %s exited (%s): %s", self.camera.id, self._proc.returncode, self.last_error)
            backoff = 1.0 if time.monotonic() - started > 60 else min(backoff * 2, BACKOFF_MAX_S)
            self._stop.wait(backoff)


class Recorder:
    """All cameras marked `record`; without ffmpeg on the gateway it says so once and records nothing."""

    def __init__(self, cameras: list[CameraConfig], video: VideoConfig):
        self.ffmpeg = shutil.which("ffmpeg")
        self.recorders = {c.id: CameraRecorder(c, video, self.ffmpeg) for c in cameras if c.record} \
            if self.ffmpeg else {}
        if not self.ffmpeg and any(c.record for c in cameras):
            log.error("ffmpeg is not installed: no footage is being recorded")

    def start(self) -> None:
        for r in self.recorders.values():
            r.start()

    def stop(self) -> None:
        for r in self.recorders.values():
            r.stop()

    def status(self) -> dict[str, dict]:
        return {cid: {"running": r.running, "restarts": r.restarts, "last_error": r.last_error}
                for cid, r in self.recorders.items()}
