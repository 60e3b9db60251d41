"""The MQTT packets a lean client needs, as pure functions (sans-IO): encoders for what a client
sends (CONNECT with an optional last will, SUBSCRIBE, PUBLISH, PUBACK, PINGREQ, DISCONNECT) and an
incremental `Decoder` for what a broker sends it (CONNACK, SUBACK, PUBLISH QoS 0/1, PUBACK,
PINGRESP, DISCONNECT). Cloud ingest subscribes with them; the fleet simulator publishes with them.
MQTT 3.1.1 and 5.0; v5 properties are parsed where we need one and skipped otherwise.

Malformed input raises `MqttProtocolError` naming what was wrong; the connection that sent it
cannot be trusted to stay in step and is dropped by the caller."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Union

# Fixed header packet types (high nibble).
CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 1, 2, 3, 4, 8, 9, 12, 13, 14

_PROP_SESSION_EXPIRY = 0x11
_PROP_MAX_PACKET_SIZE = 0x27
_MAX_REMAINING_LENGTH = 268_435_455  # four bytes of variable length integer

_PINGREQ = b"\xc0\x00"
_U16 = struct.Struct("!H")


class MqttProtocolError(ValueError):
    """Bytes from the broker that are not the MQTT we speak."""


# Plain slotted dataclasses, not pydantic: a PUBLISH is built once per message on the hot path,
# where validating a model would cost more than decoding the packet.
@dataclass(slots=True)
class ConnAck:
    session_present: bool
    reason_code: int  # 3.1.1 return code or v5 reason code; 0 is success in both


@dataclass(slots=True)
class SubAck:
    packet_id: int
    reason_codes: list[int]  # granted QoS 0..2, or >= 0x80 for a refusal


@dataclass(slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    packet_id: int  # 0 for QoS 0
    dup: bool = False
    retain: bool = False


@dataclass(slots=True)
class PubAck:
    packet_id: int
    reason_code: int = 0  # v5: >= 0x80 is a refusal; 3.1.1 has none


@dataclass(slots=True)
class PingResp:
    pass


@dataclass(slots=True)
class Disconnect:
    reason_code: int


Packet = Union[ConnAck, SubAck, Publish, PubAck, PingResp, Disconnect]


def encode_varint(n: int) -> bytes:
    """MQTT's variable byte integer (remaining length, property lengths)."""
    if not 0 <= n <= _MAX_REMAINING_LENGTH:
        raise ValueError(f"variable byte integer {n} out of range 0..{_MAX_REMAINING_LENGTH}")
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def decode_varint(buf, pos: int, end: int | None = None) -> tuple[int, int] | None:
    """(value, position after it), or None when `buf` (or `end`) comes first; raises on a fifth byte."""
    end = len(buf) if end is None else min(end, len(buf))
    value = shift = 0
    for i in range(pos, min(pos + 4, end)):
        b = buf[i]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i + 1
        shift += 7
    if end >= pos + 4:
        raise MqttProtocolError("malformed variable byte integer: more than four bytes")
    return None


def _utf8(s: str) -> bytes:
    b = s.encode()
    if len(b) > 0xFFFF:
        raise ValueError(f"string of {len(b)} bytes is longer than MQTT allows (65535)")
    return _U16.pack(len(b)) + b


def _binary(b: bytes) -> bytes:
    if len(b) > 0xFFFF:
        raise ValueError(f"binary field of {len(b)} bytes is longer than MQTT allows (65535)")
    return _U16.pack(len(b)) + b


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + encode_varint(len(body)) + body


