"""The gateway as a GB/T 28181 device, against SIPp playing the police video platform
(tests/sipp/platform.xml): registration with a digest challenge, keepalives, queries, alarm
notifies, live video over UDP and TCP checked with ffprobe, and a platform that is wrong, gone
or hostile. What the platform saw is read from SIPp's own message log."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import xml.etree.ElementTree as ET
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path

import pytest

from testing.services import LOOPBACK, Sipp
from contracts.alarms import AlarmKind
from edge.config import GbConfig
from edge.gb28181.catalog import Channel
from edge.gb28181.device import GbDevice
from edge.gb28181.media import MediaSession
from helpers import until
from wire import rtp

SCENARIO = Path(__file__).parent / "sipp" / "platform.xml"
PLATFORM_ID = "34020000002000000001"
DOMAIN = "3402000000"
DEVICE_ID = "34020000001180000001"
CAMERAS = {"34020000001320000001": ("cam-a", "大班教室"), "34020000001320000002": ("cam-b", "午睡室")}
SSRC = "0100000001"


# --- what the platform saw -------------------------------------------------------------------
def split_message(raw: bytes) -> tuple[str, dict[str, list[str]], bytes]:
    """Start line, headers (lower-case names, compact forms not used by either side here), body."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return lines[0], headers, body


def received_bodies(platform: Sipp, cmd: str, run: int | None = None) -> list[ET.Element]:
    """The MANSCDP bodies of the MESSAGEs the platform received with this CmdType, parsed by the stdlib."""
    out = []
    for direction, raw in platform.messages(run):
        start, headers, body = split_message(raw)
        if direction == "received" and start.startswith("MESSAGE ") and body.strip():
            root = ET.fromstring(body.decode("gb18030"))
            if root.findtext("CmdType") == cmd:
                out.append(root)
    return out


def responses(platform: Sipp, method: str) -> list[str]:
    """Status lines of the device's answers to the platform's requests of `method`."""
    out = []
    for direction, raw in platform.messages():
        start, headers, _ = split_message(raw)
        if direction == "received" and start.startswith("SIP/2.0") and headers["cseq"][0].endswith(method):
            out.append(start)
    return out


# --- set-up ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("cam") / "cam.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25", "-t", "3",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)], check=True, timeout=60)
    return str(path)


def platform_for(tmp_path, *, transport="udp", password="secret", qop="", then="", **keys) -> Sipp:
    return Sipp(SCENARIO, tmp_path / "sipp", transport=transport,
                keys={"realm": DOMAIN, "nonce": "9a3c5e7b1d", "qop": qop, "device_id": DEVICE_ID,
                      "password": password, "expires": "3600", "platform_id": PLATFORM_ID, "then": then,
                      "channel": next(iter(CAMERAS)), "rtp_ip": LOOPBACK, "rtp_port": "9", "rtp_proto": "RTP/AVP",
                      "setup": "", "ssrc": SSRC, **keys},
                variables={"play_ms": "2500"})


def config(platform: Sipp, **over) -> GbConfig:
    base = dict(platform_id=PLATFORM_ID, platform_domain=DOMAIN, platform_host=LOOPBACK, platform_port=platform.port,
                device_id=DEVICE_ID, password="secret", transport=platform.transport, local_ip=LOOPBACK, local_port=0,
                keepalive_s=0.3, response_timeout_s=0.5, register_retry_max_s=2.0)
    return GbConfig(**{**base, **over})


@asynccontextmanager
async def running_device(cfg: GbConfig, source: str = "unused.mp4", states: list | None = None,
                         offline: tuple[str, ...] = ()):
    channels = [Channel(gb, cam, name, source) for gb, (cam, name) in CAMERAS.items()]
    device = GbDevice(cfg, channels, timezone="Asia/Shanghai", address="测试托育园",
                      camera_online=lambda: {cam: cam not in offline for cam, _ in CAMERAS.values()},
                      on_state=lambda up, reason: states.append((up, reason)) if states is not None else None)
    await device.start()
    try:
        yield device
    finally:
        await device.close()


