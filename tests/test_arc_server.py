"""The ARC receiver: what it answers and what it leaves unanswered, exactly-once storage, garbage,
accounts it refuses to start with, and the `careguard arc` command."""

from __future__ import annotations

import asyncio
import os
import re
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
PLAIN, KEYED = "1234", "ABCD"
ACCOUNTS = {PLAIN: ArcAccount(plaintext=True, facility="F001"), KEYED: ArcAccount(key=KEY.hex(), facility="F002")}


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def event_frame(seq=1, account=PLAIN, key=None, code="PA", zone=2, now=None, alarm_id=None, protocol="SIA-DCS"):
    return dc09.encode_event(dc09.EventData(code=code, zone=zone, alarm_id=alarm_id), protocol=protocol,
                             account=account, seq=seq, now=now or utcnow(), key=key)


def reframe(body: str) -> bytes:
    raw = body.encode("latin-1")
    return b"\n" + f"{dc09.crc16(raw):04X}{len(raw):04X}".encode() + raw + b"\r"


class Peer:
    """A raw TCP sender: writes bytes, reads replies. Opened `authenticated`, it first sends a good
    NULL, so the receiver keeps reading after a bad frame (it hangs up on a connection whose first
    frame fails)."""

    async def open(self, port: int, authenticated: bool = True) -> "Peer":
        self.reader, self.writer = await asyncio.open_connection(LOOPBACK, port)
        if authenticated:
            assert (await self.ask(dc09.encode_null(account=KEYED, seq=9999, now=utcnow(), key=KEY), KEY)).kind == "ACK"
        return self

    async def reply(self, key: bytes | None = None) -> dc09.Response:
        return dc09.decode_response(await asyncio.wait_for(self.reader.readuntil(b"\r"), 5), key=key)

    async def ask(self, frame: bytes, key: bytes | None = None) -> dc09.Response:
        self.writer.write(frame)
        await self.writer.drain()
        return await self.reply(key)

    async def unanswered(self, frame: bytes, probe_seq: int) -> bool:
        """Write `frame`, then a good frame: True when the first reply is the good frame's ACK, i.e.
        `frame` got no reply at all (replies come in order on one connection)."""
        self.writer.write(frame + dc09.encode_null(account=KEYED, seq=probe_seq, now=utcnow(), key=KEY))
        await self.writer.drain()
        reply = await self.reply(KEY)
        return (reply.kind, reply.seq) == ("ACK", probe_seq)

    def close(self) -> None:
        self.writer.close()


async def _started(**kw) -> tuple[ArcReceiver, Peer]:
    receiver = ArcReceiver(ACCOUNTS, **kw)
    await receiver.start()
    return receiver, await Peer().open(receiver.port)


def test_authenticated_frames_are_answered_the_rest_is_not():
    async def scenario():
        receiver, peer = await _started()
        try:
            good = event_frame(account=KEYED, key=KEY)
            assert await peer.unanswered(good[:1] + (b"0000" if good[1:5] != b"0000" else b"1111") + good[5:], 101)
            assert await peer.unanswered(event_frame(account="9999"), 102)
            assert await peer.unanswered(event_frame(account=KEYED), 103)  # key required, sent plain
            assert await peer.unanswered(event_frame(account=KEYED, key=bytes(32)), 104)  # wrong key
            late = await peer.ask(event_frame(account=KEYED, key=KEY, now=utcnow() - timedelta(seconds=120)))
            assert late.kind == "NAK" and abs((late.timestamp - utcnow()).total_seconds()) < 5
            assert (await peer.ask(event_frame(account=KEYED, key=KEY, now=utcnow() + timedelta(seconds=60)))).kind == "NAK"
            # Data the receiver cannot read gets DUH (the key opened it: it is the sender's own fault).
            duh = await peer.ask(reframe(f'"*SIA-DCS"0005L0#{KEYED}['
                                         + dc09._encrypt(KEY, f"#{KEYED}|Nri1/P]{dc09.format_timestamp(utcnow())}")),
                                 key=KEY)
            assert (duh.kind, duh.seq) == ("DUH", 5)
            assert receiver.counters["rejected_crc"] == 1
            assert receiver.counters["rejected_account"] == 1
            assert receiver.counters["rejected_decrypt"] == 2
            assert receiver.counters["rejected_timestamp"] == 2
            assert receiver.counters["rejected_format"] == 1
            assert receiver.store.alarms() == []
        finally:
            peer.close()
            await receiver.close()
    run(scenario())


