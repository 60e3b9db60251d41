"""One live stream to the police platform: a camera's source through ffmpeg to H.264 Annex B,
cut into frames, muxed into PS and sent as RTP over UDP or TCP (RFC 4571, the gateway
connecting or listening as the SDP answer said).

ffmpeg only encodes (`-f h264` to a pipe); the PS and RTP are ours, so what the platform gets is
exactly what wire/ps.py and wire/rtp.py write. Live video never queues behind a slow TCP peer:
past a backlog, frames are dropped until the next key frame, and counted."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Callable, Literal, Optional

from wire import annexb, ps, rtp

log = logging.getLogger("careguard.edge.gb28181.media")

Mode = Literal["udp", "tcp-active", "tcp-passive"]
READ_BYTES = 65_536
TCP_BACKLOG_BYTES = 2 * 1024 * 1024
CONNECT_TIMEOUT_S = 5.0
ACCEPT_TIMEOUT_S = 10.0
STOP_GRACE_S = 2.0
STDERR_TAIL = 400  # bytes of ffmpeg's complaints kept for the reason a stream ended


def ffmpeg_command(source: str, fps: int) -> list[str]:
    """ffmpeg reading a camera source (a URL, or a file played in a loop at its own pace) and
    writing H.264 Annex B with no B-frames, a key frame every 2 s and parameter sets before each."""
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin"]
    if "://" not in source:
        cmd += ["-re", "-stream_loop", "-1"]
    elif source.startswith("rtsp://"):
        cmd += ["-rtsp_transport", "tcp"]
    cmd += ["-i", source, "-map", "0:v:0", "-an", "-sn", "-r", str(fps), "-pix_fmt", "yuv420p",
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-bf", "0", "-g", str(2 * fps),
            "-x264-params", "repeat-headers=1:log=-1", "-f", "h264", "pipe:1"]
    return cmd


class MediaSession:
    def __init__(self, *, source: str, dest: tuple[str, int], mode: Mode, ssrc: int, payload_type: int, fps: int,
                 bind_ip: str, on_end: Callable[["MediaSession", str], None]):
        self.source = source
        self.dest = dest
        self.mode = mode
        self.fps = fps
        self.bind_ip = bind_ip
        self.on_end = on_end
        self.packetiser = rtp.RtpPacketiser(ssrc, payload_type)
        self.muxer = ps.PsMuxer("h264")
        self.counters: Counter[str] = Counter()
        self.local_port = 0
        self.first_packet_at: Optional[float] = None  # time.monotonic() of the first RTP packet sent
        self._udp: Optional[asyncio.DatagramTransport] = None
        self._server: Optional[asyncio.AbstractServer] = None
        self._accepted: Optional[asyncio.Future] = None
        self._writer: Optional[asyncio.StreamWriter] = None
        self._proc: Optional[asyncio.subprocess.Process] = None
        self._task: Optional[asyncio.Task] = None
        self._ended = False

    async def prepare(self) -> int:
        """Bind what the SDP answer will name; returns its port."""
        loop = asyncio.get_running_loop()
        if self.mode == "udp":
            self._udp, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                               local_addr=(self.bind_ip, 0))
            self.local_port = self._udp.get_extra_info("sockname")[1]
        elif self.mode == "tcp-passive":
            self._accepted = loop.create_future()
            self._server = await asyncio.start_server(self._on_connection, self.bind_ip, 0)
            self.local_port = self._server.sockets[0].getsockname()[1]
        else:
            self.local_port = 9  # RFC 4145: an active endpoint names the discard port
        return self.local_port

    def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[0]
        if peer != self.dest[0] or self._accepted is None or self._accepted.done():
            self.counters["foreign_connection"] += 1  # only the platform named in the SDP may take the stream
            writer.close()
            return
        self._accepted.set_result(writer)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._pump(), name=f"gb28181-rtp-{self.dest}")

    async def stop(self) -> None:
        self._ended = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._kill_ffmpeg()
        self._close_sockets()

    def _close_sockets(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._server is not None:
            self._server.close()
        if self._writer is not None:
            self._writer.close()

    async def _kill_ffmpeg(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            async with asyncio.timeout(STOP_GRACE_S):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def _connect(self) -> None:
        if self.mode == "tcp-active":
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                _, self._writer = await asyncio.open_connection(*self.dest)
        elif self.mode == "tcp-passive":
            assert self._accepted is not None
            async with asyncio.timeout(ACCEPT_TIMEOUT_S):
                self._writer = await self._accepted
            self._server.close()

    async def _pump(self) -> None:
        reason = "stopped"
        try:
            try:
                await self._connect()
            except (OSError, TimeoutError) as exc:
                reason = f"no TCP media connection with {self.dest[0]}:{self.dest[1]}: {exc!r}"
                return
            self._proc = await asyncio.create_subprocess_exec(
                *ffmpeg_command(self.source, self.fps), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            reason = await self._stream(self._proc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("GB28181 stream to %s failed", self.dest)
            reason = f"stream failed: {exc!r}"
        finally:
            if not self._ended:
                self._ended = True
                await self._kill_ffmpeg()
                self._close_sockets()
                self.on_end(self, reason)

    async def _stream(self, proc: asyncio.subprocess.Process) -> str:
        assert proc.stdout is not None and proc.stderr is not None
        stderr_task = asyncio.get_running_loop().create_task(proc.stderr.read(1 << 20))
        try:
            return await self._frames(proc, stderr_task)
        finally:
            stderr_task.cancel()

    async def _frames(self, proc: asyncio.subprocess.Process, stderr_task: asyncio.Task) -> str:
        splitter = annexb.AccessUnitSplitter("h264")
        step = rtp.CLOCK_HZ // self.fps
        frame_no = 0
        skipping = False  # after a drop, until the next key frame
        while True:
            chunk = await proc.stdout.read(READ_BYTES)
            if not chunk:
                break
            for au in splitter.feed(chunk):
                pts = frame_no * step
                frame_no += 1
                if self._writer is not None and self._writer.is_closing():
                    return "the platform closed the TCP media connection"
                if self._writer is not None and self._writer.transport.get_write_buffer_size() > TCP_BACKLOG_BYTES:
                    skipping = True
                if skipping and not au.keyframe:
                    self.counters["frames_dropped"] += 1
                    continue
                skipping = False
                self._send(self.packetiser.packetise(self.muxer.mux(au.data, pts, au.keyframe), pts))
                self.counters["frames"] += 1
        await proc.wait()
        tail = (await stderr_task)[-STDERR_TAIL:].decode("utf-8", "replace").strip()
        return f"the camera source ended (ffmpeg exit {proc.returncode}{': ' + tail if tail else ''})"

    def _send(self, packets: list[bytes]) -> None:
        if self.first_packet_at is None:
            self.first_packet_at = time.monotonic()
        for p in packets:
            if self._udp is not None:
                self._udp.sendto(p, self.dest)
            elif self._writer is not None:
                self._writer.write(rtp.frame_rfc4571(p))
            self.counters["packets"] += 1
            self.counters["bytes"] += len(p)