# --- registration, keepalive, alarms ------------------------------------------------------------
@pytest.mark.parametrize("transport,qop", [("udp", ""), ("tcp", ', qop="auth"')])
def test_register_challenged_keepalives_answered_alarm_notified(tmp_path, transport, qop):
    platform = platform_for(tmp_path, transport=transport, qop=qop)

    async def scenario():
        states = []
        with platform:
            async with running_device(config(platform), states=states) as device:
                # An alarm raised before registration is kept and told once registered.
                device.notify_alarm(AlarmKind.PANIC, datetime(2026, 5, 1, 0, 30, 5, tzinfo=timezone.utc), "zone 1 大班")
                assert await until(lambda: device.counters["keepalive_sent"] >= 3 and device.counters["alarm_notified"])
                device.notify_alarm(AlarmKind.RETENTION_BREACH, datetime.now(timezone.utc), "not the police's business")
                device.notify_alarm(AlarmKind.CAMERA_FAULT, datetime(2026, 5, 1, 1, 0, 0, tzinfo=timezone.utc),
                                    "offline", camera_id="cam-b")
                assert await until(lambda: device.counters["alarm_notified"] == 2)
                assert device.counters["keepalive_unanswered"] == 0
        return states

    states = asyncio.run(scenario())
    assert states == [(True, "registered")]
    log = platform.messages()
    (first, _, _), (challenge, _, _) = split_message(log[0][1]), split_message(log[1][1])
    assert first.startswith("REGISTER ") and challenge.startswith("SIP/2.0 401")
    start, headers, _ = split_message(log[2][1])
    assert start.startswith("REGISTER ") and headers["authorization"][0].startswith("Digest ")
    assert f'username="{DEVICE_ID}"' in headers["authorization"][0]
    assert ("qop=auth" in headers["authorization"][0]) == bool(qop)
    assert split_message(log[3][1])[0] == "SIP/2.0 200 OK"
    keepalives = received_bodies(platform, "Keepalive")
    assert len(keepalives) >= 3
    assert all(k.tag == "Notify" and k.findtext("DeviceID") == DEVICE_ID and k.findtext("Status") == "OK"
               for k in keepalives)
    sns = [int(k.findtext("SN")) for k in keepalives]
    assert sns == sorted(sns) and len(set(sns)) == len(sns)
    alarms = received_bodies(platform, "Alarm")
    assert [(a.findtext("DeviceID"), a.findtext("AlarmPriority"), a.findtext("AlarmMethod"), a.findtext("AlarmTime"))
            for a in alarms] == [(DEVICE_ID, "1", "2", "2026-05-01T08:30:05"),
                                 ("34020000001320000002", "3", "2", "2026-05-01T09:00:00")]
    assert alarms[0].findtext("AlarmDescription") == "一键报警 zone 1 大班"
    assert alarms[1].findtext("Info/AlarmType") == "1"


def test_wrong_password_is_retried_with_growing_backoff(tmp_path):
    platform = platform_for(tmp_path, password="the-right-one")

    async def scenario():
        states = []
        with platform:
            async with running_device(config(platform, register_retry_max_s=4.0), states=states) as device:
                assert await until(lambda: device.counters["register_failed"] >= 3, timeout=15)
                return states, device.backoff_s

    states, backoff = asyncio.run(scenario())
    assert states[0] == (False, "platform refused the credentials (403 Forbidden)")
    assert all(up is False for up, _ in states)
    assert backoff == 4.0  # 1, 2, 4 s: doubled after each refusal, up to register_retry_max_s
    registers = [split_message(raw)[0] for d, raw in platform.messages() if d == "received"]
    assert sum(s.startswith("REGISTER ") for s in registers) >= 6  # each try: plain, then with credentials


