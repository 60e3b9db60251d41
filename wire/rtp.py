"""RTP (RFC 3550) packets carrying a program stream as GB/T 28181 sends it: one payload type
(PS/90000, usually 96), the SSRC the platform chose in `y=`, a 90 kHz timestamp per frame and
the marker bit on each frame's last packet; and RFC 4571 framing for RTP over TCP (each packet
behind its 2-byte length). Pure: no sockets here."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from contracts.errors import ContractError

VERSION = 2
DEFAULT_PAYLOAD = 1400  # bytes of PS per packet: an RTP/UDP/IP packet under a 1500-byte MTU
CLOCK_HZ = 90_000


class RtpError(ContractError):
    pass


@dataclass(frozen=True)
class RtpPacket:
    payload_type: int
    seq: int
    timestamp: int
    ssrc: int
    marker: bool
    payload: bytes

    def encode(self) -> bytes:
        return struct.pack(">BBHII", VERSION << 6, (0x80 if self.marker else 0) | (self.payload_type & 0x7F),
                           self.seq & 0xFFFF, self.timestamp & 0xFFFFFFFF, self.ssrc & 0xFFFFFFFF) + self.payload


def parse_rtp(data: bytes) -> RtpPacket:
    if len(data) < 12:
        raise RtpError(f"{len(data)} bytes: shorter than an RTP header")
    b0, b1, seq, ts, ssrc = struct.unpack_from(">BBHII", data)
    if b0 >> 6 != VERSION:
        raise RtpError(f"version {b0 >> 6}, not 2")
    pos = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:  # header extension: 4 bytes, then its length in 32-bit words
        if pos + 4 > len(data):
            raise RtpError("header extension truncated")
        pos += 4 + 4 * struct.unpack_from(">H", data, pos + 2)[0]
    end = len(data)
    if b0 & 0x20:
        pad = data[-1]
        if pad == 0 or pad > end - pos:
            raise RtpError(f"padding of {pad} bytes does not fit")
        end -= pad
    if pos > end:
        raise RtpError("header longer than the packet")
    return RtpPacket(b1 & 0x7F, seq, ts, ssrc, bool(b1 & 0x80), data[pos:end])


class RtpPacketiser:
    """Cuts each frame's bytes into packets: sequence numbers run on across frames (mod 2^16)."""

    def __init__(self, ssrc: int, payload_type: int = 96, max_payload: int = DEFAULT_PAYLOAD, first_seq: int = 0):
        if not 0 <= ssrc <= 0xFFFFFFFF or not 0 <= payload_type <= 127 or max_payload < 1:
            raise RtpError("ssrc must fit 32 bits, payload type 7 bits, packets hold a byte at least")
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.max_payload = max_payload
        self.seq = first_seq & 0xFFFF

    def packetise(self, frame: bytes, timestamp: int) -> list[bytes]:
        chunks = [frame[i:i + self.max_payload] for i in range(0, len(frame), self.max_payload)] or [b""]
        out = []
        for i, chunk in enumerate(chunks):
            out.append(RtpPacket(self.payload_type, self.seq, timestamp, self.ssrc, i == len(chunks) - 1,
                                 chunk).encode())
            self.seq = (self.seq + 1) & 0xFFFF
        return out


def frame_rfc4571(packet: bytes) -> bytes:
    if len(packet) > 0xFFFF:
        raise RtpError(f"{len(packet)} bytes: too long for a 2-byte RFC 4571 length")
    return struct.pack(">H", len(packet)) + packet


class Rfc4571Stream:
    """Packets out of a TCP byte stream of RFC 4571 frames (a zero length is an error: no RTP
    packet is empty, and a stream of zeros is not a peer to keep reading)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out = []
        while len(self._buf) >= 2:
            n = struct.unpack_from(">H", self._buf)[0]
            if n == 0:
                raise RtpError("RFC 4571 frame of length 0")
            if len(self._buf) < 2 + n:
                break
            out.append(bytes(self._buf[2:2 + n]))
            del self._buf[:2 + n]
        return out
