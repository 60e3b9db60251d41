"""The SDP codec: GB/T 28181 Play offers over UDP and TCP, the device's answer, round trips and
hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from wire import sdp

UDP_OFFER = (b"v=0\r\n"
             b"o=34020000002000000001 0 0 IN IP4 192.168.1.2\r\n"
             b"s=Play\r\n"
             b"c=IN IP4 192.168.1.2\r\n"
             b"t=0 0\r\n"
             b"m=video 30000 RTP/AVP 96 98 97\r\n"
             b"a=recvonly\r\n"
             b"a=rtpmap:96 PS/90000\r\n"
             b"a=rtpmap:98 H264/90000\r\n"
             b"a=rtpmap:97 MPEG4/90000\r\n"
             b"y=0100000001\r\n")

TCP_OFFER = (b"v=0\r\no=34020000002000000001 0 0 IN IP4 10.1.1.1\r\ns=Play\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\n"
             b"m=video 30002 TCP/RTP/AVP 96\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\na=setup:passive\r\n"
             b"a=connection:new\r\ny=0200000002\r\nf=v/2/5/25/1/2048a///\r\n")


def test_udp_offer():
    offer = sdp.parse_sdp(UDP_OFFER)
    v = offer.video
    assert (offer.session_name, offer.connection_addr, offer.ssrc) == ("Play", "192.168.1.2", "0100000001")
    assert (v.port, v.proto, v.payloads, v.direction, v.tcp) == (30000, "RTP/AVP", (96, 98, 97), "recvonly", False)
    assert sdp.ps_payload_type(v) == 96


def test_tcp_offer_and_its_format_line():
    offer = sdp.parse_sdp(TCP_OFFER)
    v = offer.video
    assert v.tcp and v.setup == "passive" and v.connection == "new"
    assert offer.fmt == sdp.MediaFormat("2", "5", "25", "1", "2048", "", "", "")


@pytest.mark.parametrize("setup,expected", [("passive", "active"), ("active", "passive"), ("actpass", "active")])
def test_answer_takes_the_other_tcp_role(setup, expected):
    offer = sdp.parse_sdp(TCP_OFFER.replace(b"setup:passive", b"setup:" + setup.encode()))
    ans = sdp.answer(offer, user="34020000001320000001", addr="10.0.0.9", port=40000, ssrc=offer.ssrc)
    back = sdp.parse_sdp(ans.encode())
    assert back.video.setup == expected and back.video.proto == "TCP/RTP/AVP"


def test_answer_is_sendonly_ps_with_the_offers_ssrc():
    offer = sdp.parse_sdp(UDP_OFFER)
    fmt = sdp.MediaFormat("2", "6", "25", "2", "4096")
    ans = sdp.parse_sdp(sdp.answer(offer, user="34020000001320000001", addr="10.0.0.9", port=0, ssrc="0100000001",
                                   fmt=fmt).encode())
    assert ans.origin_user == "34020000001320000001" and ans.connection_addr == "10.0.0.9"
    assert ans.video.payloads == (96,) and ans.video.rtpmap == {96: "PS/90000"}
    assert ans.video.direction == "sendonly" and ans.ssrc == "0100000001" and ans.fmt == fmt


@pytest.mark.parametrize("data,reason", [
    (b"", "must start with v=0"),
    (UDP_OFFER.replace(b"m=video 30000 RTP/AVP 96 98 97\r\n", b""), "no media"),
    (UDP_OFFER.replace(b"RTP/AVP", b"RTP/SAVP"), "unsupported"),
    (UDP_OFFER.replace(b"30000", b"70000"), "out of range"),
    (UDP_OFFER.replace(b"y=0100000001", b"y=9999999999"), "fits 32 bits"),
    (UDP_OFFER.replace(b"y=0100000001", b"y=12ab"), "10-digit SSRC"),
    (UDP_OFFER.replace(b"c=IN IP4 192.168.1.2\r\n", b""), "no connection address"),
    (UDP_OFFER.replace(b"o=34020000002000000001 0 0 IN IP4 192.168.1.2\r\n", b""), "o=: line missing"),
    (UDP_OFFER + b"f=garbage\r\n", "f=:"),
    (UDP_OFFER + b"a=x\r\n" * 200, "over 128 lines"),
    (UDP_OFFER + "s=播放\r\n".encode(), "not ASCII"),
])
def test_bad_sdp_is_refused_with_a_reason(data, reason):
    with pytest.raises(sdp.SdpError) as err:
        sdp.parse_sdp(data)
    assert reason in str(err.value)


def test_offer_without_ps_cannot_be_answered():
    offer = sdp.parse_sdp(UDP_OFFER.replace(b"a=rtpmap:96 PS/90000\r\n", b""))
    with pytest.raises(sdp.SdpError, match="no PS/90000"):
        sdp.answer(offer, user="1", addr="10.0.0.1", port=1, ssrc="0100000001")


_digits = st.text("0123456789", max_size=5)


@given(port=st.integers(0, 65535), tcp=st.booleans(), ssrc=st.integers(0, 0xFFFFFFFF), pt=st.integers(0, 127),
       setup=st.sampled_from(["active", "passive"]), name=st.sampled_from(sdp.SESSION_NAMES),
       fmt=st.one_of(st.none(), st.builds(sdp.MediaFormat, _digits, _digits, _digits, _digits, _digits, _digits,
                                          _digits, _digits)),
       addr=st.ip_addresses(v=4).map(str), uri=st.one_of(st.none(), st.just("34020000001320000001:0")))
@settings(max_examples=150, deadline=None)
def test_round_trip(port, tcp, ssrc, pt, setup, name, fmt, addr, uri):
    media = sdp.Media("video", port, "TCP/RTP/AVP" if tcp else "RTP/AVP", (pt,), {pt: "PS/90000"}, "sendonly",
                      setup if tcp else None, "new" if tcp else None)
    sd = sdp.SessionDescription("34020000001320000001", addr, addr, (media,), name, uri=uri, ssrc=f"{ssrc:010d}",
                                fmt=fmt)
    assert sdp.parse_sdp(sd.encode()) == sd


@given(st.binary(max_size=400))
@settings(max_examples=300, deadline=None)
def test_random_bytes_raise_only_sdp_errors(data):
    for d in (data, UDP_OFFER + data, UDP_OFFER[:60] + data):
        try:
            sdp.parse_sdp(d)
        except sdp.SdpError:
            pass
