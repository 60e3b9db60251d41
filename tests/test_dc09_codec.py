"""The DC-09 codec: CRC vectors, published frames, round trips and malformed input."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings, strategies as st

from contracts.alarms import AlarmKind
from wire import dc09

NOW = datetime(2026, 9, 25, 14, 12, 4, tzinfo=timezone.utc)
ACCOUNTS = {"1234": None}


def reframe(body: str) -> bytes:
    """A published frame body with its CRC and length recomputed, as a sender would send it."""
    raw = body.encode("ascii")
    return b"\n" + f"{dc09.crc16(raw):04X}{len(raw):04X}".encode() + raw + b"\r"


def test_crc16_arc_check_values():
    assert dc09.crc16(b"123456789") == 0xBB3D  # the CRC-16/ARC catalogue check value
    assert dc09.crc16(b"") == 0
    assert dc09.crc16(b"A") == 0x30C0


def test_published_frames_parse():
    # Bodies from DC-09's annex examples (as pysiaalarm's tests quote them); their CRC/length
    # fields there are placeholders, so the checksum is recomputed here.
    cid = dc09.decode_frame(reframe('"ADM-CID"9876R579BDFL789ABC#12345A[#12345A|1110 00 129]_14:12:04,09-25-2019'),
                            {"12345A": None})
    assert (cid.header.seq, cid.header.receiver, cid.header.prefix) == (9876, "579BDF", "789ABC")
    assert (cid.event.code, cid.event.area, cid.event.zone) == ("1110", 0, 129)
    assert cid.timestamp == datetime(2019, 9, 25, 14, 12, 4, tzinfo=timezone.utc)
    sia = dc09.decode_frame(reframe('"SIA-DCS"6002L0#AAA[|Nri1/CL501][M0026B9E4268B]_14:12:04,09-25-2019'),
                            {"AAA": None})
    assert (sia.event.code, sia.event.area, sia.event.zone, sia.event.alarm_id) == ("CL", 1, 501, None)
    plain = dc09.decode_frame(reframe('"SIA-DCS"0002R1L232#78919[#78919|NFA129]_11:10:00,10-12-2019'),
                              {"78919": None})
    assert (plain.event.code, plain.event.zone, plain.header.account) == ("FA", 129, "78919")
    # A panel's DC-03 data with the optional time and user fields before the area.
    timed = dc09.decode_frame(reframe('"SIA-DCS"0003L0#AAA[#AAA|Nti14:11/id12/ri2/BA005^Nursery 2^]_14:12:04,09-25-2019'),
                              {"AAA": None})
    assert (timed.event.code, timed.event.area, timed.event.zone) == ("BA", 2, 5)
    assert timed.data == "#AAA|Nti14:11/id12/ri2/BA005^Nursery 2^]"  # stored as sent, user and time included


def test_published_frame_with_placeholder_crc_is_rejected():
    with pytest.raises(dc09.DC09Error) as err:
        dc09.decode_frame(b'\nE5D50078"SIA-DCS"6002L0#AAA[|Nri1/CL501]_14:12:04,09-25-2019\r', {"AAA": None})
    assert err.value.kind in ("length", "crc")


def test_event_frame_layout():
    aid = UUID("7cc506d8-011b-45ad-a7ac-bd625d1aad97")
    frame = dc09.encode_event(dc09.EventData(code="PA", zone=7, alarm_id=aid, occurred_at=NOW - timedelta(seconds=3)),
                              protocol="SIA-DCS", account="1234", seq=12, now=NOW, receiver="1")
    body = '"SIA-DCS"0012R1L0#1234[#1234|Nri1/PA007][H_14:12:01,09-25-2026][I' + str(aid) + "]_14:12:04,09-25-2026"
    assert frame == reframe(body)
    assert frame[5:9] == f"{len(body):04X}".encode() and frame[5:6] == b"0"
    cid = dc09.encode_event(dc09.EventData(code="1120", zone=1), protocol="ADM-CID", account="1234", seq=1, now=NOW)
    assert cid == reframe('"ADM-CID"0001L0#1234[#1234|1120 01 001]_14:12:04,09-25-2026')


def test_null_and_responses():
    null = dc09.decode_frame(dc09.encode_null(account="1234", seq=9999, now=NOW), ACCOUNTS)
    assert null.event is None and null.header.token == "NULL" and null.header.seq == 9999
    assert dc09.next_seq(9999) == 1 and dc09.next_seq(1) == 2
    ack = dc09.decode_response(dc09.encode_ack(null.header, now=NOW))
    assert (ack.kind, ack.seq, ack.account) == ("ACK", 9999, "1234")
    nak = dc09.decode_response(dc09.encode_nak(now=NOW + timedelta(hours=1)))
    assert nak.kind == "NAK" and nak.timestamp == NOW + timedelta(hours=1)
    assert dc09.decode_response(dc09.encode_duh(null.header)).kind == "DUH"


def test_codes_from_contracts():
    assert dc09.code_for(AlarmKind.PANIC, False, "SIA-DCS") == "PA"
    assert dc09.code_for(AlarmKind.PANIC, True, "ADM-CID") == "3120"
    assert dc09.kind_of("1120") == (AlarmKind.PANIC, False)
    assert dc09.kind_of("RP") is None
    with pytest.raises(ValueError, match="camera_fault"):
        dc09.code_for(AlarmKind.CAMERA_FAULT, False, "SIA-DCS")


KEYS = st.sampled_from([None, bytes(range(16)), bytes(range(24)), bytes(range(32))])
SIA = st.sampled_from(["PA", "PR", "FA", "BA", "TA", "TX", "RP"])
CID = st.sampled_from(["1120", "3120", "1110", "1130", "1137", "1601", "1602"])


@settings(max_examples=150, deadline=None)
@given(key=KEYS, protocol=st.sampled_from(["SIA-DCS", "ADM-CID"]), sia=SIA, cid=CID,
       zone=st.integers(0, 999), area=st.integers(0, 99), seq=st.integers(1, 9999),
       account=st.from_regex(r"[0-9A-F]{3,16}", fullmatch=True), with_id=st.booleans(),
       now=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1), timezones=st.just(timezone.utc)))
def test_round_trip(key, protocol, sia, cid, zone, area, seq, account, with_id, now):
    now = now.replace(microsecond=0)
    ev = dc09.EventData(code=sia if protocol == "SIA-DCS" else cid, zone=zone, area=area,
                        alarm_id=uuid4() if with_id else None,
                        occurred_at=now - timedelta(seconds=5) if protocol == "SIA-DCS" else None)
    frame = dc09.encode_event(ev, protocol=protocol, account=account, seq=seq, now=now, key=key)
    got = dc09.decode_frame(frame, {account: key})
    assert got.event == ev
    assert got.timestamp == now
    assert got.header == dc09.Header(token=protocol, encrypted=key is not None, seq=seq, receiver=None, prefix="0",
                                     account=account)
    reply = dc09.decode_response(dc09.encode_ack(got.header, now=now, key=key), key=key)
    assert (reply.kind, reply.seq) == ("ACK", seq)


def _frame(key=None, **kw):
    return dc09.encode_event(dc09.EventData(code="PA", zone=3), protocol="SIA-DCS", account="1234", seq=5, now=NOW,
                             key=key, **kw)


@pytest.mark.parametrize("mangle, kind", [
    (lambda f: f[:1] + b"0000" + f[5:], "crc"),
    (lambda f: f[:5] + b"0FFF" + f[9:], "length"),
    (lambda f: f[:-20] + b"\r", "length"),
    (lambda f: f[:-1], "framing"),
    (lambda f: b"\nhello world\r", "framing"),
    (lambda f: b"\n\x00\xff\xfe garbage \x80\x81 more garbage here\r", "framing"),
    (lambda f: reframe('"SIA-DCS"0005L0#9999[#9999|Nri1/PA003]_14:12:04,09-25-2026'), "account"),
    (lambda f: reframe('"SIA-DCS"0005L0#1234[#9999|Nri1/PA003]_14:12:04,09-25-2026'), "account"),
    (lambda f: reframe('"SIA-DCS"0005L0#1234[#1234|Nri1/PA003]_14:12:04,13-25-2026'), "timestamp"),
    (lambda f: reframe('"SIA-DCS"0005L0#1234[#1234|hello]_14:12:04,09-25-2026'), "format"),
    (lambda f: reframe('"SIA-XYZ"0005L0#1234[#1234|Nri1/PA003]'), "token"),
    (lambda f: reframe('"SIA-DCS"0005L0#1234[#1234|Nri1/PA003'), "format"),
])
def test_malformed_frames_raise_with_reason(mangle, kind):
    with pytest.raises(dc09.DC09Error) as err:
        dc09.decode_frame(mangle(_frame()), ACCOUNTS)
    assert err.value.kind == kind
    assert kind in str(err.value)


def test_encryption_errors():
    key = bytes(range(16))
    enc = _frame(key=key)
    with pytest.raises(dc09.DC09Error, match="decrypt"):
        dc09.decode_frame(enc, {"1234": bytes(16)})  # wrong key
    with pytest.raises(dc09.DC09Error, match="no key"):
        dc09.decode_frame(enc, ACCOUNTS)
    with pytest.raises(dc09.DC09Error, match="requires encryption"):
        dc09.decode_frame(_frame(), {"1234": key})
    with pytest.raises(ValueError, match="16, 24 or 32"):
        _frame(key=b"short")


def test_timestamp_window():
    frame = dc09.decode_frame(_frame(), ACCOUNTS)
    dc09.check_timestamp(frame, NOW + timedelta(seconds=40))
    dc09.check_timestamp(frame, NOW - timedelta(seconds=20))
    for off in (41, -21, 3600):
        with pytest.raises(dc09.DC09Error, match="timestamp"):
            dc09.check_timestamp(frame, NOW + timedelta(seconds=off))


def test_bad_responses():
    for raw in (b"\n\r", b"garbage", reframe('"ACK"00xxL0#1234[]'), reframe('"NAK"0000R0L0A0[]')):
        with pytest.raises(dc09.DC09Error):
            dc09.decode_response(raw)


def test_encode_rejects_bad_arguments():
    with pytest.raises(ValueError, match="zone"):
        dc09.encode_event(dc09.EventData(code="PA", zone=1000), protocol="SIA-DCS", account="1234", seq=1, now=NOW)
    with pytest.raises(ValueError, match="sequence"):
        dc09.encode_null(account="1234", seq=0, now=NOW)
    with pytest.raises(ValueError, match="account"):
        dc09.encode_null(account="12", seq=1, now=NOW)
    with pytest.raises(ValueError, match="timezone"):
        dc09.encode_null(account="1234", seq=1, now=NOW.replace(tzinfo=None))


def _mutate(frame: bytes, edits: list[tuple[int, int]]) -> bytes:
    out = bytearray(frame)
    for pos, byte in edits:
        out[pos % len(out)] = byte
    return bytes(out)


SAMPLES = [_frame(), _frame(key=bytes(range(16))), dc09.encode_null(account="1234", seq=1, now=NOW),
           dc09.encode_ack(dc09.Header("SIA-DCS", True, 5, None, "0", "1234"), now=NOW, key=bytes(range(16))),
           dc09.encode_nak(now=NOW)]


@settings(max_examples=500, deadline=None)
@given(raw=st.one_of(st.binary(max_size=5000),
                     st.builds(_mutate, st.sampled_from(SAMPLES),
                               st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8))))
def test_decoders_raise_only_dc09_errors(raw):
    """Random and mutated bytes: every decoder either decodes or raises DC09Error naming the fault."""
    for decode in (lambda b: dc09.decode_frame(b, {"1234": None}), lambda b: dc09.decode_frame(b, {"1234": bytes(range(16))}),
                   lambda b: dc09.decode_response(b, key=bytes(range(16))), dc09.decode_response):
        try:
            decode(raw)
        except dc09.DC09Error as exc:
            assert exc.kind and str(exc).startswith(exc.kind)


def test_check_ack():
    header = dc09.Header("SIA-DCS", True, 5, None, "0", "1234")
    key = bytes(range(16))

    def check(reply_bytes, sent_at=NOW, now=NOW, encrypted=True):
        dc09.check_ack(dc09.decode_response(reply_bytes, key=key), seq=5, account="1234", encrypted=encrypted,
                       sent_at=sent_at, now=now, tolerance_s=2)

    check(dc09.encode_ack(header, now=NOW, key=key))
    check(dc09.encode_ack(header, now=NOW - timedelta(seconds=3), key=key))  # 1 s resolution + 2 s tolerance
    for reply, reason in ((dc09.encode_ack(header, now=NOW - timedelta(seconds=4), key=key), "older than the frame"),
                          (dc09.encode_ack(header, now=NOW + timedelta(seconds=21), key=key), "ahead"),
                          (dc09.encode_ack(dc09.Header("SIA-DCS", False, 5, None, "0", "1234"), now=NOW), "plain ACK"),
                          (dc09.encode_ack(dc09.Header("SIA-DCS", True, 6, None, "0", "1234"), now=NOW, key=key), "sequence"),
                          (dc09.encode_ack(dc09.Header("SIA-DCS", True, 5, None, "0", "9999"), now=NOW, key=key), "account"),
                          (dc09.encode_duh(header), "DUH")):
        with pytest.raises(dc09.DC09Error, match=reason):
            check(reply)
    check(dc09.encode_ack(dc09.Header("SIA-DCS", False, 5, None, "0", "1234"), now=NOW), encrypted=False)


def test_pads_are_never_handed_out_twice_across_refills_and_threads():
    """With a zero IV, the pad is what keeps two frames of one key with the same text apart: pad
    digits given to two frames would make them recognisable as equal."""
    import threading

    pads = dc09._PadSource(chunk=64)  # 128 digits a refill: many refills below
    taken: list[str] = []

    def take() -> None:
        for n in range(1, 16 * 40):
            taken.append(pads.take(n % 16 + 1))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(taken) == 4 * (16 * 40 - 1)
    assert sorted(len(p) for p in taken) == sorted(4 * [n % 16 + 1 for n in range(1, 16 * 40)])
    assert all(set(p) <= set("0123456789abcdef") for p in taken)
    long_pads = [p for p in taken if len(p) >= 12]
    assert len(set(long_pads)) == len(long_pads), "pad digits handed out twice"
