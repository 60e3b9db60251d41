"""The SIP codec: GB/T 28181 REGISTER exchanges as platforms send them, RFC 2617 digest vectors,
stream framing, round trips and hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from wire import sip

REGISTER = (
    b"REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK1371463273\r\n"
    b"From: <sip:34020000001320000001@3402000000>;tag=2043466181\r\n"
    b"To: <sip:34020000001320000001@3402000000>\r\n"
    b"Call-ID: 1011047669\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Contact: <sip:34020000001320000001@192.168.1.64:5060>\r\n"
    b"Max-Forwards: 70\r\n"
    b"User-Agent: IP Camera\r\n"
    b"Expires: 3600\r\n"
    b"Content-Length: 0\r\n\r\n")

CHALLENGE = (
    b"SIP/2.0 401 Unauthorized\r\n"
    b"v: SIP/2.0/UDP 192.168.1.64:5060;rport=5060;branch=z9hG4bK1371463273;received=192.168.1.64\r\n"
    b"f: <sip:34020000001320000001@3402000000>;tag=2043466181\r\n"
    b"t: <sip:34020000001320000001@3402000000>;tag=889\r\n"
    b"i: 1011047669\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b'WWW-Authenticate: Digest realm="3402000000", nonce="f0e1d2c3b4a5", qop="auth", algorithm=MD5\r\n'
    b"l: 0\r\n\r\n")


def test_register_parses_with_its_parts():
    msg = sip.parse_datagram(REGISTER)
    assert isinstance(msg, sip.SipRequest)
    assert (msg.method, msg.cseq, msg.call_id) == ("REGISTER", (1, "REGISTER"), "1011047669")
    assert msg.from_addr.uri.user == "34020000001320000001" and msg.from_addr.tag == "2043466181"
    assert msg.to_addr.tag is None
    via = sip.parse_via(msg.headers.get("via"))
    assert (via.transport, via.host, via.port, via.branch) == ("UDP", "192.168.1.64", 5060, "z9hG4bK1371463273")
    assert "rport" in via.params
    assert sip.parse_uri(msg.uri) == sip.SipUri("34020000002000000001", "3402000000")


def test_compact_headers_are_read_as_long_ones():
    msg = sip.parse_datagram(CHALLENGE)
    assert isinstance(msg, sip.SipResponse) and msg.status == 401
    assert msg.call_id == "1011047669" and msg.to_addr.tag == "889"
    ch = sip.parse_challenge(msg.headers.get("www-authenticate"))
    assert ch == sip.DigestChallenge("3402000000", "f0e1d2c3b4a5", ("auth",), None, "MD5")


def test_rfc2617_digest_vector():
    # RFC 2617 3.5: the worked example, with qop=auth.
    resp = sip.digest_response("Mufasa", "Circle Of Life", "testrealm@host.com", "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                               "GET", "/dir/index.html", "auth", "00000001", "0a4f113b")
    assert resp == "6629fae49393a05397450978507c4ef1"


def test_digest_without_qop_is_rfc2069_style():
    resp = sip.digest_response("Mufasa", "Circle Of Life", "testrealm@host.com", "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                               "GET", "/dir/index.html")
    assert resp == "670fd8c2df070c60b045671b8b24ff02"  # MD5(HA1:nonce:HA2), computed apart from the codec


@pytest.mark.parametrize("qop", [(), ("auth",), ("auth", "auth-int")])
def test_authorize_and_verify(qop):
    ch = sip.DigestChallenge("3402000000", "abc123", qop, opaque="xyz")
    creds = sip.authorize(ch, "34020000001320000001", "12345678", "REGISTER", "sip:34020000002000000001@3402000000")
    parsed = sip.parse_credentials(creds.encode())
    assert parsed == creds
    assert (parsed.qop == "auth") == bool(qop)
    assert sip.verify(parsed, "12345678", "REGISTER")
    assert not sip.verify(parsed, "wrong", "REGISTER")
    assert not sip.verify(parsed, "12345678", "INVITE")


def test_challenge_without_auth_qop_or_with_another_algorithm_is_refused():
    with pytest.raises(sip.SipError, match="offers no 'auth'"):
        sip.authorize(sip.DigestChallenge("r", "n", ("auth-int",)), "u", "p", "REGISTER", "sip:x@y")
    with pytest.raises(sip.SipError, match="MD5 only"):
        sip.parse_challenge('Digest realm="r", nonce="n", algorithm=SHA-256')
    with pytest.raises(sip.SipError, match="not Digest"):
        sip.parse_challenge('Basic realm="r"')
    with pytest.raises(sip.SipError, match="no nonce"):
        sip.parse_challenge('Digest realm="r"')


def test_quoted_strings_keep_commas_and_escapes():
    ch = sip.parse_challenge(r'Digest realm="a, \"b\"", nonce="n"')
    assert ch.realm == 'a, "b"'
    assert sip.parse_challenge(sip.DigestChallenge('a, "b"', "n").encode()).realm == 'a, "b"'


def test_build_response_mirrors_the_request():
    req = sip.parse_datagram(REGISTER)
    resp = sip.build_response(req, 200, to_tag="t1", extra=[("Expires", "3600")])
    back = sip.parse_datagram(sip.encode(resp))
    assert isinstance(back, sip.SipResponse) and back.status == 200 and back.reason == "OK"
    assert back.call_id == req.call_id and back.cseq == req.cseq
    assert back.to_addr.tag == "t1" and back.from_addr.tag == "2043466181"
    assert back.headers.get_all("via") == req.headers.get_all("via")


def test_reason_phrase_cannot_inject_headers():
    # A reason quoted from a peer's malformed message goes back in the status line.
    req = sip.parse_datagram(REGISTER)
    resp = sip.build_response(req, 400, "bad\r\nX-Injected: 1")
    back = sip.parse_datagram(sip.encode(resp))
    assert back.headers.get("x-injected") is None and "\n" not in back.reason


@pytest.mark.parametrize("data,reason", [
    (REGISTER.replace(b"Call-ID: 1011047669\r\n", b""), "call-id: header missing"),
    (REGISTER.replace(b"CSeq: 1 REGISTER", b"CSeq: 1 INVITE"), "differs from the request"),
    (REGISTER.replace(b"CSeq: 1 REGISTER", b"CSeq: one REGISTER"), "CSeq"),
    (REGISTER.replace(b"Content-Length: 0", b"Content-Length: 10"), "only 0 body bytes"),
    (REGISTER.replace(b"Content-Length: 0", b"Content-Length: -1"), "Content-Length"),
    (REGISTER.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), "neither a request nor a status line"),
    (REGISTER.replace(b"sip:34020000002000000001@3402000000 ", b"http://x "), "not a sip: URI"),
    (REGISTER.replace(b"Max-Forwards: 70", b"Max Forwards 70"), "malformed header line"),
    (REGISTER.replace(b"User-Agent: IP Camera", b"User-Agent: \xff\xfe"), "not UTF-8"),
    (REGISTER.replace(b"\r\n\r\n", b"\r\n"), "no blank line"),
    (REGISTER.replace(b"Call-ID: 1011047669\r\n", b"Call-ID: 1\r\nCall-ID: 2\r\n"), "appears twice"),
])
def test_malformed_messages_are_refused_with_a_reason(data, reason):
    with pytest.raises(sip.SipError) as err:
        sip.parse_datagram(data)
    assert reason in str(err.value)


def test_header_flood_and_oversize_are_refused_before_decoding():
    flood = REGISTER.replace(b"Expires: 3600\r\n", b"".join(b"X-%d: 1\r\n" % i for i in range(100)))
    with pytest.raises(sip.SipError, match="more than 64 headers") as err:
        sip.parse_datagram(flood)
    assert err.value.status == 413
    with pytest.raises(sip.SipError, match="over 65535 bytes"):
        sip.parse_datagram(REGISTER + b"x" * 70_000)


def test_stream_cuts_messages_at_content_length_across_reads():
    body = b"<Notify/>"
    msg = REGISTER.replace(b"Content-Length: 0", b"Content-Length: %d" % len(body)) + body
    stream = sip.SipStream()
    data = b"\r\n\r\n" + msg + msg  # CRLF keep-alives first
    got = []
    for i in range(0, len(data), 7):
        got += stream.feed(data[i:i + 7])
    assert [m.body for m in got] == [body, body]


def test_stream_requires_content_length_and_bounds_its_buffer():
    with pytest.raises(sip.SipError, match="Content-Length: header missing"):
        sip.SipStream().feed(REGISTER.replace(b"Content-Length: 0\r\n", b""))
    stream = sip.SipStream()
    with pytest.raises(sip.SipError, match="no end of headers"):
        for _ in range(20):
            stream.feed(b"X" * 1000)
    with pytest.raises(sip.SipError, match="over 65535 bytes"):
        sip.SipStream().feed(REGISTER.replace(b"Content-Length: 0", b"Content-Length: 999999"))


def test_addresses_with_and_without_brackets():
    a = sip.parse_address('"Gate 1" <sip:34020000001320000001@10.0.0.1:5061;transport=tcp>;tag=abc')
    assert a.display == "Gate 1" and a.uri.port == 5061 and a.uri.params == {"transport": "tcp"}
    assert a.tag == "abc"
    assert sip.parse_address(str(a)) == a
    b = sip.parse_address("sip:34020000001320000001@10.0.0.1;tag=x")
    assert b.tag == "x" and b.uri.params == {}


_token = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
_value = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters="\x7f"), max_size=40).map(str.strip)


@given(method=st.sampled_from(["REGISTER", "MESSAGE", "INVITE", "ACK", "BYE"]), user=_token, host=_token,
       cseq=st.integers(0, 2**31), call_id=_token, tag=_token,
       extra=st.lists(st.tuples(_token.map(lambda t: "X-" + t), _value), max_size=5), body=st.binary(max_size=300))
@settings(max_examples=150, deadline=None)
def test_request_round_trip(method, user, host, cseq, call_id, tag, extra, body):
    addr = sip.Address(sip.SipUri(user, host), {"tag": tag})
    req = sip.build_request(method, f"sip:{user}@{host}", via=sip.Via("UDP", "10.0.0.1", 5060, {"branch": "z9hG4bKx"}),
                            from_addr=addr, to_addr=sip.Address(sip.SipUri(user, host)), call_id=call_id, cseq=cseq,
                            extra=extra, body=body, content_type="Application/MANSCDP+xml" if body else None)
    for parse in (sip.parse_datagram, lambda d: sip.SipStream().feed(d)[0]):
        back = parse(sip.encode(req))
        assert isinstance(back, sip.SipRequest)
        assert (back.method, back.uri, back.body, back.cseq) == (method, req.uri, body, (cseq, method))
        assert back.from_addr == addr
        assert [(n, v) for n, v in back.headers.items if n.startswith("X-")] == extra


@given(st.binary(max_size=600))
@settings(max_examples=300, deadline=None)
def test_random_bytes_raise_only_sip_errors(data):
    for attempt in (lambda: sip.parse_datagram(data), lambda: sip.SipStream().feed(data),
                    lambda: sip.parse_datagram(REGISTER[:120] + data)):
        try:
            attempt()
        except sip.SipError:
            pass


@given(st.text(max_size=200))
@settings(max_examples=200, deadline=None)
def test_random_auth_headers_raise_only_sip_errors(text):
    for fn in (sip.parse_challenge, sip.parse_credentials, sip.parse_address, sip.parse_via):
        try:
            fn("Digest " + text if fn in (sip.parse_challenge, sip.parse_credentials) else text)
        except sip.SipError:
            pass
