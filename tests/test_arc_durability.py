"""The ARC's ACK means the alarm is durably stored: never an ACK before the commit, alarms of a burst
stored once each (in shared commits), and no ACK when the commit fails."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from testing.services import LOOPBACK, free_port, wait_for_port
from arc.receiver import ArcAccount, ArcLimits, ArcReceiver
from arc.store import ArcAlarm, ArcStore
from contracts.timefmt import utcnow
from wire import dc09

ACCOUNT = "ABCD"
KEY = bytes(range(16))


def alarm_frame(alarm_id: uuid.UUID, seq: int = 1) -> bytes:
    return dc09.encode_event(dc09.EventData(code="PA", zone=1, alarm_id=alarm_id), protocol="SIA-DCS",
                             account=ACCOUNT, seq=seq, now=utcnow(), key=KEY)


def read_reply(sock: socket.socket) -> dc09.Response:
    buf = b""
    while not buf.endswith(b"\r"):
        chunk = sock.recv(4096)
        assert chunk, "the receiver hung up"
        buf += chunk
    return dc09.decode_response(buf, key=KEY)


def test_no_ack_before_the_alarm_is_durable_and_acked_alarms_survive_kill_9(tmp_path):
    """While another process holds the database's write lock, alarms are not ACKed; once it lets go,
    they are, and the receiver killed with SIGKILL right after the last ACK has every one on disk."""
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(f'[accounts.{ACCOUNT}]\nkey = "{KEY.hex()}"\n')
    db = tmp_path / "arc.sqlite3"
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "careguard", "arc", "--listen", f"{LOOPBACK}:{port}",
                             "--accounts", str(accounts), "--db", str(db)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    socks: list[socket.socket] = []
    try:
        wait_for_port(port, proc=proc)
        ids = [uuid.uuid4() for _ in range(20)]
        socks = [socket.create_connection((LOOPBACK, port), timeout=10) for _ in ids]
        lock = sqlite3.connect(db, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # the receiver's commit now waits (its busy timeout is 5 s)
        for sock, alarm_id in zip(socks, ids):
            sock.sendall(alarm_frame(alarm_id))
        for sock in socks:
            sock.settimeout(1.0 / len(socks))
            try:
                early = sock.recv(4096)
            except TimeoutError:
                early = b""
            assert early == b"", "ACKed while the alarm could not be written"
        lock.execute("ROLLBACK")
        lock.close()
        for sock in socks:
            sock.settimeout(10)
            reply = read_reply(sock)
            assert (reply.kind, reply.encrypted) == ("ACK", True)
        proc.kill()  # SIGKILL: no clean shutdown, nothing flushed on the way out
        proc.wait(10)
    finally:
        for sock in socks:
            sock.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    store = ArcStore(db)
    try:
        assert sorted(str(a.alarm_id) for a in store.alarms()) == sorted(map(str, ids))
    finally:
        store.close()


def test_a_burst_is_stored_once_per_alarm_in_shared_commits(tmp_path):
    """Each alarm sent at the same moment on two connections (a resend racing the original): every
    frame is ACKed, every alarm stored once, and the burst takes fewer commits than alarms."""
    n = 20

    async def scenario():
        seen = []
        store = ArcStore(tmp_path / "arc.sqlite3")
        receiver = ArcReceiver({ACCOUNT: ArcAccount(key=KEY.hex())}, store=store, on_alarm=seen.append,
                               limits=ArcLimits(max_per_source=2 * n))
        await receiver.start()
        peers = [await asyncio.open_connection(LOOPBACK, receiver.port) for _ in range(2 * n)]
        ids = [uuid.uuid4() for _ in range(n)]
        try:
            for i, (_, writer) in enumerate(peers):
                writer.write(alarm_frame(ids[i // 2], seq=i // 2 + 1))
            replies = await asyncio.gather(*(asyncio.wait_for(r.readuntil(b"\r"), 10) for r, _ in peers))
            assert [dc09.decode_response(raw, key=KEY).kind for raw in replies] == ["ACK"] * (2 * n)
        finally:
            for _, writer in peers:
                writer.close()
            await receiver.close()
        stored = store.alarms()
        store.close()
        return receiver.counters, stored, seen, ids

    counters, stored, seen, ids = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert sorted(str(a.alarm_id) for a in stored) == sorted(map(str, ids))
    assert seen == stored
    assert counters["frames_ok"] == n and counters["duplicates"] == n
    assert 1 <= counters["commits"] < n
    assert "slowest_commit_ms" in counters  # the disk's worst commit, beside the latency figures


def test_an_alarm_not_stored_is_not_acked():
    async def scenario():
        store = ArcStore()
        receiver = ArcReceiver({ACCOUNT: ArcAccount(key=KEY.hex())}, store=store)
        await receiver.start()
        reader, writer = await asyncio.open_connection(LOOPBACK, receiver.port)
        try:
            null = dc09.encode_null(account=ACCOUNT, seq=1, now=utcnow(), key=KEY)
            writer.write(null)
            assert dc09.decode_response(await asyncio.wait_for(reader.readuntil(b"\r"), 5), key=KEY).kind == "ACK"
            store.close()  # every write now fails
            # The alarm gets no reply: the next reply on this connection is the NULL's after it.
            writer.write(alarm_frame(uuid.uuid4(), seq=2) + dc09.encode_null(account=ACCOUNT, seq=3, now=utcnow(),
                                                                             key=KEY))
            reply = dc09.decode_response(await asyncio.wait_for(reader.readuntil(b"\r"), 5), key=KEY)
            assert (reply.kind, reply.seq) == ("ACK", 3)
            return receiver.counters
        finally:
            writer.close()
            await receiver.close()

    counters = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert counters["store_error"] == 1 and counters["frames_ok"] == 0


def test_a_staged_batch_is_invisible_until_committed_and_gone_when_rolled_back(tmp_path):
    store = ArcStore(tmp_path / "arc.sqlite3")
    alarm = ArcAlarm(account=ACCOUNT, facility=None, seq=1, protocol="SIA-DCS", code="PA", zone=1, area=1,
                     alarm_id=uuid.uuid4(), event_time=utcnow(), received_at=utcnow(), receiver="test", content="x")
    assert store.stage([alarm]) == [True]
    seen: list = []
    reader = threading.Thread(target=lambda: seen.append(store.alarms()))
    reader.start()
    reader.join(0.3)
    assert reader.is_alive(), "a reader saw the store while a batch was staged but not durable"
    store.rollback()
    reader.join(10)
    assert seen == [[]]
    # The same alarm staged again and committed is stored; a resend of it in the next batch is not.
    assert store.record_many([alarm]) == [True]
    assert store.record_many([alarm]) == [False]
    assert [a.alarm_id for a in store.alarms()] == [alarm.alarm_id]
    store.close()


def test_a_store_file_from_before_the_unique_index_is_upgraded_and_keeps_resends_out(tmp_path):
    """An ARC file written by the receiver before its alarms were kept once by a unique index: opened
    by today's store, the alarms it holds still count when their resends arrive."""
    db = tmp_path / "arc.sqlite3"
    aid = uuid.uuid4()
    old = sqlite3.connect(db)
    old.executescript("""
        CREATE TABLE arc_alarms (id INTEGER PRIMARY KEY, account TEXT NOT NULL, facility TEXT, seq INTEGER NOT NULL,
            protocol TEXT NOT NULL, code TEXT NOT NULL, zone INTEGER NOT NULL, area INTEGER NOT NULL, alarm_id TEXT,
            event_time TEXT NOT NULL, received_at TEXT NOT NULL, receiver TEXT NOT NULL, content TEXT NOT NULL);
        CREATE INDEX arc_alarms_by_alarm ON arc_alarms (account, alarm_id, code);
        CREATE INDEX arc_alarms_by_seq ON arc_alarms (account, seq, content);""")
    now = utcnow().isoformat()
    old.executemany("INSERT INTO arc_alarms (account, seq, protocol, code, zone, area, alarm_id, event_time,"
                    " received_at, receiver, content) VALUES (?, ?, 'SIA-DCS', ?, 1, 1, ?, ?, ?, 'old', ?)",
                    [(ACCOUNT, 1, "PA", str(aid), now, now, "a"), (ACCOUNT, 2, "PA", None, now, now, "b")])
    old.commit()
    old.close()

    store = ArcStore(db)

    def alarm(seq: int, alarm_id, content: str, code: str = "PA") -> ArcAlarm:
        return ArcAlarm(account=ACCOUNT, facility=None, seq=seq, protocol="SIA-DCS", code=code, zone=1, area=1,
                        alarm_id=alarm_id, event_time=utcnow(), received_at=utcnow(), receiver="new", content=content)
    # Resends of both stored alarms (the first under a new sequence number), then two new facts.
    assert store.record_many([alarm(9, aid, "a2"), alarm(2, None, "b"), alarm(3, aid, "a3", code="PR"),
                              alarm(2, None, "c")]) == [False, False, True, True]
    indexes = {name for (name,) in store._db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert indexes == {"arc_alarms_once", "arc_alarms_unidentified"}
    store.close()
