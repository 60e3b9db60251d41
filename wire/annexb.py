"""H.264 / H.265 Annex B byte streams (start-code delimited NAL units, as ffmpeg's `-f h264`
and `-f hevc` write them) cut into access units, one per picture, so each can be stamped
with its own time and closed with an RTP marker. Pure: bytes fed in, frames out.

An access unit starts at an access unit delimiter, parameter set or SEI that follows a
picture's slices, or at the first slice of a new picture (H.264: first_mb_in_slice == 0,
whose ue(v) code is a single 1 bit; H.265: first_slice_segment_in_pic_flag)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from contracts.errors import ContractError

START = b"\x00\x00\x01"
MAX_ACCESS_UNIT = 8 * 1024 * 1024
Codec = Literal["h264", "h265"]

# NAL types that open an access unit when they follow a picture's slices.
_H264_OPENERS = {6, 7, 8, 9, 14, 15, 16, 17, 18}
_H265_OPENERS = {32, 33, 34, 35, 39, 41, 42, 43, 44} | set(range(48, 56))


class AnnexBError(ContractError):
    pass


@dataclass(frozen=True)
class AccessUnit:
    data: bytes  # its NAL units, each behind a 4-byte start code
    keyframe: bool


def _nal_info(nal: bytes, codec: Codec) -> tuple[bool, bool, bool, bool]:
    """(is a slice, opens an AU after slices, is the first slice of a picture, is a key picture)."""
    if codec == "h264":
        t = nal[0] & 0x1F
        vcl = 1 <= t <= 5
        first = vcl and len(nal) > 1 and bool(nal[1] & 0x80)
        return vcl, t in _H264_OPENERS, first, t == 5
    t = (nal[0] >> 1) & 0x3F
    vcl = t < 32
    first = vcl and len(nal) > 2 and bool(nal[2] & 0x80)
    return vcl, t in _H265_OPENERS, first, 16 <= t <= 21


class AccessUnitSplitter:
    def __init__(self, codec: Codec = "h264", max_bytes: int = MAX_ACCESS_UNIT):
        self.codec = codec
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._scanned = 0  # where the search for the next start code resumes
        self._nals: list[bytes] = []  # the access unit being gathered
        self._has_slice = False
        self._key = False
        self._size = 0

    def feed(self, data: bytes) -> list[AccessUnit]:
        self._buf += data
        out: list[AccessUnit] = []
        first = self._buf.find(START)
        if first < 0:
            if len(self._buf) > self.max_bytes:
                raise AnnexBError(f"no start code within {self.max_bytes} bytes")
            return out
        pos = first + 3
        scan = max(pos, self._scanned)  # a large NAL arriving in pieces is searched once
        while True:
            nxt = self._buf.find(START, scan)
            if nxt < 0:
                break
            self._add(bytes(self._buf[pos:nxt]).rstrip(b"\x00"), out)
            pos = scan = nxt + 3
        del self._buf[:pos - 3]
        self._scanned = max(3, len(self._buf) - 2)
        if len(self._buf) > self.max_bytes:
            raise AnnexBError(f"a NAL unit over {self.max_bytes} bytes")
        return out

    def flush(self) -> list[AccessUnit]:
        """What remains once the stream has ended: the last NAL unit and access unit."""
        out: list[AccessUnit] = []
        if self._buf.startswith(START):
            self._add(bytes(self._buf[3:]).rstrip(b"\x00"), out)
        self._buf.clear()
        self._scanned = 0
        self._close(out)
        return out

    def _add(self, nal: bytes, out: list[AccessUnit]) -> None:
        if not nal:
            return
        vcl, opener, first_slice, key = _nal_info(nal, self.codec)
        if self._has_slice and (opener or first_slice):
            self._close(out)
        self._nals.append(nal)
        self._size += len(nal) + 4
        if self._size > self.max_bytes:
            raise AnnexBError(f"an access unit over {self.max_bytes} bytes")
        self._has_slice |= vcl
        self._key |= key

    def _close(self, out: list[AccessUnit]) -> None:
        if self._nals:
            out.append(AccessUnit(b"".join(b"\x00\x00\x00\x01" + n for n in self._nals), self._key))
        self._nals, self._has_slice, self._key, self._size = [], False, False, 0