def test_plain_text_forgery_is_refused():
    """Anyone who reaches the receiver can write a plain frame with a valid CRC: refused for a keyed
    account, and for a plain-text account unless it carries a timestamp within the window."""
    async def scenario():
        receiver, peer = await _started()
        try:
            forged = reframe(f'"SIA-DCS"0007L0#{KEYED}[#{KEYED}|Nri1/PA001]' + dc09.format_timestamp(utcnow()))
            assert await peer.unanswered(forged, 201)
            no_time = reframe(f'"SIA-DCS"0008L0#{PLAIN}[#{PLAIN}|Nri1/PA001]')
            assert dc09.decode_frame(no_time, {PLAIN: None}).timestamp is None  # DC-09 would take it
            assert (await peer.ask(no_time)).kind == "NAK"
            old = reframe(f'"SIA-DCS"0009L0#{PLAIN}[#{PLAIN}|Nri1/PA001]'
                          + dc09.format_timestamp(utcnow() - timedelta(hours=2)))
            assert (await peer.ask(old)).kind == "NAK"
            assert receiver.store.alarms() == []
            assert receiver.counters["rejected_decrypt"] == 1 and receiver.counters["rejected_timestamp"] == 2
        finally:
            peer.close()
            await receiver.close()
    run(scenario())


# Bad frames as an attacker without the key would send them: each gets the same answer whether the
# account exists or not.
BAD_CONTENT = {
    "garbage ciphertext": lambda acct: reframe(f'"*SIA-DCS"0005L0#{acct}[' + "AB" * 48),
    "wrong key": lambda acct: event_frame(account=acct, key=bytes(32)),
    "not hex": lambda acct: reframe(f'"*SIA-DCS"0005L0#{acct}[' + "zz" * 16),
    "plain frame": lambda acct: event_frame(account=acct),
    "plain, bad content": lambda acct: reframe(f'"SIA-DCS"0005L0#{acct}[#{acct}|hello]'
                                               + dc09.format_timestamp(utcnow())),
    "unsupported token": lambda acct: reframe(f'"SIA-XYZ"0005L0#{acct}[#{acct}|Nri1/PA003]'
                                              + dc09.format_timestamp(utcnow())),
}


@pytest.mark.parametrize("bad", list(BAD_CONTENT))
def test_unknown_and_known_accounts_get_the_same_answer(bad):
    async def scenario():
        receiver, peer = await _started()
        try:
            answers = []
            for probe, acct in enumerate(("EEEE", KEYED), start=300):
                # On a connection that had authenticated: no reply, and it stays open.
                answers.append(await peer.unanswered(BAD_CONTENT[bad](acct), probe))
                # As the first frame of a connection: hung up on, without a reply.
                fresh = await Peer().open(receiver.port, authenticated=False)
                fresh.writer.write(BAD_CONTENT[bad](acct))
                answers.append(await asyncio.wait_for(fresh.reader.read(), 5))
                fresh.close()
            return answers
        finally:
            peer.close()
            await receiver.close()
    assert run(scenario()) == [True, b"", True, b""]


def test_accepted_alarm_is_stored_once_and_null_is_acked():
    async def scenario():
        seen = []
        receiver, peer = await _started(on_alarm=seen.append)
        try:
            aid = uuid.uuid4()
            null = await peer.ask(dc09.encode_null(account=KEYED, seq=1, now=utcnow(), key=KEY), key=KEY)
            assert (null.kind, null.seq, null.encrypted) == ("ACK", 1, True) and null.timestamp is not None
            frame = event_frame(seq=7, account=KEYED, key=KEY, alarm_id=aid, zone=9)
            for _ in range(2):  # the same bytes again, as after a lost ACK
                assert (await peer.ask(frame, key=KEY)).kind == "ACK"
            # Re-encoded with a new timestamp (a resend after a NAK) and, after a gateway restart,
            # under another sequence number: still the same alarm.
            assert (await peer.ask(event_frame(seq=7, account=KEYED, key=KEY, alarm_id=aid, zone=9),
                                   key=KEY)).kind == "ACK"
            assert (await peer.ask(event_frame(seq=8, account=KEYED, key=KEY, alarm_id=aid, zone=9),
                                   key=KEY)).kind == "ACK"
            # The restore of that alarm is a new fact.
            assert (await peer.ask(event_frame(seq=9, account=KEYED, key=KEY, alarm_id=aid, code="PR", zone=9),
                                   key=KEY)).kind == "ACK"
            # Without an alarm id, the same number and content is a resend; new content is new.
            for seq, zone in ((10, 3), (10, 3), (11, 3)):
                reply = await peer.ask(event_frame(seq=seq, zone=zone, protocol="ADM-CID", code="1120"))
                assert (reply.kind, reply.encrypted) == ("ACK", False)
            stored = receiver.store.alarms()
            assert [(a.account, a.facility, a.seq, a.code, a.zone, a.alarm_id) for a in stored] == [
                (KEYED, "F002", 7, "PA", 9, aid), (KEYED, "F002", 9, "PR", 9, aid),
                (PLAIN, "F001", 10, "1120", 3, None), (PLAIN, "F001", 11, "1120", 3, None)]
            assert all(a.receiver == receiver.name for a in stored)
            assert seen == stored
            assert receiver.counters["frames_ok"] == 4
            assert receiver.counters["duplicates"] == 4
            assert receiver.counters["null_ok"] == 2  # the peer's opening NULL and the one above
        finally:
            peer.close()
            await receiver.close()
    run(scenario())