def encode_connect(client_id: str, *, v5: bool, keepalive_s: int = 30, clean: bool = False,
                   session_expiry_s: int = 0, max_packet_bytes: int = 0, username: str | None = None,
                   password: str | None = None, will_topic: str | None = None, will_payload: bytes = b"",
                   will_qos: int = 0, will_retain: bool = False) -> bytes:
    """CONNECT. `clean=False` keeps the broker session: 3.1.1 clean session 0, v5 clean start 0,
    which only lasts beyond the connection with `session_expiry_s` > 0. A v5 `max_packet_bytes`
    tells the broker to drop, rather than send, anything larger. With `will_topic`, the broker
    publishes `will_payload` there when the connection ends without a DISCONNECT."""
    if not 0 <= keepalive_s <= 0xFFFF:
        raise ValueError(f"keepalive {keepalive_s} s out of range 0..65535")
    if password is not None and username is None:
        raise ValueError("a password needs a username")
    if will_qos not in (0, 1, 2):
        raise ValueError(f"will QoS {will_qos} is not 0, 1 or 2")
    will = will_topic is not None
    flags = ((0x02 if clean else 0) | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
             | ((0x04 | will_qos << 3 | (0x20 if will_retain else 0)) if will else 0))
    var = _utf8("MQTT") + bytes((5 if v5 else 4, flags)) + _U16.pack(keepalive_s)
    if v5:
        props = b""
        if session_expiry_s:
            props += bytes((_PROP_SESSION_EXPIRY,)) + struct.pack("!I", session_expiry_s)
        if max_packet_bytes:
            props += bytes((_PROP_MAX_PACKET_SIZE,)) + struct.pack("!I", max_packet_bytes)
        var += encode_varint(len(props)) + props
    payload = _utf8(client_id)
    if will:
        payload += (b"\x00" if v5 else b"") + _utf8(will_topic) + _binary(will_payload)
    if username is not None:
        payload += _utf8(username)
    if password is not None:
        payload += _binary(password.encode())
    return _packet(CONNECT << 4, var + payload)


def encode_subscribe(packet_id: int, topic: str, qos: int, *, v5: bool) -> bytes:
    if not 1 <= packet_id <= 0xFFFF:
        raise ValueError(f"packet id {packet_id} out of range 1..65535")
    if qos not in (0, 1, 2):
        raise ValueError(f"QoS {qos} is not 0, 1 or 2")
    body = _U16.pack(packet_id) + (b"\x00" if v5 else b"") + _utf8(topic) + bytes((qos,))
    return _packet((SUBSCRIBE << 4) | 0x02, body)


def encode_puback(packet_id: int) -> bytes:
    """PUBACK, the same bytes in 3.1.1 and v5 (a v5 success needs no reason code)."""
    return b"\x40\x02" + _U16.pack(packet_id)


def encode_pingreq() -> bytes:
    return _PINGREQ


def encode_disconnect(*, v5: bool) -> bytes:
    # v5 reason 0 (normal) keeps the session for its expiry interval, like 3.1.1's bare DISCONNECT.
    return b"\xe0\x01\x00" if v5 else b"\xe0\x00"


def encode_publish(topic: str, payload: bytes, *, qos: int = 0, packet_id: int = 0, v5: bool = False,
                   dup: bool = False, retain: bool = False, properties: bytes = b"") -> bytes:
    """PUBLISH; `properties` are the v5 property bytes, already encoded."""
    if qos not in (0, 1):
        raise ValueError(f"QoS {qos}: only 0 and 1 are supported")
    if qos and not 1 <= packet_id <= 0xFFFF:
        raise ValueError(f"packet id {packet_id} out of range 1..65535")
    if properties and not v5:
        raise ValueError("properties need MQTT 5")
    var = _utf8(topic) + (_U16.pack(packet_id) if qos else b"")
    if v5:
        var += encode_varint(len(properties)) + properties
    return _packet((PUBLISH << 4) | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0), var + payload)


