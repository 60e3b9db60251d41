"""The RTSP server of the simulated camera: GStreamer's gst-rtsp-server (Debian
gir1.2-gst-rtsp-server-1.0) through PyGObject, encoding the frames it is given with x264 or
x265 and serving each configured stream (e.g. /main and /sub) to any RTSP client.

Run by firmware_sim.camera_rtsp with the system Python (/usr/bin/python3), because PyGObject
comes from Debian and a virtualenv does not see it; so this file imports only the standard
library and gi. It reads its orders on stdin, one message at a time:
    b"F" <u32 length> <u16 width> <u16 height> <BGR bytes>   a frame for every stream
    b"C" <u32 length> <JSON>                                  a command:
        {"op": "kick"}                                        close every client connection
        {"op": "size", "path": "/sub", "width": W, "height": H}   change a stream's resolution
and writes one JSON line on stdout when it listens: {"port": N}. End of stdin stops it, so it
never outlives the camera that started it. Not sending frames leaves clients connected with
nothing to receive: that is how a stalled camera looks."""

import argparse
import json
import struct
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

MAX_FRAME_BYTES = 3840 * 2160 * 3
ENCODERS = {
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate={kbps} "
            "! rtph264pay name=pay0 pt=96 config-interval=-1",
    "h265": "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate={kbps} "
            "! rtph265pay name=pay0 pt=96 config-interval=-1",
}


class Stream:
    """One mount point: its factory, its size, and the appsrc/capsfilter of its live media."""

    def __init__(self, spec: dict, fps: int):
        self.path = spec["path"]
        self.width, self.height = spec["width"], spec["height"]
        self.lock = threading.Lock()
        self.sources: list = []  # (appsrc, capsfilter) per prepared media
        enc = ENCODERS[spec["codec"]].format(gop=spec["gop"], kbps=spec["kbps"])
        self.launch = (f"( appsrc name=src is-live=true do-timestamp=true format=time leaky-type=downstream "
                       f"max-buffers=4 caps=video/x-raw,format=BGR,width=16,height=16,framerate={fps}/1 "
                       f"! videoconvert ! videoscale ! capsfilter name=size caps={self._caps()} ! {enc} )")
        self.factory = GstRtspServer.RTSPMediaFactory()
        self.factory.set_launch(self.launch)
        self.factory.set_shared(True)
        self.factory.connect("media-configure", self._configure)

    def _caps(self) -> str:
        return f"video/x-raw,format=I420,width={self.width},height={self.height}"

    def _configure(self, _factory, media) -> None:
        element = media.get_element()
        pair = (element.get_by_name("src"), element.get_by_name("size"))
        with self.lock:
            pair[1].set_property("caps", Gst.Caps.from_string(self._caps()))  # a resize may predate this media
            self.sources.append(pair)
        media.connect("unprepared", self._unprepared, pair)

    def _unprepared(self, _media, pair) -> None:
        with self.lock:
            if pair in self.sources:
                self.sources.remove(pair)

    def resize(self, width: int, height: int) -> None:
        with self.lock:
            self.width, self.height = width, height
            for _, size in self.sources:
                size.set_property("caps", Gst.Caps.from_string(self._caps()))

    def push(self, width: int, height: int, data: bytes, fps: int) -> None:
        with self.lock:
            sources = list(self.sources)
        for src, _ in sources:
            caps = src.get_property("caps")
            s = caps.get_structure(0) if caps is not None else None
            if s is None or s.get_value("width") != width or s.get_value("height") != height:
                src.set_property("caps", Gst.Caps.from_string(
                    f"video/x-raw,format=BGR,width={width},height={height},framerate={fps}/1"))
            src.emit("push-buffer", Gst.Buffer.new_wrapped(data))


def read_exact(stream, n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) != n:
        raise EOFError
    return data


def serve_stdin(server, streams: list[Stream], fps: int, loop) -> None:
    stdin = sys.stdin.buffer
    try:
        while True:
            kind, length = struct.unpack(">cI", read_exact(stdin, 5))
            if length > MAX_FRAME_BYTES + 4:
                raise EOFError
            payload = read_exact(stdin, length)
            if kind == b"F":
                width, height = struct.unpack(">HH", payload[:4])
                if width * height * 3 != length - 4:
                    continue
                for s in streams:
                    s.push(width, height, payload[4:], fps)
            elif kind == b"C":
                order = json.loads(payload)
                if order["op"] == "kick":
                    GLib.idle_add(kick_all, server)
                elif order["op"] == "size":
                    for s in streams:
                        if s.path == order["path"]:
                            s.resize(int(order["width"]), int(order["height"]))
    except (EOFError, ValueError, KeyError):
        pass
    GLib.idle_add(loop.quit)


def kick_all(server) -> bool:
    server.client_filter(lambda _server, _client, *_: GstRtspServer.RTSPFilterResult.REMOVE)
    return False


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--streams", required=True, help="JSON list of {path, codec, width, height, gop, kbps}")
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    streams = [Stream(spec, args.fps) for spec in json.loads(args.streams)]
    mounts = server.get_mount_points()
    for s in streams:
        mounts.add_factory(s.path, s.factory)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
        for s in streams:
            s.factory.add_role_from_structure(Gst.Structure.new_from_string(
                "viewer, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"))
    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print(json.dumps({"error": f"cannot listen on {args.host}:{args.port}"}), flush=True)
        return 1
    print(json.dumps({"port": server.get_bound_port()}), flush=True)
    threading.Thread(target=serve_stdin, args=(server, streams, args.fps, loop), daemon=True).start()
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