def test_codes_outside_careguards_table_reach_the_store():
    """Another maker's panel reports events CareGuard's gateways never send (a hold-up, a medical
    call): the police must see them, so they are ACKed and stored as sent, not answered DUH."""
    async def scenario():
        receiver, peer = await _started()
        try:
            for seq, (protocol, code) in enumerate((("SIA-DCS", "HA"), ("ADM-CID", "1100")), start=20):
                reply = await peer.ask(event_frame(seq=seq, account=KEYED, key=KEY, code=code, protocol=protocol),
                                       key=KEY)
                assert (reply.kind, reply.seq) == ("ACK", seq)
            return [(a.code, a.protocol) for a in receiver.store.alarms()], receiver.counters["unlisted_codes"]
        finally:
            peer.close()
            await receiver.close()
    assert run(scenario()) == ([("HA", "SIA-DCS"), ("1100", "ADM-CID")], 2)


def test_garbage_never_stops_the_receiver():
    async def scenario():
        receiver, peer = await _started()
        try:
            for probe, junk in enumerate((b"\r", b"hello\r", b"\n\r", b"\x00\xff\xfe\x80\r", b"\n0000FFFF\"SIA-DCS\r"),
                                         start=400):
                assert await peer.unanswered(junk, probe)
            assert (await peer.ask(b"noise before the frame" + event_frame(seq=1))).kind == "ACK"
            assert len(receiver.store.alarms()) == 1  # the frame after the line noise
            flood = await Peer().open(receiver.port, authenticated=False)
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
    good.write_text(f'[accounts.1234]\nplaintext = true\nfacility = "F001"\n\n[accounts.abcd]\nkey = "{KEY.hex()}"\n'
                    '\n[limits]\nidle_timeout_s = 30\n')
    conf = load_accounts(good)
    assert conf.accounts["ABCD"].key_bytes == KEY and conf.accounts["1234"].facility == "F001"
    assert conf.limits.idle_timeout_s == 30 and conf.limits.max_per_source == 32
    for text, reason in (('[accounts.12]\nplaintext = true\n', "3-16 hex"), ('[accounts.1234]\nkey = "00ff"\n', "16, 24 or 32"),
                         ("[accounts\n", "TOML"), ('[accounts.1234]\nfacility = "F1"\n', "account 1234 has no key"),
                         (f'[accounts.1234]\nkey = "{KEY.hex()}"\nplaintext = true\n', "remove one"),
                         ('[accounts.1234]\nplaintext = true\n[limits]\nidle_timeout_s = 0\n', "idle_timeout_s")):
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(AccountsError, match=reason):
            load_accounts(bad)
    with pytest.raises(AccountsError, match="no such file"):
        load_accounts(tmp_path / "missing.toml")
    with pytest.raises(AccountsError, match="account 5678 has no key"):
        ArcReceiver({"5678": ArcAccount(facility="F3")})


def _careguard_arc(accounts: Path, port: int, db: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen([sys.executable, "-m", "careguard", "arc", "--listen", f"{LOOPBACK}:{port}",
                             "--accounts", str(accounts), "--db", str(db)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_careguard_arc_refuses_to_start_with_a_keyless_account(tmp_path):
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(f'[accounts.1234]\nkey = "{KEY.hex()}"\n\n[accounts.5678]\nfacility = "F002"\n')
    proc = _careguard_arc(accounts, free_port(), tmp_path / "arc.sqlite3")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert re.search(r"account 5678 has no key.*plaintext = true", out)


def test_careguard_arc_command(tmp_path):
    accounts = tmp_path / "accounts.toml"
    accounts.write_text('[accounts.1234]\nplaintext = true\nfacility = "F001"\n')
    port = free_port()
    db = tmp_path / "arc" / "arc.sqlite3"
    proc = _careguard_arc(accounts, port, db)
    try:
        wait_for_port(port, proc=proc)

        async def send():
            peer = await Peer().open(port, authenticated=False)
            try:
                return (await peer.ask(event_frame(seq=3))).kind
            finally:
                peer.close()
        assert run(send()) == "ACK"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    assert "account 1234 is plaintext" in out
    store = ArcStore(db)
    assert [(a.facility, a.seq, a.code) for a in store.alarms()] == [("F001", 3, "PA")]
    store.close()


def test_deploy_example_accounts_file_has_keys():
    conf = load_accounts(Path(__file__).resolve().parents[1] / "deploy" / "arc-accounts.example.toml")
    assert conf.accounts and all(a.key_bytes and not a.plaintext for a in conf.accounts.values())