def test_platform_gone_is_noticed_and_registration_comes_back(tmp_path):
    platform = platform_for(tmp_path)

    async def scenario():
        states = []
        with platform:
            async with running_device(config(platform), states=states) as device:
                assert await until(lambda: device.registered and device.counters["keepalive_sent"] >= 2)
                platform.stop()
                assert await until(lambda: device.registered is False)
                down_reason = device.state_reason
                platform.start()
                assert await until(lambda: device.registered is True)
        return states, down_reason

    states, down_reason = asyncio.run(scenario())
    assert down_reason == "3 keepalives unanswered"
    assert [up for up, _ in states] == [True, False, True]
    second_run = [split_message(raw)[0] for d, raw in platform.messages(run=2) if d == "received"]
    assert second_run[0].startswith("REGISTER ")


def test_device_stops_at_once_even_as_an_answer_arrives(tmp_path):
    # Closing right after registering lands the cancellation as the first keepalive's answer
    # arrives: Python 3.11's wait_for would swallow it there and the device would run on.
    platform = platform_for(tmp_path)

    async def scenario():
        with platform:
            for _ in range(12):
                online = asyncio.Event()
                device = GbDevice(config(platform), [], timezone="Asia/Shanghai",
                                  on_state=lambda up, reason: online.set() if up else None)
                await device.start()
                await asyncio.wait_for(online.wait(), 5)  # its extra task puts close() where the answer lands
                async with asyncio.timeout(5):
                    await device.close()

    asyncio.run(scenario())


# --- queries and live video ------------------------------------------------------------------------
class RtpSink:
    """The platform's media port: collects RTP over UDP, or RFC 4571 over TCP (listening, or
    connecting to the device's port once its SDP answer names it)."""

    def __init__(self, proto: str):
        self.proto = proto
        self.packets: list[rtp.RtpPacket] = []
        self.connected_from: str | None = None

    async def listen(self) -> int:
        loop = asyncio.get_running_loop()
        if self.proto == "udp":
            sink = self

            class Proto(asyncio.DatagramProtocol):
                def datagram_received(self, data, addr):
                    sink.packets.append(rtp.parse_rtp(data))

            self.transport, _ = await loop.create_datagram_endpoint(Proto, local_addr=(LOOPBACK, 0))
            return self.transport.get_extra_info("sockname")[1]
        self.server = await asyncio.start_server(self._serve, LOOPBACK, 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader, writer):
        self.connected_from = writer.get_extra_info("peername")[0]
        await self.read(reader)
        writer.close()

    async def read(self, reader):
        stream = rtp.Rfc4571Stream()
        while data := await reader.read(65536):
            self.packets += [rtp.parse_rtp(p) for p in stream.feed(data)]

    async def connect(self, port: int):
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        try:
            await self.read(reader)
        finally:
            writer.close()

    def close(self):
        if self.proto == "udp":
            self.transport.close()
        elif hasattr(self, "server"):
            self.server.close()


def answer_port(platform: Sipp) -> int | None:
    for direction, raw in platform.messages():
        start, headers, body = split_message(raw)
        if direction == "received" and start == "SIP/2.0 200 OK" and headers["cseq"][0].endswith("INVITE"):
            return int(re.search(rb"m=video (\d+) ", body).group(1))
    return None


