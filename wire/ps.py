"""MPEG-2 program stream (ISO/IEC 13818-1 2.5) as GB/T 28181 carries video: per frame a pack
header, and before each key frame a system header and a program stream map naming the codec
(stream_type 0x1B H.264, 0x24 H.265), then the frame in PES packets (stream id 0xE0) with its
PTS. Pure: frames in, bytes out; and a reader of such streams, for checks and tests.

Times are in the 90 kHz clock; the SCR is the frame's PTS (no B-frames: decode order is
presentation order), so a player starts decoding at once."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Union

from contracts.errors import ContractError

PACK_START = b"\x00\x00\x01\xba"
SYSTEM_HEADER = b"\x00\x00\x01\xbb"
PSM = b"\x00\x00\x01\xbc"
VIDEO_STREAM_ID = 0xE0
STREAM_TYPES = {"h264": 0x1B, "h265": 0x24}
MAX_PES_PAYLOAD = 65_535 - 3 - 5  # PES_packet_length covers the 3 flag bytes and a 5-byte PTS
MUX_RATE = 50_000  # program_mux_rate in 50 byte/s units: 20 Mbit/s, above any camera here
PTS_MASK = (1 << 33) - 1
P_STD_KIB = 1024


class PsError(ContractError):
    pass


def crc32_mpeg(data: bytes) -> int:
    """CRC-32/MPEG-2 (poly 0x04C11DB7, no reflection, init all ones, no final xor)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


def _timestamp(prefix: int, t: int) -> bytes:
    """A PTS as PES writes it: 4 prefix bits, then 33 bits in three runs each closed by a marker."""
    t &= PTS_MASK
    return bytes([(prefix << 4) | ((t >> 29) & 0x0E) | 1, (t >> 22) & 0xFF, ((t >> 14) & 0xFE) | 1,
                  (t >> 7) & 0xFF, ((t << 1) & 0xFE) | 1])


def _read_timestamp(b: bytes) -> int:
    if not (b[0] & 1 and b[2] & 1 and b[4] & 1):
        raise PsError("PTS: marker bit missing")
    return ((b[0] >> 1) & 0x07) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1


def pack_header(scr: int) -> bytes:
    scr &= PTS_MASK
    ext = 0
    return PACK_START + bytes([
        0x40 | ((scr >> 27) & 0x38) | 0x04 | ((scr >> 28) & 0x03),
        (scr >> 20) & 0xFF,
        ((scr >> 12) & 0xF8) | 0x04 | ((scr >> 13) & 0x03),
        (scr >> 5) & 0xFF,
        ((scr << 3) & 0xF8) | 0x04 | ((ext >> 7) & 0x03),
        ((ext << 1) & 0xFE) | 1,
        (MUX_RATE >> 14) & 0xFF, (MUX_RATE >> 6) & 0xFF, ((MUX_RATE << 2) & 0xFC) | 0x03,
        0xF8,  # reserved bits, no stuffing
    ])


def system_header() -> bytes:
    body = bytes([
        0x80 | ((MUX_RATE >> 15) & 0x7F), (MUX_RATE >> 7) & 0xFF, ((MUX_RATE << 1) & 0xFE) | 1,
        0x00,  # audio_bound 0, fixed_flag 0, CSPS_flag 0
        0xE1,  # system audio/video lock, marker, video_bound 1
        0x7F,  # packet_rate_restriction 0, reserved
        # P-STD buffer bound: '11', scale 1 (units of 1024 bytes), 13-bit size: 1 MiB for a 1080p key frame
        VIDEO_STREAM_ID, 0xC0 | 0x20 | (P_STD_KIB >> 8), P_STD_KIB & 0xFF,
    ])
    return SYSTEM_HEADER + struct.pack(">H", len(body)) + body


def program_stream_map(stream_type: int, version: int = 0) -> bytes:
    entries = bytes([stream_type, VIDEO_STREAM_ID]) + b"\x00\x00"
    body = bytes([0x80 | 0x60 | (version & 0x1F), 0xFF]) + b"\x00\x00" + struct.pack(">H", len(entries)) + entries
    head = PSM + struct.pack(">H", len(body) + 4) + body
    return head + struct.pack(">I", crc32_mpeg(head))


def pes_packets(payload: bytes, pts: int, stream_id: int = VIDEO_STREAM_ID) -> bytes:
    """The frame in PES packets of at most 64 KiB; the first carries the PTS and data alignment."""
    out = bytearray()
    for offset in range(0, max(len(payload), 1), MAX_PES_PAYLOAD):
        chunk = payload[offset:offset + MAX_PES_PAYLOAD]
        if offset == 0:
            header = bytes([0x84, 0x80, 5]) + _timestamp(0b0010, pts)
        else:
            header = bytes([0x80, 0x00, 0])
        out += b"\x00\x00\x01" + bytes([stream_id]) + struct.pack(">H", len(header) + len(chunk)) + header + chunk
    return bytes(out)


