"""The ARC receiver under attack: idle connections and floods of bad max-size frames while a real
gateway's link sends an alarm, connection caps, and hypothesis feeding random and mutated bytes to
a live `careguard arc` process."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from testing.services import LOOPBACK, free_port, wait_for_port
from arc.receiver import ArcAccount, ArcLimits, ArcReceiver
from contracts.alarms import AlarmKind
from contracts.timefmt import utcnow
from edge.config import PoliceConfig
from edge.police.dc09_link import PoliceEvent, PoliceLink
from helpers import until
from wire import dc09

ACCOUNT, PLAIN = "1234", "5678"
KEY = bytes(range(16))
ACCOUNTS = {ACCOUNT: ArcAccount(key=KEY.hex(), facility="F001"), PLAIN: ArcAccount(plaintext=True, facility="F002")}
MAX_BODY = 0xFFF


def run(coro, timeout: float = 60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def bad_frames() -> list[bytes]:
    """Max-size frames an attacker who knows an account number (it travels in clear) can send: a bad
    CRC (costs the receiver a CRC), and a good CRC over garbage ciphertext (costs it an AES pass)."""
    head = f'"*SIA-DCS"0001L0#{ACCOUNT}['
    cipher = (head + "AB" * ((MAX_BODY - len(head)) // 2)).encode()
    good_crc = b"\n" + b"%04X%04X" % (dc09.crc16(cipher), len(cipher)) + cipher + b"\r"
    bad_crc = good_crc[:1] + b"%04X" % (dc09.crc16(cipher) ^ 1) + good_crc[5:]
    return [bad_crc, good_crc]


async def flood(port: int, source: str, frames: list[bytes], stop: asyncio.Event, max_frames: int = 20_000) -> int:
    """Write bad frames until told to stop, the receiver hangs up, or `max_frames`; returns frames written."""
    _, writer = await asyncio.open_connection(LOOPBACK, port, local_addr=(source, 0))
    sent = 0
    try:
        while not stop.is_set() and sent < max_frames:
            writer.write(frames[sent % len(frames)])
            await writer.drain()
            sent += 1
    except ConnectionError:
        pass
    finally:
        writer.close()
    return sent


async def hung_up(reader: asyncio.StreamReader) -> bool:
    try:
        return await reader.read(1) == b""
    except ConnectionError:
        return True


def test_idle_connections_and_floods_do_not_starve_a_real_gateway():
    limits = ArcLimits(idle_timeout_s=1.5, max_connections=60, max_per_source=20)

    async def scenario():
        receiver = ArcReceiver(ACCOUNTS, limits=limits)
        await receiver.start()
        idle = []
        for i in range(80):  # more than the cap, from four addresses
            idle.append(await asyncio.open_connection(LOOPBACK, receiver.port, local_addr=(f"127.0.0.{2 + i // 20}", 0)))
        stop = asyncio.Event()
        flooders = [asyncio.create_task(flood(receiver.port, "127.0.0.9", bad_frames(), stop)) for _ in range(4)]
        link = PoliceLink(PoliceConfig(account=ACCOUNT, key=KEY.hex(), ack_timeout_s=5,
                                       receivers=[{"host": LOOPBACK, "port": receiver.port}]))
        try:
            await asyncio.sleep(0.2)  # the flood is on
            event = PoliceEvent(alarm_id=uuid.uuid4(), kind=AlarmKind.PANIC, restore=False, zone=3, ts=utcnow())
            delivery = await link.send(event)
            assert delivery.receiver == receiver.name
            assert [a.alarm_id for a in receiver.store.alarms()] == [event.alarm_id]
            # Every idle connection is hung up on: evicted for room, or closed on its idle timeout.
            assert all(await asyncio.gather(*(hung_up(r) for r, _ in idle)))
            stop.set()
            sent = await asyncio.gather(*flooders)
            assert receiver.counters["evicted"] + receiver.counters["idle_closed"] >= len(idle)
            assert receiver.counters["idle_closed"] >= 1
            rejected = receiver.counters["rejected_crc"] + receiver.counters["rejected_decrypt"]
            assert rejected >= 1 and rejected <= sum(sent)
            assert await until(lambda: receiver.open_connections <= 1, 10)  # only the gateway's link, if any
        finally:
            stop.set()
            await link.close()
            for _, w in idle:
                w.close()
            await receiver.close()
    run(scenario())


def test_per_source_cap():
    async def scenario():
        receiver = ArcReceiver(ACCOUNTS, limits=ArcLimits(max_per_source=20))
        await receiver.start()
        conns = [await asyncio.open_connection(LOOPBACK, receiver.port, local_addr=("127.0.0.7", 0)) for _ in range(25)]
        try:
            closed = await asyncio.gather(*(asyncio.wait_for(hung_up(r), 0.5) for r, _ in conns[20:]))
            assert all(closed)
            assert receiver.counters["rejected_per_source_cap"] == 5
            # Another address still gets in and is served.
            reader, writer = await asyncio.open_connection(LOOPBACK, receiver.port, local_addr=("127.0.0.8", 0))
            writer.write(dc09.encode_null(account=ACCOUNT, seq=1, now=utcnow(), key=KEY))
            reply = dc09.decode_response(await asyncio.wait_for(reader.readuntil(b"\r"), 5), key=KEY)
            assert reply.kind == "ACK"
            writer.close()
        finally:
            for _, w in conns:
                w.close()
            await receiver.close()
    run(scenario())


def test_a_sender_that_never_reads_its_replies_is_not_read_either():
    """Anyone can send valid frames for a plaintext account and never read the ACKs: once the
    replies back up, the receiver stops reading that connection instead of buffering replies."""
    frame = dc09.encode_null(account=PLAIN, seq=1, now=utcnow())
    burst = frame * 50_000  # about 4 MB of frames, 2 MB of replies

    async def scenario():
        receiver = ArcReceiver(ACCOUNTS)
        await receiver.start()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # replies back up early
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_connect(sock, (LOOPBACK, receiver.port))
            sent, stalled = 0, 0
            while sent < len(burst) and stalled < 40:  # until the kernel takes no more for 2 s, or all is sent
                try:
                    sent += sock.send(burst[sent:sent + 65536])
                    stalled = 0
                except BlockingIOError:
                    stalled += 1
                    await asyncio.sleep(0.05)
            answered = -1
            for _ in range(40):  # until the receiver has answered all it is going to
                if receiver.counters["null_ok"] == answered:
                    break
                answered = receiver.counters["null_ok"]
                await asyncio.sleep(0.5)
            return sent // len(frame), answered
        finally:
            sock.close()
            await receiver.close()

    sent, answered = run(scenario())
    assert answered < sent


# --- a live `careguard arc` fed by hypothesis ------------------------------------------------------
def _valid_frames() -> list[bytes]:
    now = utcnow()
    ev = dc09.EventData(code="PA", zone=4, alarm_id=uuid.UUID(int=7))
    return [dc09.encode_event(ev, protocol="SIA-DCS", account=ACCOUNT, seq=11, now=now, key=KEY),
            dc09.encode_event(ev, protocol="SIA-DCS", account=PLAIN, seq=12, now=now),
            dc09.encode_event(dc09.EventData(code="1120", zone=3), protocol="ADM-CID", account=PLAIN, seq=13, now=now),
            dc09.encode_null(account=ACCOUNT, seq=14, now=now, key=KEY),
            dc09.encode_null(account=PLAIN, seq=15, now=now - timedelta(hours=1))]


@st.composite
def mutated(draw) -> bytes:
    frame = bytearray(draw(st.sampled_from(_VALID)))
    for _ in range(draw(st.integers(1, 6))):
        op, pos = draw(st.sampled_from(["flip", "insert", "delete"])), draw(st.integers(0, len(frame) - 1))
        if op == "flip":
            frame[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            frame[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif len(frame) > 2:
            del frame[pos]
    return bytes(frame)


_VALID = _valid_frames()
# One frame per example: no CR inside, one at the end, shorter than the receiver's read limit.
FUZZ = st.one_of(st.binary(max_size=4100), mutated(), st.sampled_from(_VALID)).map(
    lambda b: b.replace(b"\r", b"")[:4100] + b"\r")


class LiveArc:
    """`careguard arc` in its own process, one connection to it, and a NULL probe after each input
    (the probe's ACK comes after the input's reply, if any: replies keep their order)."""

    def __init__(self, tmp: Path):
        accounts = tmp / "accounts.toml"
        accounts.write_text(f'[accounts.{ACCOUNT}]\nkey = "{KEY.hex()}"\n[accounts.{PLAIN}]\nplaintext = true\n'
                            '[limits]\nidle_timeout_s = 600\n')
        self.port = free_port()
        self.log = tmp / "arc.log"
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        self.proc = subprocess.Popen([sys.executable, "-m", "careguard", "arc", "--listen", f"{LOOPBACK}:{self.port}",
                                      "--accounts", str(accounts), "--db", ":memory:"], env=env,
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        wait_for_port(self.port, proc=self.proc)
        self.sock = socket.create_connection((LOOPBACK, self.port), timeout=10)
        self.buf = b""
        self.frames = 0
        self.seq = 0

    def rss_kb(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))

    def send(self, frame: bytes) -> int:
        """Write `frame` and a probe; the replies read until the probe's ACK (0 or 1 before it)."""
        self.seq = self.seq % 9999 + 1
        self.sock.sendall(frame + dc09.encode_null(account=ACCOUNT, seq=self.seq, now=utcnow(), key=KEY))
        self.frames += 2
        replies = 0
        while True:
            while b"\r" not in self.buf:
                chunk = self.sock.recv(65536)
                assert chunk, "the receiver hung up"
                self.buf += chunk
            raw, self.buf = self.buf.split(b"\r", 1)
            reply = dc09.decode_response(raw + b"\r", key=KEY)
            if reply.kind == "ACK" and reply.seq == self.seq and reply.encrypted:
                return replies
            replies += 1

    def stop(self) -> dict[str, int]:
        self.sock.close()
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(15) == 0
        line = re.search(r"ARC counters: (\{.*\})", self.log.read_text()).group(1)
        return {k: int(v) for k, v in re.findall(r"'(\w+)': (\d+)", line)}


def test_fuzzed_bytes_into_a_live_receiver(tmp_path):
    arc = LiveArc(tmp_path)
    replies = []
    try:
        for frame in _VALID[:2] * 50:  # warm up, so the memory figure below is about the fuzz
            arc.send(frame)
        rss_before = arc.rss_kb()

        @settings(max_examples=400, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(FUZZ)
        def feed(frame):
            replies.append(arc.send(frame))

        feed()
        rss_after = arc.rss_kb()
    finally:
        counters = arc.stop() if arc.proc.poll() is None else {}
    assert arc.proc.returncode == 0
    assert max(replies) <= 1  # never more than one reply to one frame
    # Every frame is accounted for: accepted (NULL, stored, or a resend) or counted as a reject.
    handled = sum(v for k, v in counters.items() if k.startswith("rejected_")) + counters.get("null_ok", 0) \
        + counters.get("frames_ok", 0) + counters.get("duplicates", 0)
    assert handled == arc.frames, counters
    assert counters.get("rejected_crc", 0) + counters.get("rejected_framing", 0) >= 1
    assert rss_after - rss_before < 20_000, (rss_before, rss_after)  # kB: bounded, not growing per frame