@pytest.mark.parametrize("signalling,media,setup", [
    ("udp", "RTP/AVP", ""),
    ("tcp", "TCP/RTP/AVP", "a=setup:passive"),  # the platform listens, the gateway connects
    ("udp", "TCP/RTP/AVP", "a=setup:active"),  # the gateway listens, the platform connects
])
def test_platform_queries_and_plays_a_camera(tmp_path, clip, signalling, media, setup):
    sink = RtpSink("udp" if media == "RTP/AVP" else "tcp")

    async def scenario():
        port = await sink.listen() if setup != "a=setup:active" else 9
        platform = platform_for(tmp_path, transport=signalling, then="play", rtp_port=str(port), rtp_proto=media,
                                setup=setup)
        with platform:
            async with running_device(config(platform), source=clip, offline=("cam-b",)) as device:
                assert await until(lambda: device.dialogs, timeout=20)
                session = next(iter(device.dialogs.values())).session
                if setup == "a=setup:active":
                    assert await until(lambda: answer_port(platform))
                    connecting = asyncio.get_running_loop().create_task(sink.connect(answer_port(platform)))
                assert await until(lambda: not device.dialogs, timeout=20)  # BYE after 2.5 s of video
                if setup == "a=setup:active":
                    await asyncio.wait_for(connecting, 5)
                assert await until(lambda: len(sink.packets) >= session.counters["packets"], timeout=5)
                sent = session.counters["packets"]
                assert device.counters["answered_400"] == 1 and device.registered
        sink.close()
        return platform, sent

    platform, sent = asyncio.run(scenario())
    # Catalog: every camera, with its status, in messages carrying the query's SN and the sum.
    catalogs = received_bodies(platform, "Catalog")
    items = {it.findtext("DeviceID"): (it.findtext("Name"), it.findtext("Status"), it.findtext("ParentID"))
             for c in catalogs for it in c.iter("Item")}
    assert items == {"34020000001320000001": ("大班教室", "ON", DEVICE_ID),
                     "34020000001320000002": ("午睡室", "OFF", DEVICE_ID)}
    assert {(c.findtext("SN"), c.findtext("SumNum")) for c in catalogs} == {("101", "2")}
    (info,) = received_bodies(platform, "DeviceInfo")
    assert (info.findtext("SN"), info.findtext("Channel"), info.findtext("Result")) == ("103", "2", "OK")
    (status,) = received_bodies(platform, "DeviceStatus")
    assert (status.findtext("Online"), status.findtext("Status")) == ("ONLINE", "ERROR")  # cam-b is offline
    # The malformed query was refused, naming why.
    assert any(s.startswith("SIP/2.0 400 Bad MANSCDP (not well-formed XML") for s in responses(platform, "MESSAGE"))
    # The answer: sendonly PS with the platform's SSRC, the other TCP role.
    _, _, answer = next(split_message(raw) for d, raw in platform.messages()
                        if d == "received" and raw.startswith(b"SIP/2.0 200 OK") and b"INVITE" in raw.split(b"\r\n\r\n")[0])
    assert b"a=sendonly" in answer and f"y={SSRC}".encode() in answer and b"a=rtpmap:96 PS/90000" in answer
    if setup:
        assert {"a=setup:passive": b"a=setup:active", "a=setup:active": b"a=setup:passive"}[setup] in answer
    # The video: everything sent arrived, with the SSRC, PT 96 and a marker per frame; it plays.
    packets = sink.packets
    assert len(packets) == sent > 0
    assert {p.ssrc for p in packets} == {int(SSRC)} and {p.payload_type for p in packets} == {96}
    assert [(p.seq - packets[0].seq) & 0xFFFF for p in packets] == list(range(len(packets)))
    path = tmp_path / "received.ps"
    path.write_bytes(b"".join(p.payload for p in packets))
    probe = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_entries",
         "stream=codec_name,width,height,nb_read_frames:format=format_name", "-of", "json", str(path)],
        check=True, capture_output=True, timeout=60).stdout)
    assert probe["format"]["format_name"] == "mpeg"
    (stream,) = probe["streams"]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 640, 360)
    assert int(stream["nb_read_frames"]) == sum(p.marker for p in packets) > 10


def test_only_the_platform_may_take_a_listening_stream(clip):
    async def scenario():
        session = MediaSession(source=clip, dest=(LOOPBACK, 9), mode="tcp-passive", ssrc=7, payload_type=96, fps=25,
                               bind_ip="0.0.0.0", on_end=lambda s, reason: None)
        port = await session.prepare()
        session.start()
        try:
            # 127.0.0.2 is loopback, but not the address the SDP offer named: shut out.
            reader, writer = await asyncio.open_connection(LOOPBACK, port, local_addr=("127.0.0.2", 0))
            async with asyncio.timeout(5):
                shut = await reader.read(100)
            writer.close()
            reader, writer = await asyncio.open_connection(LOOPBACK, port)
            async with asyncio.timeout(10):
                stream = rtp.Rfc4571Stream()
                packets = []
                while not packets:
                    packets = stream.feed(await reader.read(65536))
            writer.close()
        finally:
            await session.stop()
        return shut, rtp.parse_rtp(packets[0]), session.counters["foreign_connection"]

    shut, first, foreign = asyncio.run(scenario())
    assert shut == b"" and foreign == 1
    assert (first.ssrc, first.payload_type) == (7, 96)


