"""PoliceLink under faults and attacks: dead primary, skewed receiver clock, lost replies, silent peers,
supervision, and an on-path box that forges the receiver's replies."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from datetime import timedelta

import pytest

from testing.services import LOOPBACK, free_port
from arc.receiver import ArcAccount, ArcReceiver
from contracts.alarms import AlarmKind
from contracts.timefmt import utcnow
from edge.config import PoliceConfig
from edge.police.dc09_link import PoliceEvent, PoliceLink
from wire import dc09

ACCOUNT = "1234"
PLAIN_ACCOUNT = "5678"
KEY = bytes(range(16)).hex()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def police(ports: list[int], **kw) -> PoliceConfig:
    return PoliceConfig(account=ACCOUNT, key=KEY, receivers=[{"host": LOOPBACK, "port": p} for p in ports],
                        **{"ack_timeout_s": 0.5, "connect_timeout_s": 0.5, "retry_backoff_max_s": 0.2, **kw})


def panic(zone: int = 1) -> PoliceEvent:
    return PoliceEvent(alarm_id=uuid.uuid4(), kind=AlarmKind.PANIC, restore=False, zone=zone, ts=utcnow())


async def arc(**kw) -> ArcReceiver:
    receiver = ArcReceiver({ACCOUNT: ArcAccount(key=KEY, facility="F001"), PLAIN_ACCOUNT: ArcAccount(plaintext=True)},
                           **kw)
    await receiver.start()
    return receiver


class PathLog:
    """Collects on_path_change calls and lets a test wait for a given state."""

    def __init__(self):
        self.calls: list[tuple[str, bool, str]] = []
        self._changed = asyncio.Event()

    def __call__(self, name: str, up: bool, reason: str) -> None:
        self.calls.append((name, up, reason))
        self._changed.set()

    async def wait_for(self, name: str, up: bool) -> str:
        while True:
            for n, u, reason in reversed(self.calls):
                if n == name:
                    if u is up:
                        return reason
                    break
            self._changed.clear()
            await asyncio.wait_for(self._changed.wait(), 10)


def test_primary_down_backup_gets_it():
    async def scenario():
        backup = await arc()
        dead = free_port()
        paths = PathLog()
        link = PoliceLink(police([dead, backup.port]), on_path_change=paths)
        try:
            event = panic(zone=4)
            delivery = await link.send(event)
            assert delivery.receiver == backup.name
            stored = backup.store.alarms()
            assert [(a.code, a.zone, a.alarm_id, a.facility) for a in stored] == [("PA", 4, event.alarm_id, "F001")]
            assert link.path_states() == {f"{LOOPBACK}:{dead}": False, backup.name: True}
            assert "connect" in await paths.wait_for(f"{LOOPBACK}:{dead}", False)
        finally:
            await link.close()
            await backup.close()
    run(scenario())


def test_nak_with_skewed_receiver_clock_is_corrected(caplog):
    async def scenario():
        receiver = await arc(clock_skew_s=3000)
        link = PoliceLink(police([receiver.port]))
        try:
            event = panic()
            with caplog.at_level(logging.WARNING, logger="edge.police.dc09_link"):
                delivery = await link.send(event)
            assert delivery.attempts == 2  # NAKed once, then accepted with the receiver's time
            assert receiver.counters["rejected_timestamp"] == 1
            assert receiver.counters["frames_ok"] == 1
            assert link.counters["nak"] == 1
            (alarm,) = receiver.store.alarms()
            # The time of origin travels apart from the frame's (corrected) timestamp.
            assert alarm.event_time == event.ts.replace(microsecond=0)
            await link.send(panic())  # the offset is kept: no NAK the second time
            assert receiver.counters["rejected_timestamp"] == 1
        finally:
            await link.close()
            await receiver.close()
    run(scenario())
    (line,) = [r.getMessage() for r in caplog.records if "clock offset" in r.getMessage()]
    assert re.search(r"offset \+0\.0 s -> \+(2999|3000)\.\d s", line)


def test_lost_reply_is_retried_and_stored_once():
    async def scenario():
        receiver = await arc(drop_replies=1)
        link = PoliceLink(police([receiver.port], ack_timeout_s=0.3))
        try:
            delivery = await link.send(panic())
            assert delivery.attempts == 2
            assert receiver.counters["replies_dropped"] == 1
            assert link.counters["timeout"] == 1 and link.counters["acked"] == 1
            assert receiver.counters["duplicates"] == 1
            assert len(receiver.store.alarms()) == 1
            assert receiver.store.alarms()[0].seq == delivery.seq  # the resend kept its number
        finally:
            await link.close()
            await receiver.close()
    run(scenario())


def test_silent_and_garbage_peers_fail_over():
    async def scenario():
        async def silent(reader, writer):
            await reader.read()  # never answers
            writer.close()

        async def garbage(reader, writer):
            await reader.readuntil(b"\r")
            writer.write(b"\nnot a reply\r")
            await writer.drain()
            await reader.read()
            writer.close()

        peers = [await asyncio.start_server(h, LOOPBACK, 0) for h in (silent, garbage)]
        backup = await arc()
        ports = [p.sockets[0].getsockname()[1] for p in peers] + [backup.port]
        paths = PathLog()
        link = PoliceLink(police(ports, ack_timeout_s=0.3), on_path_change=paths)
        try:
            delivery = await link.send(panic())
            assert delivery.receiver == backup.name
            assert "no reply" in await paths.wait_for(f"{LOOPBACK}:{ports[0]}", False)
            assert "bad reply" in await paths.wait_for(f"{LOOPBACK}:{ports[1]}", False)
            assert (link.counters["timeout"], link.counters["bad_reply"]) == (1, 1)
        finally:
            await link.close()
            await backup.close()
            for p in peers:
                p.close()
    run(scenario())


def test_send_keeps_trying_until_cancelled():
    async def scenario():
        ports = [free_port(), free_port()]
        paths = PathLog()
        link = PoliceLink(police(ports), on_path_change=paths)
        task = asyncio.create_task(link.send(panic()))
        for p in ports:
            await paths.wait_for(f"{LOOPBACK}:{p}", False)
        assert not task.done()
        receiver = await arc(port=ports[1])  # the backup comes up: the pending alarm goes through
        try:
            delivery = await asyncio.wait_for(task, 10)
            assert delivery.receiver == receiver.name and delivery.attempts >= 1
            stuck = asyncio.create_task(PoliceLink(police([free_port()])).send(panic()))
            await asyncio.sleep(0)
            stuck.cancel()
            try:
                await stuck
            except asyncio.CancelledError:
                pass
            assert stuck.cancelled()
        finally:
            await link.close()
            await receiver.close()
    run(scenario())


def test_null_supervision_reports_down_and_up_and_reuses_the_connection():
    async def scenario():
        receiver = await arc()
        port = receiver.port
        name = receiver.name
        paths = PathLog()
        link = PoliceLink(police([port], supervision_interval_s=0.2, ack_timeout_s=0.3), on_path_change=paths)
        await link.start()
        try:
            await paths.wait_for(name, True)
            for zone in (1, 2, 3):
                await link.send(panic(zone))
            assert receiver.counters["connections"] == 1  # NULLs and events share one connection
            assert receiver.counters["null_ok"] >= 1
            await receiver.close()
            await paths.wait_for(name, False)
            assert link.path_states() == {name: False}
            receiver = await arc(port=port)
            await paths.wait_for(name, True)
            assert link.path_states() == {name: True}
        finally:
            await link.close()
            await receiver.close()
    run(scenario())


class OnPathBox:
    """A TCP proxy in front of a receiver, as an attacker on the path would run it: it swallows the
    gateway's frames (the receiver never gets them) and answers each with a reply of its own making."""

    def __init__(self, forge):
        self.forge = forge  # (frame the gateway sent) -> reply bytes
        self.swallowed: list[bytes] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, LOOPBACK, 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader, writer):
        try:
            while True:
                frame = await reader.readuntil(b"\r")
                self.swallowed.append(frame)
                writer.write(self.forge(frame))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def close(self) -> None:
        self.server.close()


