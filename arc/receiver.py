"""The police alarm centre's DC-09 receiver (ARC): `careguard arc --listen HOST:PORT --accounts FILE [--db PATH]`.

It refuses what it cannot authenticate and answers nobody it has not authenticated:
- every account has an AES key, or says `plaintext = true` (then it is reported as such at start,
  and its frames still need a timestamp within the window); an account with neither stops the
  start with a message naming it;
- checks run cheapest first: length and header, account, CRC (compiled), AES, content, timestamp
  window (-40/+20 s, wire.dc09); bad framing, length or CRC, an unsupported token, an unknown
  account, a wrong key and undecryptable content all get the same answer: none (no oracle for
  which accounts exist); an authenticated frame gets ACK, NAK (timestamp) or DUH (data it cannot
  read); a well-formed event code outside CareGuard's table is stored and ACKed like any other;
- resource limits (the file's [limits]): a connection that delivers no accepted frame within
  `idle_timeout_s` is closed; so is one whose first frame fails authentication, or that sends
  `max_bad_frames` failing frames in a row after that (over TCP a sender's frames do not arrive
  damaged: failing frames are a bug or an attack, and reading more of them only costs CPU); at
  most `max_connections` at once (a new one evicts the oldest that never authenticated) and
  `max_per_source` per source address; reject log lines are rate-limited, every reject counted.
Each account is supervised: one that sends no authenticated frame (NULL or event) for
`account_silence_s` (or its own `silence_s`) gets a communications failure recorded in the store
(SIA YC, once per silence) and a restoral (YK) when heard again, so a path cut or an on-path box
dropping frames shows at the police even when the gateway was made to believe it delivered.
Each alarm is stored once (arc.store) and ACKed only once durably stored: alarms are committed in
groups (arc.group_commit), so a burst shares fsyncs while a lone alarm is written at once. Each
connection is an asyncio protocol (no task or stream objects per connection; one idle timer, re-armed
only when it fires): an attacker's connection costs little, an idle one nothing per loop pass.
A bad frame never stops the receiver.

Accounts file (TOML):
    [accounts.1234]
    key = "000102...0F"   # AES key in hex (16, 24 or 32 bytes)
    facility = "F001"
    silence_s = 120       # optional: this account's own silence limit

    [accounts.5678]
    plaintext = true      # no key: anyone who reaches the receiver can forge this account's alarms
    facility = "F002"

    [limits]              # optional, defaults shown by `ArcLimits`
    idle_timeout_s = 60
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import socket
import tomllib
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Mapping, Optional

import uvloop
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from arc.group_commit import GroupCommit
from arc.store import ArcAlarm, ArcStore
from contracts.dc09_codes import (CID_CODES, MANUAL_TEST_CID, MANUAL_TEST_SIA, PERIODIC_TEST_CID, PERIODIC_TEST_SIA,
                                  SIA_CODES)
from contracts.errors import describe_validation_error
from contracts.reject_log import RejectLog
from contracts.timefmt import utcnow
from wire import dc09

log = logging.getLogger(__name__)

# What the receiver records of an account's path: SIA "communications fail" and "restoral".
PATH_FAILURE_SIA = "YC"
PATH_RESTORE_SIA = "YK"
KNOWN_CODES = frozenset(SIA_CODES.values()) | frozenset(CID_CODES.values()) | {
    PERIODIC_TEST_SIA, PERIODIC_TEST_CID, MANUAL_TEST_SIA, MANUAL_TEST_CID}
MAX_FRAME_BYTES = 4200
SEND_BUFFER = 16384
_UNKNOWN = object()  # an account not in the file (None is a plaintext account's key)


class ArcAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: Optional[dc09.AesKeyHex] = Field(default=None, description="AES key in hex (16, 24 or 32 bytes)")
    plaintext: bool = Field(default=False, description="no key, on purpose: frames in clear text (forgeable)")
    facility: Optional[str] = Field(default=None, max_length=32)
    silence_s: Optional[float] = Field(default=None, gt=0, le=90_000,
                                       description="this account's own silence limit (else [limits] account_silence_s)")

    @property
    def key_bytes(self) -> Optional[bytes]:
        return bytes.fromhex(self.key) if self.key else None


class ArcLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    idle_timeout_s: float = Field(default=60.0, gt=0, le=3600,
                                  description="close a connection with no accepted frame for this long: 3 x the longest "
                                              "NULL supervision interval expected (gateways send one every 10-20 s)")
    max_connections: int = Field(default=2048, ge=1, le=100_000,
                                 description="open connections at most; a new one evicts the oldest never authenticated")
    max_per_source: int = Field(default=32, ge=1, le=100_000, description="open connections per source address at most")
    max_bad_frames: int = Field(default=8, ge=1, le=10_000,
                                description="frames failing authentication in a row that close a connection which had "
                                            "authenticated before; one that never did is closed at its first")
    log_interval_s: float = Field(default=10.0, gt=0, description="at most one reject log line per kind this often")
    account_silence_s: float = Field(default=60.0, gt=0, le=90_000,
                                     description="an account with no authenticated frame for this long has lost its "
                                                 "path: the receiver records a communications failure (SIA YC) until "
                                                 "it is heard again (YK); 3 x the longest NULL interval expected")


class ArcAccountsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accounts: dict[str, ArcAccount]
    limits: ArcLimits = Field(default_factory=ArcLimits)

    @field_validator("accounts")
    @classmethod
    def _ids(cls, v: dict[str, ArcAccount]) -> dict[str, ArcAccount]:
        out = {}
        for acct, conf in v.items():
            if not (3 <= len(acct) <= 16 and all(c in "0123456789abcdefABCDEF" for c in acct)):
                raise ValueError(f"account {acct!r} must be 3-16 hex digits")
            out[acct.upper()] = conf
        return out


class AccountsError(Exception):
    pass


def check_accounts(accounts: Mapping[str, ArcAccount]) -> None:
    """Refuse an account without a key unless it says plaintext = true (and one that says both)."""
    for acct, conf in accounts.items():
        if conf.key is None and not conf.plaintext:
            raise AccountsError(f"account {acct} has no key: give it key = \"<AES key in hex>\", or plaintext = true "
                                "to accept forgeable clear-text frames")
        if conf.key is not None and conf.plaintext:
            raise AccountsError(f"account {acct} has a key and plaintext = true: remove one")


def load_accounts(path: str | Path) -> ArcAccountsFile:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
        parsed = ArcAccountsFile.model_validate(data)
    except FileNotFoundError:
        raise AccountsError(f"{p}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise AccountsError(f"{p}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        raise AccountsError(f"{p}: {describe_validation_error(exc)}") from None
    try:
        check_accounts(parsed.accounts)
    except AccountsError as exc:
        raise AccountsError(f"{p}: {exc}") from None
    return parsed


class _Reject(Exception):
    """A frame refused: `reply` is what to answer (None: nothing)."""

    def __init__(self, kind: str, reason: object, reply: Optional[bytes]):
        super().__init__(reason)
        self.kind = kind
        self.reply = reply


class _Connection(asyncio.Protocol):
    """One sender's connection, driven by the loop's callbacks: no task, no stream objects, one timer.

    Frames are handled in order; while one waits for its alarm to be committed, the next wait in
    the buffer (reading pauses once a whole frame's worth is buffered), so replies keep the order of
    the frames. The idle timer is armed once and re-armed only when it fires before the deadline,
    which accepted frames move on: an idle connection costs the loop nothing until then."""

    def __init__(self, rx: "ArcReceiver"):
        self.rx = rx
        self.loop = rx.loop
        self.transport: Optional[asyncio.Transport] = None
        self.source = "?"
        self.authenticated = False  # has sent a frame the receiver accepted
        self.closed = False
        self._bad_in_a_row = 0
        self._deadline = 0.0
        self._buf = bytearray()
        self._committing = False
        self._write_paused = False
        self._read_paused = False
        self._timer: Optional[asyncio.TimerHandle] = None

    # --- transport callbacks ------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # A TCP server's transport (uvloop's is not an asyncio.Transport subclass, but has its methods).
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.source = str(peer[0]) if peer else "?"
        if not self.rx._admit(self):
            self.closed = True
            transport.abort()
            return
        self.rx.counters["connections"] += 1
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Replies are about 100 bytes, one per frame: a fixed small kernel buffer (not autotuned
            # up to megabytes) bounds what a peer that does not read can make the host hold.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        self._deadline = self.loop.time() + self.rx.limits.idle_timeout_s
        self._timer = self.loop.call_at(self._deadline, self._idle_check)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        self._handle_frames()

    def pause_writing(self) -> None:
        # A sender that does not read its replies gets no more frames read.
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        self.rx._forget(self)
        if exc is not None:
            self.rx.counters["connection_errors"] += 1

    # --- frames -------------------------------------------------------------------------
    def _handle_frames(self) -> None:
        buf = self._buf
        while not self._committing and not self.closed:
            end = buf.find(b"\r", 0, MAX_FRAME_BYTES)
            if end < 0:
                if len(buf) >= MAX_FRAME_BYTES:
                    self.rx._reject("oversize", f"no CR within {MAX_FRAME_BYTES} bytes, dropping the connection",
                                    self.source)
                    self.close()
                return
            chunk = bytes(buf[:end + 1])
            del buf[:end + 1]
            # Bytes before the last LF are line noise, not part of this frame.
            lf = chunk.rfind(b"\n")
            self.rx._on_frame(self, chunk[lf:] if lf > 0 else chunk)
        self._update_reading()

    def accepted(self, reply: Optional[bytes]) -> None:
        """The frame authenticated (ACK, NAK or DUH, or no reply when not stored or dropped)."""
        self.authenticated = True
        self._bad_in_a_row = 0
        self._deadline = self.loop.time() + self.rx.limits.idle_timeout_s
        if reply is not None and not self.closed:
            self.transport.write(reply)

    def refused(self) -> None:
        """The frame failed authentication: no reply; a connection that never authenticated, or
        that sends max_bad_frames of these in a row, is closed."""
        self._bad_in_a_row += 1
        if not self.authenticated or self._bad_in_a_row >= self.rx.limits.max_bad_frames:
            self.rx.counters["closed_bad_frames"] += 1
            self.close()

    def wait_for_commit(self) -> None:
        self._committing = True

    def committed(self, reply: Optional[bytes]) -> None:
        self._committing = False
        self.accepted(reply)
        self._handle_frames()

    # --- state --------------------------------------------------------------------------
    def _update_reading(self) -> None:
        if self.closed:
            return
        pause = self._write_paused or (self._committing and len(self._buf) >= MAX_FRAME_BYTES)
        if pause != self._read_paused:
            self._read_paused = pause
            (self.transport.pause_reading if pause else self.transport.resume_reading)()

    def _idle_check(self) -> None:
        if self.closed:
            return
        if self.loop.time() < self._deadline:
            self._timer = self.loop.call_at(self._deadline, self._idle_check)
            return
        self.rx.counters["idle_closed"] += 1
        self.close()

    def close(self) -> None:
        self.closed = True
        self.transport.close()

    def abort(self) -> None:
        self.closed = True
        self.transport.abort()


class ArcReceiver:
    """An asyncio DC-09 TCP receiver.

    Fault injection for tests: `clock_skew_s` runs the receiver's clock ahead (NAKs follow from the
    window check); `drop_replies` processes (and stores) that many frames without answering them."""

    def __init__(self, accounts: Mapping[str, ArcAccount], *, host: str = "127.0.0.1", port: int = 0,
                 limits: ArcLimits | None = None, store: Optional[ArcStore] = None,
                 on_alarm: Optional[Callable[[ArcAlarm], None]] = None, clock_skew_s: float = 0.0,
                 drop_replies: int = 0):
        self.accounts = {a.upper(): conf for a, conf in accounts.items()}
        check_accounts(self.accounts)
        self._keys = {a: conf.key_bytes for a, conf in self.accounts.items()}
        self.limits = limits or ArcLimits()
        self.host = host
        self.port = port
        self.store = store if store is not None else ArcStore()
        self.on_alarm = on_alarm
        self.clock_skew = timedelta(seconds=clock_skew_s)
        self.drop_replies = drop_replies
        self.counters: Counter[str] = Counter()
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._log_reject = RejectLog(log, "ARC rejected %s from %s: %s", self.limits.log_interval_s)
        self._commits = GroupCommit(self.store, self.counters)
        self._server: Optional[asyncio.Server] = None
        # Insertion order is opening order: the first unauthenticated one is the oldest.
        self._conns: dict[_Connection, None] = {}
        self._per_source: Counter[str] = Counter()
        # Account -> loop time of its last authenticated frame (start-up counts as heard: a path
        # has one silence limit from the receiver's start to show itself).
        self._heard: dict[str, float] = {}
        self._silent: set[str] = set()
        self._supervision: Optional[asyncio.TimerHandle] = None

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    def now(self) -> datetime:
        return utcnow() + self.clock_skew

    async def start(self) -> None:
        for acct, conf in self.accounts.items():
            if conf.plaintext:
                log.warning("ARC account %s is plaintext: its frames are not authenticated and can be forged", acct)
        self.loop = asyncio.get_running_loop()
        self._server = await self.loop.create_server(lambda: _Connection(self), self.host, self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        started = self.loop.time()
        self._heard = {acct: started for acct in self.accounts}
        self._supervise()
        log.info("ARC receiver listening on %s", self.name)

    async def close(self) -> None:
        """Stop listening, drop every connection, and wait until the alarms accepted are written."""
        if self._supervision is not None:
            self._supervision.cancel()
            self._supervision = None
        if self._server is not None:
            self._server.close()
            for conn in list(self._conns):
                conn.abort()
            await self._server.wait_closed()
            self._server = None
            await self._commits.close()

    # --- connections --------------------------------------------------------------------
    def _admit(self, conn: _Connection) -> bool:
        """Room for a new connection under the caps, evicting the oldest unauthenticated one if need be."""
        if self._per_source[conn.source] >= self.limits.max_per_source:
            self._reject("per_source_cap", f"{self.limits.max_per_source} connections already open", conn.source)
            return False
        if len(self._conns) >= self.limits.max_connections:
            oldest = next((c for c in self._conns if not c.authenticated), None)
            if oldest is None:
                self._reject("connection_cap", f"{self.limits.max_connections} connections open, all authenticated",
                             conn.source)
                return False
            self._forget(oldest)
            oldest.abort()
            self.counters["evicted"] += 1
        self._conns[conn] = None
        self._per_source[conn.source] += 1
        return True

    def _forget(self, conn: _Connection) -> None:
        if conn in self._conns:
            del self._conns[conn]
            self._per_source[conn.source] -= 1
            if self._per_source[conn.source] <= 0:
                del self._per_source[conn.source]

    def _reject(self, kind: str, reason: object, peer: str) -> None:
        self.counters[f"rejected_{kind}"] += 1
        self._log_reject(kind, kind, peer, reason)

    # --- frames -------------------------------------------------------------------------
    def _on_frame(self, conn: _Connection, frame: bytes) -> None:
        """Only an authenticated frame is ever answered, so a reject with a reply is one the
        account's key (or plaintext) let in. An alarm is answered once it is durably stored."""
        now = self.now()
        try:
            decoded = self._authenticate(frame)
            self._path_heard(decoded.header.account)
            self._check_content(decoded, now)
        except _Reject as rej:
            self._reject(rej.kind, rej, conn.source)
            if rej.reply is None:
                conn.refused()
            else:
                conn.accepted(rej.reply)
            return
        if decoded.event is None:
            self.counters["null_ok"] += 1
            conn.accepted(self._ack(decoded.header, now))
            return
        alarm = self._alarm(decoded, now)
        conn.wait_for_commit()
        self._commits.submit(alarm, lambda stored: self._stored(conn, decoded.header, now, alarm, stored))

    def _stored(self, conn: _Connection, header: dc09.Header, now: datetime, alarm: ArcAlarm,
                stored: Optional[bool]) -> None:
        if stored is None:
            self.counters["store_error"] += 1  # not stored means not ACKed: the sender will resend
            conn.committed(None)
            return
        if stored:
            self.counters["frames_ok"] += 1
            self._notify(alarm)
        else:
            self.counters["duplicates"] += 1
        conn.committed(self._ack(header, now))

    def _ack(self, header: dc09.Header, now: datetime) -> Optional[bytes]:
        if self.drop_replies > 0:
            self.drop_replies -= 1
            self.counters["replies_dropped"] += 1
            return None
        return dc09.encode_ack(header, now=now, key=self._keys[header.account])

    # --- account supervision ------------------------------------------------------------
    # An on-path box that drops a gateway's frames can make the gateway believe it is delivered
    # (see docs/security.md on NAKs) but cannot make the receiver hear it: the receiver knows every
    # account it serves and records, for the dispatcher, each one that falls silent.
    def _silence_limit(self, account: str) -> float:
        return self.accounts[account].silence_s or self.limits.account_silence_s

    def _supervise(self) -> None:
        self.check_silence(self.loop.time())
        shortest = min((self._silence_limit(a) for a in self.accounts), default=self.limits.account_silence_s)
        self._supervision = self.loop.call_later(min(max(shortest / 4, 0.05), 5.0), self._supervise)

    def check_silence(self, now: float) -> list[str]:
        """Record a communications failure for each account silent past its limit (once per silence);
        returns those newly silent. `now` is loop time."""
        newly = [acct for acct, heard in self._heard.items()
                 if acct not in self._silent and now - heard >= self._silence_limit(acct)]
        for acct in newly:
            self._silent.add(acct)
            silent_s = now - self._heard[acct]
            self.counters["path_failures"] += 1
            log.warning("ARC account %s (facility %s): no authenticated frame for %.0f s, path failure recorded",
                        acct, self.accounts[acct].facility, silent_s)
            self._record_path_event(acct, restore=False, detail=f"no authenticated frame for {silent_s:.0f} s")
        return newly

    def _path_heard(self, account: str) -> None:
        self._heard[account] = self.loop.time()
        if account in self._silent:
            self._silent.discard(account)
            self.counters["path_restorals"] += 1
            log.info("ARC account %s (facility %s): heard again, path restored", account,
                     self.accounts[account].facility)
            self._record_path_event(account, restore=True, detail="heard again")

    def _record_path_event(self, account: str, *, restore: bool, detail: str) -> None:
        now = self.now()
        event = ArcAlarm(account=account, facility=self.accounts[account].facility, seq=0, protocol="ARC",
                         code=PATH_RESTORE_SIA if restore else PATH_FAILURE_SIA, zone=0, area=0, alarm_id=None,
                         event_time=now, received_at=now, receiver=self.name,
                         content=f"{detail} at {now.isoformat()}")

        def done(stored: Optional[bool]) -> None:
            if stored is None:
                self.counters["store_error"] += 1
            else:
                self._notify(event)
        self._commits.submit(event, done)

    def _notify(self, alarm: ArcAlarm) -> None:
        """Hand a newly stored alarm or path event to `on_alarm`; its failure never stops the receiver."""
        if self.on_alarm is not None:
            try:
                self.on_alarm(alarm)
            except Exception:
                log.exception("on_alarm callback failed")

    def _authenticate(self, frame: bytes) -> dc09.Frame:
        """Cheapest checks first; until the account's key opened the frame, a reject gets no reply."""
        try:
            header, rest = dc09.read_header(frame)
            key = self._keys.get(header.account, _UNKNOWN)
            if key is _UNKNOWN:
                raise dc09.DC09Error("account", f"unknown account {header.account}", header)
            dc09.check_crc(frame)
            try:
                return dc09.open_frame(header, rest, key)
            except dc09.DC09Error as exc:
                if exc.kind == "decrypt":
                    raise
                raise _Reject(exc.kind, exc, dc09.encode_duh(header)) from None
        except dc09.DC09Error as exc:
            raise _Reject(exc.kind, exc, None) from None

    def _check_content(self, frame: dc09.Frame, now: datetime) -> None:
        try:
            dc09.check_timestamp(frame, now)
        except dc09.DC09Error as exc:
            raise _Reject(exc.kind, exc, dc09.encode_nak(now=now)) from None
        if frame.event is not None and frame.event.code not in KNOWN_CODES:
            # A well-formed code outside CareGuard's table (another maker's panel: hold-up, medical,
            # trouble...) is still an event the police must see: stored and ACKed as sent, counted.
            self.counters["unlisted_codes"] += 1

    def _alarm(self, frame: dc09.Frame, now: datetime) -> ArcAlarm:
        ev, header = frame.event, frame.header
        assert ev is not None
        return ArcAlarm(account=header.account, facility=self.accounts[header.account].facility, seq=header.seq,
                        protocol=header.token, code=ev.code, zone=ev.zone, area=ev.area, alarm_id=ev.alarm_id,
                        event_time=ev.occurred_at or frame.timestamp or now, received_at=now, receiver=self.name,
                        content=frame.data)