# --- limits and hostile input, without SIPp: datagrams crafted here -----------------------------------
def request_datagram(method: str, user: str, call_id: str, port: int, body: bytes = b"",
                     content_type: str = "Application/MANSCDP+xml") -> bytes:
    """A request as the platform would send it, from LOOPBACK:`port`."""
    head = (f"{method} sip:{user}@{DOMAIN} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {LOOPBACK}:{port};branch=z9hG4bK{call_id}\r\n"
            f"From: <sip:{PLATFORM_ID}@{DOMAIN}>;tag=p{call_id}\r\nTo: <sip:{user}@{DOMAIN}>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nContact: <sip:{PLATFORM_ID}@{LOOPBACK}:{port}>\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def invite_datagram(call_id: str, port: int, rtp_port: int, session: str = "Play",
                    channel: str = "34020000001320000001") -> bytes:
    sdp_body = (f"v=0\r\no={PLATFORM_ID} 0 0 IN IP4 {LOOPBACK}\r\ns={session}\r\nc=IN IP4 {LOOPBACK}\r\nt=0 0\r\n"
                f"m=video {rtp_port} RTP/AVP 96\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\ny={SSRC}\r\n").encode()
    return request_datagram("INVITE", channel, call_id, port, sdp_body, "application/sdp")


def query(cmd: str, device_id: str = DEVICE_ID) -> bytes:
    return (f'<?xml version="1.0" encoding="GB2312"?>\r\n<Query><CmdType>{cmd}</CmdType><SN>7</SN>'
            f"<DeviceID>{device_id}</DeviceID></Query>").encode()


class Replies(asyncio.DatagramProtocol):
    def __init__(self):
        self.got: list[bytes] = []

    def datagram_received(self, data, addr):
        self.got.append(data)