def with_seq(reply: bytes, frame: bytes) -> bytes:
    """`reply` with its clear-text sequence number edited to the frame's and its (unkeyed) CRC recomputed."""
    seq = dc09.read_header(frame)[0].seq
    body = re.sub(rb'^("\*?ACK")\d{4}', lambda m: m.group(1) + b"%04d" % seq, reply[9:-1])
    return b"\n" + b"%04X%04X" % (dc09.crc16(body), len(body)) + body + b"\r"


async def captured_ack(receiver: ArcReceiver, age_s: float) -> bytes:
    """An encrypted ACK the attacker recorded `age_s` ago from the real receiver (a link test's): the
    receiver's clock is set back by that much while it answers."""
    receiver.clock_skew = timedelta(seconds=-age_s)
    reader, writer = await asyncio.open_connection(LOOPBACK, receiver.port)
    writer.write(dc09.encode_null(account=ACCOUNT, seq=1, now=receiver.now(), key=bytes.fromhex(KEY)))
    reply = await asyncio.wait_for(reader.readuntil(b"\r"), 5)
    writer.close()
    receiver.clock_skew = timedelta(0)
    return reply


FORGERIES = {
    # The attack of issue 18: an 8 s old encrypted ACK, sequence edited, CRC recomputed.
    "replayed ACK, sequence edited": lambda ack: lambda frame: with_seq(ack, frame),
    "plain ACK on an encrypted path": lambda ack: lambda frame: dc09.encode_ack(
        dc09.read_header(frame)[0]._replace(encrypted=False), now=utcnow()),
    "ACK for another sequence": lambda ack: lambda frame: dc09.encode_ack(
        dc09.read_header(frame)[0]._replace(seq=9999), now=utcnow(), key=bytes.fromhex(KEY)),
    "NAK two hours off": lambda ack: lambda frame: dc09.encode_nak(now=utcnow() + timedelta(hours=2)),
}


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_forged_replies_are_refused_and_the_alarm_goes_to_the_backup(forgery):
    async def scenario():
        primary, backup = await arc(), await arc()
        box = OnPathBox(FORGERIES[forgery](await captured_ack(primary, age_s=8)))
        box_port = await box.start()
        refused: list[tuple[str, str]] = []
        paths = PathLog()
        link = PoliceLink(police([box_port, backup.port]), on_path_change=paths,
                          on_security=lambda name, reason: refused.append((name, reason)))
        try:
            event = panic(zone=5)
            delivery = await link.send(event)
            assert delivery.receiver == backup.name  # never "delivered" by the forged reply
            assert [(a.zone, a.alarm_id) for a in backup.store.alarms()] == [(5, event.alarm_id)]
            assert primary.store.alarms() == [] and box.swallowed
            assert link.counters["reply_refused"] >= 1
            assert refused and refused[0][0] == f"{LOOPBACK}:{box_port}"
            assert await paths.wait_for(f"{LOOPBACK}:{box_port}", False) == refused[0][1]  # police_link_down
            return refused[0][1]
        finally:
            await link.close()
            box.close()
            await primary.close()
            await backup.close()
    reason = run(scenario())
    expected = {"replayed ACK, sequence edited": "older than the frame", "plain ACK on an encrypted path": "plain ACK",
                "ACK for another sequence": "sequence 9999", "NAK two hours off": "max_clock_offset_s"}[forgery]
    assert expected in reason


def test_a_fresh_ack_within_the_tolerance_is_taken():
    """The honest case next to the replay: the real receiver's ACK, a second behind the frame's
    time (its clock a little slow), is within the resolution and tolerance."""
    async def scenario():
        receiver = await arc(clock_skew_s=-1.5)
        link = PoliceLink(police([receiver.port]))
        try:
            delivery = await link.send(panic())
            assert delivery.receiver == receiver.name and link.counters["reply_refused"] == 0
        finally:
            await link.close()
            await receiver.close()
    run(scenario())


def test_a_plain_path_takes_a_plain_ack():
    async def scenario():
        receiver = await arc()
        cfg = PoliceConfig(account=PLAIN_ACCOUNT, receivers=[{"host": LOOPBACK, "port": receiver.port}])
        link = PoliceLink(cfg)
        try:
            assert (await link.send(panic())).receiver == receiver.name
        finally:
            await link.close()
            await receiver.close()
    run(scenario())
