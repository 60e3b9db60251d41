"""PoliceLink under faults: dead primary, skewed receiver clock, lost replies, silent peers, supervision."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from testing.services import LOOPBACK, free_port
from arc.receiver import ArcAccount, ArcReceiver
from contracts.alarms import AlarmKind
from contracts.timefmt import utcnow
from edge.config import PoliceConfig
from edge.police.dc09_link import PoliceEvent, PoliceLink

ACCOUNT = "1234"
KEY = bytes(range(16)).hex()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def police(ports: list[int], **kw) -> PoliceConfig:
    return PoliceConfig(account=ACCOUNT, key=KEY, receivers=[{"host": LOOPBACK, "port": p} for p in ports],
                        **{"ack_timeout_s": 0.5, "connect_timeout_s": 0.5, "retry_backoff_max_s": 0.2, **kw})


def panic(zone: int = 1) -> PoliceEvent:
    return PoliceEvent(alarm_id=uuid.uuid4(), kind=AlarmKind.PANIC, restore=False, zone=zone, ts=utcnow())


async def arc(**kw) -> ArcReceiver:
    receiver = ArcReceiver({ACCOUNT: ArcAccount(key=KEY, facility="F001")}, **kw)
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


def test_nak_with_skewed_receiver_clock_is_corrected():
    async def scenario():
        receiver = await arc(clock_skew_s=3600)
        link = PoliceLink(police([receiver.port]))
        try:
            event = panic()
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


def test_default_supervision_detects_failure_within_20_s():
    # One interval plus the reply timeout (or the connect timeout): the DESIGN.md bound, by configuration.
    cfg = PoliceConfig(account=ACCOUNT, receivers=[{"host": LOOPBACK, "port": 1}])
    assert cfg.supervision_interval_s + max(cfg.ack_timeout_s, cfg.connect_timeout_s) + cfg.ack_timeout_s < 20
    assert timedelta(seconds=cfg.supervision_interval_s) == timedelta(seconds=10)
