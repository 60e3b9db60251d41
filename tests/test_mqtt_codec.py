"""The ingest MQTT codec: round trips, PUBLISH split anywhere, malformed and oversized input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire import mqtt_codec as codec
from wire.mqtt_codec import ConnAck, Decoder, Disconnect, MqttProtocolError, PingResp, PubAck, Publish, SubAck

LIMIT = 1 << 20
topics = st.text(min_size=1, max_size=80).filter(lambda t: len(t.encode()) <= 0xFFFF)
payloads = st.binary(max_size=3000)
packet_ids = st.integers(1, 0xFFFF)


def v5_properties(draw_bytes: bytes) -> bytes:
    """A v5 property block of user properties (0x26 name value) carrying `draw_bytes`."""
    half = len(draw_bytes) // 2
    return b"\x26" + struct.pack("!H", half) + draw_bytes[:half] + struct.pack("!H", len(draw_bytes) - half) \
        + draw_bytes[half:]


@given(st.integers(0, 268_435_455))
def test_varint_round_trip(n):
    raw = codec.encode_varint(n)
    assert 1 <= len(raw) <= 4
    assert codec.decode_varint(raw + b"tail", 0) == (n, len(raw))
    assert codec.decode_varint(raw[:-1], 0) is None


@settings(max_examples=200)
@given(topic=topics, payload=payloads, qos=st.integers(0, 1), packet_id=packet_ids, v5=st.booleans(),
       dup=st.booleans(), retain=st.booleans(), props=st.binary(max_size=40))
def test_publish_round_trip(topic, payload, qos, packet_id, v5, dup, retain, props):
    raw = codec.encode_publish(topic, payload, qos=qos, packet_id=packet_id, v5=v5, dup=dup, retain=retain,
                               properties=v5_properties(props) if v5 else b"")
    assert Decoder(v5=v5, max_packet_bytes=LIMIT).feed(raw) == [
        Publish(topic, payload, qos, packet_id if qos else 0, dup, retain)]


@settings(max_examples=50)
@given(messages=st.lists(st.tuples(topics, payloads, packet_ids), min_size=1, max_size=5), v5=st.booleans(),
       chunk=st.integers(1, 700))
def test_stream_of_publishes_in_any_chunks(messages, v5, chunk):
    raw = b"".join(codec.encode_publish(t, p, qos=1, packet_id=i, v5=v5, properties=b"\x23\x00\x07" if v5 else b"")
                   for t, p, i in messages)
    decoder = Decoder(v5=v5, max_packet_bytes=LIMIT)
    got = []
    for k in range(0, len(raw), chunk):
        got += decoder.feed(raw[k:k + chunk])
    assert got == [Publish(t, p, 1, i) for t, p, i in messages]
    assert decoder.pending == 0


@pytest.mark.parametrize("v5", [False, True], ids=["mqtt311", "mqtt5"])
def test_publish_split_at_every_byte(v5):
    # 200 bytes of payload: a two-byte remaining length, so the split also falls inside it.
    raw = codec.encode_publish("cg/v1/fac/F001/up/telemetry", bytes(range(200)), qos=1, packet_id=513, v5=v5,
                               properties=b"\x01\x01" if v5 else b"")
    want = [Publish("cg/v1/fac/F001/up/telemetry", bytes(range(200)), 1, 513)]
    for cut in range(len(raw) + 1):
        decoder = Decoder(v5=v5, max_packet_bytes=LIMIT)
        first = decoder.feed(raw[:cut])
        assert first + decoder.feed(raw[cut:]) == want, cut
        assert decoder.pending == 0


def test_control_packets_from_the_broker():
    v311 = Decoder(v5=False, max_packet_bytes=LIMIT)
    assert v311.feed(b"\x20\x02\x01\x00" + b"\x90\x03\x00\x01\x01" + b"\xd0\x00") == [
        ConnAck(True, 0), SubAck(1, [1]), PingResp()]
    assert v311.feed(b"\x20\x02\x00\x05") == [ConnAck(False, 5)]
    v5 = Decoder(v5=True, max_packet_bytes=LIMIT)
    # CONNACK with a property (topic alias maximum), SUBACK with a reason string, DISCONNECT 0x8B.
    assert v5.feed(b"\x20\x06\x00\x00\x03\x22\x00\x0a" + b"\x90\x07\x00\x02\x03\x1f\x00\x00\x80"
                   + b"\xe0\x02\x8b\x00" + b"\xe0\x00") == [
        ConnAck(False, 0), SubAck(2, [0x80]), Disconnect(0x8B), Disconnect(0)]


def test_what_we_send():
    assert codec.encode_puback(0x1234) == b"\x40\x02\x12\x34"
    assert codec.encode_pingreq() == b"\xc0\x00"
    assert codec.encode_disconnect(v5=False) == b"\xe0\x00"
    assert codec.encode_disconnect(v5=True) == b"\xe0\x01\x00"
    assert codec.encode_subscribe(7, "a/#", 1, v5=False) == b"\x82\x08\x00\x07\x00\x03a/#\x01"
    assert codec.encode_subscribe(7, "a/#", 1, v5=True) == b"\x82\x09\x00\x07\x00\x00\x03a/#\x01"
    # 3.1.1: clean session off, username and password flags, keepalive 30, client id, credentials.
    assert codec.encode_connect("c", v5=False, username="u", password="p") == (
        b"\x10\x13\x00\x04MQTT\x04\xc0\x00\x1e\x00\x01c\x00\x01u\x00\x01p")
    # v5: clean start off, session expiry 3600 and maximum packet size 1 MiB as properties.
    assert codec.encode_connect("c", v5=True, session_expiry_s=3600, max_packet_bytes=LIMIT) == (
        b"\x10\x18\x00\x04MQTT\x05\x00\x00\x1e\x0a\x11\x00\x00\x0e\x10\x27\x00\x10\x00\x00\x00\x01c")
    # A retained QoS 1 last will: flags will (0x04), QoS 1 (0x08), retain (0x20); topic and payload
    # after the client id, before the credentials; v5 puts an empty will property block first.
    assert codec.encode_connect("c", v5=False, username="u", will_topic="w", will_payload=b"off", will_qos=1,
                                will_retain=True) == (
        b"\x10\x18\x00\x04MQTT\x04\xac\x00\x1e\x00\x01c\x00\x01w\x00\x03off\x00\x01u")
    assert codec.encode_connect("c", v5=True, will_topic="w", will_payload=b"") == (
        b"\x10\x14\x00\x04MQTT\x05\x04\x00\x1e\x00\x00\x01c\x00\x00\x01w\x00\x00")


def test_puback_decoded_in_both_versions():
    assert Decoder(v5=False, max_packet_bytes=LIMIT).feed(b"\x40\x02\x12\x34") == [PubAck(0x1234, 0)]
    v5 = Decoder(v5=True, max_packet_bytes=LIMIT)
    # v5: no reason code (success), a refusal (0x87 not authorised), and one with a reason string.
    assert v5.feed(b"\x40\x02\x00\x01" + b"\x40\x03\x00\x02\x87" + b"\x40\x08\x00\x03\x80\x04\x1f\x00\x01x") == [
        PubAck(1, 0), PubAck(2, 0x87), PubAck(3, 0x80)]


@pytest.mark.parametrize("raw, v5, message", [
    (b"\x30\xff\xff\xff\xff\x01", False, "more than four bytes"),
    (b"\x34\x05\x00\x01a\x00\x01", False, "QoS 2"),
    (b"\x36\x05\x00\x01a\x00\x01", False, "QoS 3"),
    (b"\x32\x03\x00\x01a", False, "packet id runs past"),
    (b"\x32\x05\x00\x01a\x00\x00", False, "packet id 0"),
    (b"\x30\x03\x00\x05a", False, "runs past"),
    (b"\x30\x03\x00\x01\xff", False, "not UTF-8"),
    (b"\x30\x04\x00\x01a\x09", True, "properties of 9 bytes"),
    (b"\x20\x03\x00\x00\x00", False, "malformed CONNACK"),
    (b"\x20\x02\x02\x00", False, "acknowledge flags"),
    (b"\x90\x02\x00\x01", False, "malformed SUBACK"),
    (b"\xd0\x01\x00", False, "malformed PINGRESP"),
    (b"\xe0\x00", False, "MQTT 5 only"),
    (b"\x40\x03\x00\x01\x00", False, "malformed PUBACK"),
    (b"\x40\x01\x00", True, "malformed PUBACK"),
    (b"\x40\x05\x00\x01\x00\x05\x00", True, "properties of 5 bytes"),
    (b"\x50\x02\x00\x01", False, "unexpected packet type 5"),
    (b"\x21\x02\x00\x00", False, "reserved flags"),
])
def test_malformed_packets_raise_naming_the_fault(raw, v5, message):
    with pytest.raises(MqttProtocolError, match=message):
        Decoder(v5=v5, max_packet_bytes=LIMIT).feed(raw)


def test_oversized_packet_refused_from_its_header_alone():
    decoder = Decoder(v5=False, max_packet_bytes=1000)
    assert decoder.feed(codec.encode_publish("t", b"x" * 994)) == [Publish("t", b"x" * 994, 0, 0)]
    header = codec.encode_publish("t", b"x" * 995)[:3]
    with pytest.raises(MqttProtocolError, match="packet of 1001 bytes .* exceeds the limit of 1000 bytes"):
        decoder.feed(header)


@pytest.mark.parametrize("call, message", [
    (lambda: codec.encode_varint(1 << 28), "out of range"),
    (lambda: codec.encode_subscribe(0, "t", 1, v5=False), "packet id 0"),
    (lambda: codec.encode_publish("t", b"", qos=2, packet_id=1), "QoS 2"),
    (lambda: codec.encode_connect("c", v5=False, password="p"), "password needs a username"),
    (lambda: codec.encode_connect("c", v5=False, will_topic="w", will_qos=3), "will QoS 3"),
    (lambda: codec.encode_connect("x" * 70000, v5=False), "longer than MQTT allows"),
])
def test_encoders_refuse_what_mqtt_cannot_carry(call, message):
    with pytest.raises(ValueError, match=message):
        call()
