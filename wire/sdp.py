"""SDP (RFC 4566) for GB/T 28181 media sessions: the platform's INVITE offer and the device's
answer, with the standard's own lines: `y=` (the 10-digit SSRC the RTP must carry) and `f=`
(the media format: `v/codec/resolution/framerate/ratetype/rate` `a/codec/rate/samplerate`).

Over TCP (`TCP/RTP/AVP`, RFC 4571) `a=setup` says who connects: an offer's `passive` means the
platform listens and the device connects (`active`), and the other way round.
Pure: text in, objects out, and back."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Optional

from contracts.errors import ContractError

MAX_SDP_BYTES = 8192
MAX_LINES = 128
RTP_PROTOS = ("RTP/AVP", "TCP/RTP/AVP", "RTP/AVP/TCP")
DIRECTIONS = ("sendonly", "recvonly", "sendrecv", "inactive")
SESSION_NAMES = ("Play", "Playback", "Download", "Talk")

_LINE = re.compile(r"([a-z])=(.*)\Z")
_ORIGIN = re.compile(r"(\S+) (\S+) (\S+) IN (IP4|IP6) (\S+)\Z")
_CONNECTION = re.compile(r"IN (IP4|IP6) ([0-9A-Za-z.:-]+)(?:/\d+)*\Z")
_MEDIA = re.compile(r"(video|audio) ([0-9]{1,5})(?:/[0-9]+)? (\S+)((?: [0-9]{1,3})+)\Z")
_SSRC = re.compile(r"[0-9]{10}\Z")


class SdpError(ContractError):
    pass


@dataclass(frozen=True)
class MediaFormat:
    """The `f=` line: every field may be empty (the platform leaves what it does not ask for)."""
    video_codec: str = ""  # 1 MPEG-4, 2 H.264, 3 SVAC, 4 3GP, 5 H.265
    resolution: str = ""  # 1 QCIF, 2 CIF, 3 4CIF, 4 D1, 5 720P, 6 1080P/I, or WxH
    framerate: str = ""
    rate_type: str = ""  # 1 CBR, 2 VBR
    rate_kbps: str = ""
    audio_codec: str = ""
    audio_rate: str = ""
    sample_rate: str = ""

    def encode(self) -> str:
        return (f"v/{self.video_codec}/{self.resolution}/{self.framerate}/{self.rate_type}/{self.rate_kbps}"
                f"a/{self.audio_codec}/{self.audio_rate}/{self.sample_rate}")


_FORMAT = re.compile(r"v/([^/a]*)/([^/a]*)/([^/a]*)/([^/a]*)/([^/a]*)a/([^/]*)/([^/]*)/([^/]*)\Z")


def parse_format(text: str) -> Optional[MediaFormat]:
    text = text.strip()
    if not text:
        return None
    m = _FORMAT.match(text)
    if not m:
        raise SdpError(f"f=: {text[:60]!r} is not v/../../../../..a/../../..")
    return MediaFormat(*m.groups())


@dataclass(frozen=True)
class Media:
    kind: str  # video or audio
    port: int
    proto: str
    payloads: tuple[int, ...]
    rtpmap: dict[int, str] = field(default_factory=dict)
    direction: Optional[str] = None
    setup: Optional[str] = None  # TCP: active | passive | actpass
    connection: Optional[str] = None  # TCP: new | existing

    @property
    def tcp(self) -> bool:
        return "TCP" in self.proto


@dataclass(frozen=True)
class SessionDescription:
    origin_user: str
    origin_addr: str
    connection_addr: str
    media: tuple[Media, ...]
    session_name: str = "Play"
    session_id: str = "0"
    session_version: str = "0"
    time: tuple[int, int] = (0, 0)
    uri: Optional[str] = None  # u=: the channel and recording, for Playback and Download
    ssrc: Optional[str] = None  # y=
    fmt: Optional[MediaFormat] = None  # f=

    @property
    def video(self) -> Optional[Media]:
        return next((m for m in self.media if m.kind == "video"), None)

    def encode(self) -> bytes:
        ip = "IP6" if ":" in self.origin_addr else "IP4"
        cip = "IP6" if ":" in self.connection_addr else "IP4"
        lines = ["v=0", f"o={self.origin_user} {self.session_id} {self.session_version} IN {ip} {self.origin_addr}",
                 f"s={self.session_name}"]
        if self.uri:
            lines.append(f"u={self.uri}")
        lines += [f"c=IN {cip} {self.connection_addr}", f"t={self.time[0]} {self.time[1]}"]
        for m in self.media:
            lines.append(f"m={m.kind} {m.port} {m.proto} " + " ".join(str(p) for p in m.payloads))
            if m.direction:
                lines.append(f"a={m.direction}")
            if m.setup:
                lines.append(f"a=setup:{m.setup}")
            if m.connection:
                lines.append(f"a=connection:{m.connection}")
            lines += [f"a=rtpmap:{pt} {name}" for pt, name in m.rtpmap.items()]
        if self.ssrc is not None:
            lines.append(f"y={self.ssrc}")
        if self.fmt is not None:
            lines.append(f"f={self.fmt.encode()}")
        return ("\r\n".join(lines) + "\r\n").encode("ascii")


def parse_sdp(data: bytes) -> SessionDescription:
    if len(data) > MAX_SDP_BYTES:
        raise SdpError(f"SDP over {MAX_SDP_BYTES} bytes")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise SdpError("SDP is not ASCII") from None
    lines = [ln for ln in re.split(r"\r?\n", text) if ln.strip()]
    if len(lines) > MAX_LINES:
        raise SdpError(f"SDP over {MAX_LINES} lines")
    if not lines or lines[0].strip() != "v=0":
        raise SdpError("SDP must start with v=0")
    session: dict = {}
    media: list[dict] = []
    for line in lines[1:]:
        m = _LINE.match(line.strip())
        if not m:
            raise SdpError(f"line {line[:40]!r} is not <type>=<value>")
        kind, value = m.groups()
        target = media[-1] if media else session
        if kind == "o":
            om = _ORIGIN.match(value)
            if not om:
                raise SdpError(f"o=: {value[:60]!r} is not '<user> <id> <version> IN IP4 <addr>'")
            session["origin"] = om.groups()
        elif kind == "s":
            session["name"] = value.strip()
        elif kind == "u":
            session["uri"] = value.strip()
        elif kind == "c":
            cm = _CONNECTION.match(value.strip())
            if not cm:
                raise SdpError(f"c=: {value[:60]!r} is not 'IN IP4 <addr>'")
            target["c"] = cm.group(2)
        elif kind == "t":
            tm = re.fullmatch(r"([0-9]{1,20}) ([0-9]{1,20})", value.strip())
            if not tm:
                raise SdpError(f"t=: {value[:40]!r} is not '<start> <stop>'")
            session["t"] = (int(tm.group(1)), int(tm.group(2)))
        elif kind == "m":
            mm = _MEDIA.match(value.strip())
            if not mm:
                raise SdpError(f"m=: {value[:60]!r} is not '<video|audio> <port> <proto> <payloads>'")
            if mm.group(3) not in RTP_PROTOS:
                raise SdpError(f"m=: transport {mm.group(3)[:20]!r} unsupported (RTP/AVP or TCP/RTP/AVP)")
            port = int(mm.group(2))
            if port > 65535:
                raise SdpError(f"m=: port {port} out of range")
            payloads = tuple(int(p) for p in mm.group(4).split())
            if any(p > 127 for p in payloads):
                raise SdpError("m=: payload type over 127")
            media.append({"kind": mm.group(1), "port": port, "proto": mm.group(3), "payloads": payloads,
                          "rtpmap": {}})
        elif kind == "a":
            name, _, val = value.partition(":")
            if not media:
                continue  # session-level attributes name nothing this side uses
            if name in DIRECTIONS:
                target["direction"] = name
            elif name == "setup" and val in ("active", "passive", "actpass"):
                target["setup"] = val
            elif name == "connection" and val in ("new", "existing"):
                target["connection"] = val
            elif name == "rtpmap":
                rm = re.fullmatch(r"([0-9]{1,3}) (\S+)", val.strip())
                if not rm:
                    raise SdpError(f"a=rtpmap: {val[:40]!r} is not '<pt> <name>/<clock>'")
                target["rtpmap"][int(rm.group(1))] = rm.group(2)
        elif kind == "y":
            if not _SSRC.match(value.strip()) or int(value) > 0xFFFFFFFF:
                raise SdpError(f"y=: {value[:20]!r} is not a 10-digit SSRC that fits 32 bits")
            session["y"] = value.strip()
        elif kind == "f":
            session["f"] = parse_format(value)
    if "origin" not in session:
        raise SdpError("o=: line missing")
    if not media:
        raise SdpError("m=: no media")
    user, sid, version, _, addr = session["origin"]
    conn = session.get("c") or media[0].get("c")
    if conn is None:
        raise SdpError("c=: no connection address, for the session or its media")
    built = tuple(Media(m["kind"], m["port"], m["proto"], m["payloads"], m["rtpmap"], m.get("direction"),
                        m.get("setup"), m.get("connection")) for m in media)
    return SessionDescription(user, addr, conn, built, session.get("name", ""), sid, version, session.get("t", (0, 0)),
                              session.get("uri"), session.get("y"), session.get("f"))


def ps_payload_type(media: Media) -> int:
    """The payload type the offer maps to PS/90000 (GB/T 28181 uses 96 by convention)."""
    for pt, name in media.rtpmap.items():
        if name.upper().startswith("PS/"):
            return pt
    raise SdpError("offer has no PS/90000 payload")


def answer(offer: SessionDescription, *, user: str, addr: str, port: int, ssrc: str,
           fmt: Optional[MediaFormat] = None) -> SessionDescription:
    """The device's answer to a platform's offer: PS, sendonly, the offer's SSRC; over TCP the
    opposite setup role."""
    video = offer.video
    if video is None:
        raise SdpError("offer has no video media")
    pt = ps_payload_type(video)
    setup = None
    if video.tcp:
        setup = {"passive": "active", "active": "passive", "actpass": "active", None: "active"}[video.setup]
    media = Media("video", port, video.proto, (pt,), {pt: "PS/90000"}, "sendonly", setup,
                  "new" if video.tcp else None)
    return replace(offer, origin_user=user, origin_addr=addr, connection_addr=addr, media=(media,),
                   ssrc=ssrc, fmt=fmt, uri=None)
