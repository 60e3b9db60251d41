"""The ARC receiver: answers to bad frames, exactly-once storage, garbage, and the `careguard arc` command."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from testing.services import LOOPBACK, free_port, wait_for_port
from arc.receiver import AccountsError, ArcAccount, ArcReceiver, load_accounts
from arc.store import ArcStore
from contracts.timefmt import utcnow
from wire import dc09

KEY = bytes(range(32))
ACCOUNTS = {"1234": ArcAccount(facility="F001"), "ABCD": ArcAccount(key=KEY.hex(), facility="F002")}


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def event_frame(seq=1, account="1234", key=None, code="PA", zone=2, now=None, alarm_id=None, protocol="SIA-DCS"):
    return dc09.encode_event(dc09.EventData(code=code, zone=zone, alarm_id=alarm_id), protocol=protocol,
                             account=account, seq=seq, now=now or utcnow(), key=key)


class Peer:
    """A raw TCP sender: writes bytes, reads one reply."""

    async def open(self, port: int) -> "Peer":
        self.reader, self.writer = await asyncio.open_connection(LOOPBACK, port)
        return self

    async def ask(self, frame: bytes, key: bytes | None = None) -> dc09.Response:
        self.writer.write(frame)
        await self.writer.drain()
        return dc09.decode_response(await asyncio.wait_for(self.reader.readuntil(b"\r"), 5), key=key)

    def close(self) -> None:
        self.writer.close()


async def _started(**kw) -> tuple[ArcReceiver, Peer]:
    receiver = ArcReceiver(ACCOUNTS, **kw)
    await receiver.start()
    return receiver, await Peer().open(receiver.port)


def test_rejections_are_answered_and_counted():
    async def scenario():
        receiver, peer = await _started()
        try:
            good = event_frame()
            bad_crc = good[:1] + (b"0000" if good[1:5] != b"0000" else b"1111") + good[5:]
            r = await peer.ask(bad_crc)
            assert r.kind == "NAK" and abs((r.timestamp - utcnow()).total_seconds()) < 5
            assert (await peer.ask(event_frame(account="9999"))).kind == "NAK"
            late = await peer.ask(event_frame(now=utcnow() - timedelta(seconds=120)))
            assert late.kind == "NAK" and late.timestamp is not None
            assert (await peer.ask(event_frame(now=utcnow() + timedelta(seconds=60)))).kind == "NAK"
            assert (await peer.ask(event_frame(code="ZZ"))).kind == "DUH"
            assert (await peer.ask(event_frame(account="ABCD"))).kind == "NAK"  # key required, sent plain
            assert (await peer.ask(event_frame(account="ABCD", key=bytes(32)))).kind == "NAK"  # wrong key
            assert receiver.counters["rejected_crc"] == 1
            assert receiver.counters["rejected_account"] == 1
            assert receiver.counters["rejected_timestamp"] == 2
            assert receiver.counters["rejected_code"] == 1
            assert receiver.counters["rejected_decrypt"] == 2
            assert receiver.store.alarms() == []
        finally:
            peer.close()
            await receiver.close()
    run(scenario())


def test_accepted_alarm_is_stored_once_and_null_is_acked():
    async def scenario():
        seen = []
        receiver, peer = await _started(on_alarm=seen.append)
        try:
            aid = uuid.uuid4()
            null = await peer.ask(dc09.encode_null(account="ABCD", seq=1, now=utcnow(), key=KEY), key=KEY)
            assert (null.kind, null.seq) == ("ACK", 1) and null.timestamp is not None  # encrypted ACK
            frame = event_frame(seq=7, account="ABCD", key=KEY, alarm_id=aid, zone=9)
            for _ in range(2):  # the same bytes again, as after a lost ACK
                assert (await peer.ask(frame, key=KEY)).kind == "ACK"
            # Re-encoded with a new timestamp (a resend after a NAK) and, after a gateway restart,
            # under another sequence number: still the same alarm.
            assert (await peer.ask(event_frame(seq=7, account="ABCD", key=KEY, alarm_id=aid, zone=9),
                                   key=KEY)).kind == "ACK"
            assert (await peer.ask(event_frame(seq=8, account="ABCD", key=KEY, alarm_id=aid, zone=9),
                                   key=KEY)).kind == "ACK"
            # The restore of that alarm is a new fact.
            assert (await peer.ask(event_frame(seq=9, account="ABCD", key=KEY, alarm_id=aid, code="PR", zone=9),
                                   key=KEY)).kind == "ACK"
            # Without an alarm id, the same number and content is a resend; new content is new.
            for seq, zone in ((10, 3), (10, 3), (11, 3)):
                assert (await peer.ask(event_frame(seq=seq, zone=zone, protocol="ADM-CID", code="1120"))).kind == "ACK"
            stored = receiver.store.alarms()
            assert [(a.account, a.facility, a.seq, a.code, a.zone, a.alarm_id) for a in stored] == [
                ("ABCD", "F002", 7, "PA", 9, aid), ("ABCD", "F002", 9, "PR", 9, aid),
                ("1234", "F001", 10, "1120", 3, None), ("1234", "F001", 11, "1120", 3, None)]
            assert all(a.receiver == receiver.name for a in stored)
            assert seen == stored
            assert receiver.counters["frames_ok"] == 4
            assert receiver.counters["duplicates"] == 4
            assert receiver.counters["null_ok"] == 1
        finally:
            peer.close()
            await receiver.close()
    run(scenario())


def test_garbage_never_stops_the_receiver():
    async def scenario():
        receiver, peer = await _started()
        try:
            for junk in (b"\r", b"hello\r", b"\n\r", b"\x00\xff\xfe\x80\r", b"\n0000FFFF\"SIA-DCS\r",
                         b"noise before the frame" + event_frame(seq=1)):
                assert (await peer.ask(junk)).kind in ("NAK", "ACK")
            assert len(receiver.store.alarms()) == 1  # the frame after the line noise
            flood = await Peer().open(receiver.port)
            flood.writer.write(b"x" * 10_000)  # no CR: the connection is dropped, not the receiver
            await flood.writer.drain()
            assert await asyncio.wait_for(flood.reader.read(), 5) == b""
            flood.close()
            assert receiver.counters["rejected_oversize"] == 1
            other = await Peer().open(receiver.port)
            assert (await other.ask(event_frame(seq=2))).kind == "ACK"
            other.close()
            assert receiver.counters["rejected_framing"] >= 3
        finally:
            peer.close()
            await receiver.close()
    run(scenario())


def test_store_survives_reopen(tmp_path):
    db = tmp_path / "arc.sqlite3"

    async def once(seq):
        receiver, peer = await _started(store=ArcStore(db))
        try:
            return (await peer.ask(event_frame(seq=seq))).kind
        finally:
            peer.close()
            await receiver.close()
            receiver.store.close()

    assert run(once(5)) == "ACK"
    assert run(once(5)) == "ACK"  # the ARC restarted between the frame and its resend
    store = ArcStore(db)
    assert [a.seq for a in store.alarms()] == [5]
    store.close()


def test_accounts_file(tmp_path):
    good = tmp_path / "accounts.toml"
    good.write_text(f'[accounts.1234]\nfacility = "F001"\n\n[accounts.abcd]\nkey = "{KEY.hex()}"\n')
    accounts = load_accounts(good)
    assert accounts["ABCD"].key_bytes == KEY and accounts["1234"].facility == "F001"
    for text, reason in (('[accounts.12]\n', "3-16 hex"), ('[accounts.1234]\nkey = "00ff"\n', "16, 24 or 32"),
                         ("[accounts\n", "TOML")):
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(AccountsError, match=reason):
            load_accounts(bad)
    with pytest.raises(AccountsError, match="no such file"):
        load_accounts(tmp_path / "missing.toml")


def test_careguard_arc_command(tmp_path):
    accounts = tmp_path / "accounts.toml"
    accounts.write_text('[accounts.1234]\nfacility = "F001"\n')
    port = free_port()
    db = tmp_path / "arc" / "arc.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "careguard", "arc", "--listen", f"{LOOPBACK}:{port}",
                             "--accounts", str(accounts), "--db", str(db)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc=proc)

        async def send():
            peer = await Peer().open(port)
            try:
                return (await peer.ask(event_frame(seq=3))).kind
            finally:
                peer.close()
        assert run(send()) == "ACK"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    store = ArcStore(db)
    assert [(a.facility, a.seq, a.code) for a in store.alarms()] == [("F001", 3, "PA")]
    store.close()