class Decoder:
    """Feed it bytes as they arrive; it returns the complete packets and keeps the rest.
    A packet longer than `max_packet_bytes` raises before any of it is buffered."""

    def __init__(self, *, v5: bool, max_packet_bytes: int):
        self.v5 = v5
        self.max_packet_bytes = max_packet_bytes
        self._buf = b""

    @property
    def pending(self) -> int:
        """Bytes held back as the start of an incomplete packet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Packet]:
        buf = self._buf + data if self._buf else data
        out: list[Packet] = []
        pos, n = 0, len(buf)
        while pos + 2 <= n:
            first = buf[pos]
            # Remaining length: one byte for packets under 128 bytes, two under 16 KiB.
            b = buf[pos + 1]
            if b < 0x80:
                length, start = b, pos + 2
            else:
                got = decode_varint(buf, pos + 1)
                if got is None:
                    break
                length, start = got
            end = start + length
            if end - pos > self.max_packet_bytes:
                raise MqttProtocolError(f"packet of {end - pos} bytes (type {first >> 4}) exceeds the limit of "
                                        f"{self.max_packet_bytes} bytes")
            if end > n:
                break
            out.append(self._packet(first, buf, start, end))
            pos = end
        self._buf = buf[pos:] if pos < n else b""
        return out

    def _packet(self, first: int, buf: bytes, start: int, end: int) -> Packet:
        kind = first >> 4
        if kind == PUBLISH:
            return self._publish(first, buf, start, end)
        flags = first & 0x0F
        length = end - start
        if kind == PINGRESP:
            if flags or length:
                raise MqttProtocolError(f"malformed PINGRESP: flags {flags:#x}, remaining length {length}")
            return PingResp()
        if flags:
            raise MqttProtocolError(f"packet type {kind} with reserved flags {flags:#x}")
        if kind == CONNACK:
            if length < 2 or (not self.v5 and length != 2):
                raise MqttProtocolError(f"malformed CONNACK: remaining length {length}")
            if buf[start] & 0xFE:
                raise MqttProtocolError(f"malformed CONNACK: acknowledge flags {buf[start]:#x}")
            if self.v5:
                self._skip_properties(buf, start + 2, end, "CONNACK", exact=True)
            return ConnAck(bool(buf[start] & 1), buf[start + 1])
        if kind == SUBACK:
            if length < 3:
                raise MqttProtocolError(f"malformed SUBACK: remaining length {length}")
            codes_at = self._skip_properties(buf, start + 2, end, "SUBACK") if self.v5 else start + 2
            if codes_at >= end:
                raise MqttProtocolError("malformed SUBACK: no reason codes")
            return SubAck(_U16.unpack_from(buf, start)[0], list(buf[codes_at:end]))
        if kind == PUBACK:
            if length < 2 or (not self.v5 and length != 2):
                raise MqttProtocolError(f"malformed PUBACK: remaining length {length}")
            if length > 3:
                self._skip_properties(buf, start + 3, end, "PUBACK", exact=True)
            return PubAck(_U16.unpack_from(buf, start)[0], buf[start + 2] if length > 2 else 0)
        if kind == DISCONNECT:
            if not self.v5:
                raise MqttProtocolError("DISCONNECT from the broker is MQTT 5 only")
            if length == 0:
                return Disconnect(0)
            if length > 1:
                self._skip_properties(buf, start + 1, end, "DISCONNECT", exact=True)
            return Disconnect(buf[start])
        raise MqttProtocolError(f"unexpected packet type {kind} from the broker")

    def _publish(self, first: int, buf: bytes, start: int, end: int) -> Publish:
        qos = (first >> 1) & 0x03
        if qos > 1:
            raise MqttProtocolError(f"PUBLISH with QoS {qos}: subscribed at QoS 1 at most" if qos == 2
                                    else "malformed PUBLISH: QoS 3")
        if start + 2 > end:
            raise MqttProtocolError("malformed PUBLISH: no topic length")
        topic_end = start + 2 + ((buf[start] << 8) | buf[start + 1])
        pos = topic_end + 2 if qos else topic_end
        if pos > end:
            raise MqttProtocolError("malformed PUBLISH: topic or packet id runs past the packet")
        try:
            topic = buf[start + 2:topic_end].decode()
        except UnicodeDecodeError:
            raise MqttProtocolError("malformed PUBLISH: topic is not UTF-8") from None
        packet_id = 0
        if qos:
            packet_id = (buf[topic_end] << 8) | buf[topic_end + 1]
            if not packet_id:
                raise MqttProtocolError("malformed PUBLISH: QoS 1 with packet id 0")
        if self.v5:
            pos = self._skip_properties(buf, pos, end, "PUBLISH")
        return Publish(topic, bytes(buf[pos:end]), qos, packet_id, bool(first & 0x08), bool(first & 0x01))

    @staticmethod
    def _skip_properties(buf: bytes, pos: int, end: int, what: str, exact: bool = False) -> int:
        """The position after a v5 property block starting at `pos`."""
        got = decode_varint(buf, pos, end)
        if got is None:
            raise MqttProtocolError(f"malformed {what}: property length runs past the packet")
        length, pos = got
        if pos + length > end or (exact and pos + length != end):
            raise MqttProtocolError(f"malformed {what}: properties of {length} bytes do not fit the packet")
        return pos + length