class PsMuxer:
    def __init__(self, codec: str = "h264"):
        if codec not in STREAM_TYPES:
            raise PsError(f"codec {codec!r} unsupported (h264 or h265)")
        self.stream_type = STREAM_TYPES[codec]

    def mux(self, frame: bytes, pts: int, keyframe: bool) -> bytes:
        head = pack_header(pts)
        if keyframe:
            head += system_header() + program_stream_map(self.stream_type)
        return head + pes_packets(frame, pts)


# --- reading ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pack:
    scr: int


@dataclass(frozen=True)
class StreamMap:
    streams: dict[int, int] = field(default_factory=dict)  # stream id -> stream_type


@dataclass(frozen=True)
class Pes:
    stream_id: int
    pts: int | None
    payload: bytes


PsUnit = Union[Pack, StreamMap, Pes]


def _need(data: bytes, pos: int, n: int, what: str) -> None:
    if pos + n > len(data):
        raise PsError(f"{what}: truncated at byte {pos}")


def read_ps(data: bytes) -> list[PsUnit]:
    """Every pack, map and PES in a whole program stream; anything else is an error naming where."""
    out: list[PsUnit] = []
    pos = 0
    while pos < len(data):
        _need(data, pos, 4, "start code")
        if data[pos:pos + 3] != b"\x00\x00\x01":
            raise PsError(f"no start code at byte {pos}")
        code = data[pos + 3]
        if code == 0xBA:
            _need(data, pos, 14, "pack header")
            b = data[pos + 4:pos + 14]
            if b[0] & 0xC0 != 0x40 or not (b[0] & 0x04 and b[2] & 0x04 and b[4] & 0x04 and b[5] & 1):
                raise PsError(f"pack header at byte {pos}: not MPEG-2 or marker bits missing")
            scr = ((b[0] >> 3) & 0x07) << 30 | (b[0] & 0x03) << 28 | b[1] << 20 | (b[2] >> 3) << 15 \
                | (b[2] & 0x03) << 13 | b[3] << 5 | b[4] >> 3
            out.append(Pack(scr))
            pos += 14 + (b[9] & 0x07)
            continue
        if code == 0xB9:  # program end code
            pos += 4
            continue
        _need(data, pos, 6, "packet length")
        length = struct.unpack_from(">H", data, pos + 4)[0]
        _need(data, pos + 6, length, f"packet 0x{code:02X}")
        body = data[pos + 6:pos + 6 + length]
        if code == 0xBC:
            out.append(_read_psm(data[pos:pos + 6 + length], pos))
        elif 0xC0 <= code <= 0xEF:
            out.append(_read_pes(code, body, pos))
        elif code not in (0xBB, 0xBD, 0xBE, 0xBF):
            raise PsError(f"stream id 0x{code:02X} at byte {pos} is not a program stream packet")
        pos += 6 + length
    return out


def _read_psm(packet: bytes, pos: int) -> StreamMap:
    if len(packet) < 16:
        raise PsError(f"program stream map at byte {pos}: too short")
    if crc32_mpeg(packet[:-4]) != struct.unpack(">I", packet[-4:])[0]:
        raise PsError(f"program stream map at byte {pos}: CRC mismatch")
    info_len = struct.unpack_from(">H", packet, 8)[0]
    at = 10 + info_len
    if at + 2 > len(packet) - 4:
        raise PsError(f"program stream map at byte {pos}: info length past its end")
    es_len = struct.unpack_from(">H", packet, at)[0]
    at += 2
    end = at + es_len
    if end > len(packet) - 4:
        raise PsError(f"program stream map at byte {pos}: map length past its end")
    streams = {}
    while at + 4 <= end:
        streams[packet[at + 1]] = packet[at]
        at += 4 + struct.unpack_from(">H", packet, at + 2)[0]
    return StreamMap(streams)


def _read_pes(stream_id: int, body: bytes, pos: int) -> Pes:
    if len(body) < 3 or body[0] & 0xC0 != 0x80:
        raise PsError(f"PES at byte {pos}: not an MPEG-2 PES header")
    header_len = body[2]
    if 3 + header_len > len(body):
        raise PsError(f"PES at byte {pos}: header longer than the packet")
    pts = None
    if body[1] & 0x80:
        if header_len < 5:
            raise PsError(f"PES at byte {pos}: PTS flagged but header too short")
        pts = _read_timestamp(body[3:8])
    return Pes(stream_id, pts, body[3 + header_len:])


def elementary_stream(units: list[PsUnit], stream_id: int = VIDEO_STREAM_ID) -> bytes:
    return b"".join(u.payload for u in units if isinstance(u, Pes) and u.stream_id == stream_id)