def test_source_that_ends_closes_the_call_with_bye(tmp_path):
    platform = platform_for(tmp_path)

    async def scenario():
        with platform:
            # A camera nobody serves: ffmpeg gives up at once, the stream ends, the device hangs up.
            async with running_device(config(platform), source=f"http://{LOOPBACK}:9/none.mjpg") as device:
                assert await until(lambda: device.registered)
                me, peer = await asyncio.get_running_loop().create_datagram_endpoint(Replies, local_addr=(LOOPBACK, 0))
                port = me.get_extra_info("sockname")[1]
                me.sendto(invite_datagram("gone1", port, 9), (LOOPBACK, device.transport.local[1]))
                assert await until(lambda: any(r.startswith(b"SIP/2.0 200") for r in peer.got))
                ok = next(r for r in peer.got if r.startswith(b"SIP/2.0 200"))
                ack = (f"ACK sip:34020000001320000001@{DOMAIN} SIP/2.0\r\n"
                       f"Via: SIP/2.0/UDP {LOOPBACK}:{port};branch=z9hG4bKack1\r\n"
                       f"From: <sip:{PLATFORM_ID}@{DOMAIN}>;tag=pgone1\r\nTo: {split_message(ok)[1]['to'][0]}\r\n"
                       "Call-ID: gone1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
                me.sendto(ack.encode(), (LOOPBACK, device.transport.local[1]))
                assert await until(lambda: any(r.startswith(b"BYE ") for r in peer.got), timeout=15)
                me.close()
                return ok, next(r for r in peer.got if r.startswith(b"BYE ")), dict(device.counters)

    ok, bye, counters = asyncio.run(scenario())
    _, ok_headers, _ = split_message(ok)
    _, bye_headers, _ = split_message(bye)
    assert bye_headers["call-id"] == ["gone1"]
    assert bye_headers["from"] == ok_headers["to"]  # our side of the dialog, with our tag
    assert bye_headers["to"][0].endswith(";tag=pgone1")  # the platform's side, with its tag
    assert counters["streams_ended"] == 1


def test_stream_limit_and_hostile_datagrams(tmp_path):
    platform = platform_for(tmp_path)

    async def scenario():
        with platform:
            async with running_device(config(platform, max_streams=1)) as device:
                assert await until(lambda: device.registered)
                target = (LOOPBACK, device.transport.local[1])
                loop = asyncio.get_running_loop()
                replies: list[bytes] = []

                class Proto(asyncio.DatagramProtocol):
                    def datagram_received(self, data, addr):
                        replies.append(data)

                # From the platform's address (loopback), on a port of our own.
                me, _ = await loop.create_datagram_endpoint(Proto, local_addr=(LOOPBACK, 0))
                port = me.get_extra_info("sockname")[1]
                me.sendto(invite_datagram("call1", port, 9), target)
                assert await until(lambda: any(r.startswith(b"SIP/2.0 200") for r in replies))
                me.sendto(invite_datagram("call1", port, 9), target)  # a retransmission: answered again, not twice
                me.sendto(invite_datagram("call2", port, 9), target)
                assert await until(lambda: any(r.startswith(b"SIP/2.0 486") for r in replies))
                # Not SIP at all: counted, no answer. A bad request: 400 naming why.
                me.sendto(b"\x00\xffGARBAGE" * 50, target)
                bad = invite_datagram("call3", port, 9).replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE")
                me.sendto(bad, target)
                assert await until(lambda: any(r.startswith(b"SIP/2.0 400") for r in replies))
                # Requests the device understands but will not carry out, each refused naming why.
                for datagram in (invite_datagram("call5", port, 9, session="Playback"),
                                 invite_datagram("call6", port, 9, channel="34020000001320000099"),
                                 request_datagram("MESSAGE", DEVICE_ID, "call7", port, query("Catalog"), "text/plain"),
                                 request_datagram("MESSAGE", DEVICE_ID, "call8", port,
                                                  query("Catalog", "34020000001320000099")),
                                 request_datagram("MESSAGE", DEVICE_ID, "call9", port, query("RecordInfo")),
                                 request_datagram("SUBSCRIBE", DEVICE_ID, "call10", port, query("Catalog"))):
                    me.sendto(datagram, target)
                refused = [f"Call-ID: call{i}\r\n".encode() for i in range(5, 11)]
                assert await until(lambda: all(any(c in r for r in replies) for c in refused))
                # A source other than the platform's address (127.0.0.2 is loopback too): silence.
                stranger, _ = await loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.2", 0))
                stranger.sendto(invite_datagram("call4", port, 9), target)
                assert await until(lambda: device.transport.counters["foreign_source"] == 1)
                keepalives = device.counters["keepalive_sent"]
                assert await until(lambda: device.counters["keepalive_sent"] >= keepalives + 2 and device.registered)
                stranger.close()
                me.close()
                return replies, dict(device.transport.counters), len(device.dialogs)

    replies, counters, dialogs = asyncio.run(scenario())
    firsts = [r.split(b"\r\n")[0] for r in replies]
    assert firsts.count(b"SIP/2.0 200 OK") == 2 and dialogs == 1  # the retransmission got the same answer
    assert b"SIP/2.0 486 Busy Here (1 streams already)" in firsts
    assert b"SIP/2.0 400 Bad Request (CSeq: method 'BYE' differs from the request's 'INVITE')" in firsts
    assert counters["bad_sip"] == 2 and counters["retransmission"] >= 1
    assert not any(b"call4" in r for r in replies)
    by_call = {split_message(r)[1]["call-id"][0]: split_message(r)[0] for r in replies}
    assert by_call["call5"] == "SIP/2.0 488 Not Acceptable Here (s=Playback: only live Play is served)"
    assert by_call["call6"] == "SIP/2.0 404 Not Found (no channel 34020000001320000099)"
    assert by_call["call7"] == "SIP/2.0 415 Unsupported Media Type (text/plain, not MANSCDP+xml)"
    assert by_call["call8"] == "SIP/2.0 404 Not Found (DeviceID 34020000001320000099 is not this device)"
    assert by_call["call9"] == "SIP/2.0 501 Not Implemented (RecordInfo)"
    assert by_call["call10"].startswith("SIP/2.0 405 Method Not Allowed")
