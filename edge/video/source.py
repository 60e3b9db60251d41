"""How a camera source is opened, and how it is named where people can read it.

Cameras are URLs that often carry a user name and password (rtsp://admin:pass@10.0.0.7/...),
and FFmpeg repeats the URL in its own error messages; `redact` takes the credentials out of
any text before it is logged or reported. Sources are opened with PyAV (FFmpeg's libraries)
so each camera gets its own RTSP transport and open/read timeouts that interrupt a blocked
read, and so that a sub-stream can be decoded key frames only."""

from __future__ import annotations

import re
from typing import Literal, Optional

import av

Transport = Literal["tcp", "udp"]
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s'\"]*@")


def redact(text: str) -> str:
    """`text` with the user name and password of every URL in it replaced by ***."""
    return _USERINFO.sub(r"\1***@", text)


def is_rtsp(source: str) -> bool:
    return source.lower().startswith(("rtsp://", "rtsps://"))


def is_url(source: str) -> bool:
    return "://" in source


def open_video(source: str, *, transport: Transport = "tcp", open_timeout_s: float = 5.0,
               read_timeout_s: float = 5.0) -> av.container.InputContainer:
    """Open a file or stream; raises ValueError naming the (redacted) source if it cannot."""
    options = {"rtsp_transport": transport} if is_rtsp(source) else {}
    try:
        container = av.open(source, options=options, timeout=(open_timeout_s, read_timeout_s))
    except (av.error.FFmpegError, OSError) as exc:
        raise ValueError(f"cannot open {redact(source)}: {redact(str(exc))}") from None
    if not container.streams.video:
        container.close()
        raise ValueError(f"{redact(source)} has no video stream")
    return container


def video_stream(container: av.container.InputContainer, *, keyframes_only: bool = False,
                 threads: Optional[int] = 1) -> av.video.stream.VideoStream:
    """The first video stream, set up for analysis: one decoder thread by default (threads
    cost more CPU in total than they save on a small picture), and with `keyframes_only` the
    decoder skips every other frame of H.264/H.265, which is most of the decoding work."""
    stream = container.streams.video[0]
    if threads is not None:
        stream.codec_context.thread_count = threads
    if keyframes_only and not stream.codec_context.codec.intra_only:
        stream.codec_context.skip_frame = "NONKEY"
    return stream


def ffmpeg_input_args(source: str, *, transport: Transport = "tcp", read_timeout_s: float = 10.0) -> list[str]:
    """The ffmpeg command-line input for a camera: RTSP transport and an I/O timeout (µs), so a
    camera that stops sending ends ffmpeg (and the recorder restarts it) instead of hanging."""
    if is_rtsp(source):
        return ["-rtsp_transport", transport, "-timeout", str(int(read_timeout_s * 1_000_000)), "-i", source]
    if is_url(source):
        # An MJPEG stream over HTTP carries no timestamps; ffmpeg would assume 25 fps, so footage of a
        # 5 fps camera would last a fifth of its real time. The arrival time is the frame's time.
        return ["-use_wallclock_as_timestamps", "1", "-rw_timeout", str(int(read_timeout_s * 1_000_000)),
                "-i", source]
    return ["-i", source]