# ------------------------------------------------------------------ command line
def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host or "0.0.0.0", int(port)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", type=_host_port, default=("127.0.0.1", 9000), help="HOST:PORT to listen on")
    parser.add_argument("--accounts", required=True, help="TOML file of accounts ([accounts.<id>] key or plaintext, facility) and [limits]")
    parser.add_argument("--db", default="var/arc/arc.sqlite3", help="SQLite file for received alarms")


# Container allocations between cyclic collections of the youngest generation. A burst of frames
# allocates tens of objects per frame: at the default 700, a city-wide burst of 1,000 alarms ran
# dozens of collections, several reaching the older generations (every connection and account),
# which cost the receiver more CPU than decoding the alarms. The receiver makes few reference
# cycles, so collecting less often holds little garbage for longer.
GC_GEN0_THRESHOLD = 20_000


def _tune_gc() -> None:
    """What start-up built (modules, accounts, the listening server) lives as long as the process:
    freeze it out of every later collection, and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


async def _run(receiver: ArcReceiver) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await receiver.start()
    _tune_gc()
    print(f"ARC receiver listening on {receiver.name}", flush=True)
    try:
        await stop.wait()
    finally:
        await receiver.close()
        log.info("ARC counters: %s", dict(receiver.counters))


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        conf = load_accounts(args.accounts)
    except AccountsError as exc:
        print(f"careguard arc: {exc}")
        return 2
    if args.db != ":memory:":
        Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    store = ArcStore(args.db)
    host, port = args.listen
    try:
        # libuv's loop: the same protocol callbacks with less CPU per read and write than asyncio's
        # selector loop, which matters when a city's gateways report at once.
        uvloop.run(_run(ArcReceiver(conf.accounts, host=host, port=port, limits=conf.limits, store=store)))
    finally:
        store.close()
    return 0
