"""The DC-09 sender: persistent TCP paths to the police receivers (ARC), around the sans-IO codec.

- One frame per write, then wait for the reply (cfg.ack_timeout_s); frames on one connection are
  serialised by a lock, so a reply always belongs to the frame before it.
- A resend keeps its sequence number. A NAK carries the receiver's time: the path's clock offset is
  corrected (within cfg.max_clock_offset_s, every change logged) and the frame re-encoded with the
  corrected timestamp.
- Every reply is checked before it counts (wire.dc09.check_ack): sequence and account must match,
  and on an encrypted path only an encrypted ACK whose timestamp is not older than the frame
  proves delivery; a replayed ACK, a plain ACK or an out-of-bounds NAK is refused and reported to
  `on_security`.
- No reply or a bad or refused reply counts as a timeout: the connection is dropped (a late ACK
  must not be taken for the next frame's) and the next receiver is tried, primary first, round
  after round with bounded backoff. send() never gives up on its own: the caller's journal owns
  durability.
- NULL supervision per path every cfg.supervision_interval_s; a failure reports the path down at
  once, an ACKed NULL or event reports it up.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Optional

from contracts.alarms import AlarmKind
from contracts.timefmt import utcnow
from wire import dc09
from edge.config import PoliceConfig, ReceiverConfig

log = logging.getLogger(__name__)

# NAKs answered in a row on one path before it counts as failed: one to learn the clock, one spare.
MAX_NAKS_PER_TRY = 2
FIRST_BACKOFF_S = 0.05
MAX_FRAME_BYTES = 4200  # a DC-09 frame is at most 4095 bytes of body plus its header


@dataclass(frozen=True)
class PoliceEvent:
    alarm_id: uuid.UUID
    kind: AlarmKind
    restore: bool
    zone: int
    ts: datetime  # time of origin


@dataclass(frozen=True)
class Delivery:
    receiver: str  # "host:port"
    seq: int
    delivered_at: datetime
    attempts: int  # frames written, over all receivers, until the ACK


class PathFailure(Exception):
    """A path could not deliver one frame; the reason names why (connect, timeout, bad reply, NAK...)."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        # counter key: connect, timeout, connection_lost, bad_reply, nak_repeated, refused (DUH), and
        # reply_refused: a reply that decodes but proves nothing (a security event)
        self.kind = kind
        self.writes = 0


class _Path:
    """One receiver: its connection, its lock, its clock offset and its state."""

    def __init__(self, rc: ReceiverConfig, cfg: PoliceConfig):
        self.rc = rc
        self.name = rc.name
        self.cfg = cfg
        self.lock = asyncio.Lock()
        self.reader: Optional[asyncio.StreamReader] = None
        self.writer: Optional[asyncio.StreamWriter] = None
        self.offset = timedelta(0)  # receiver clock minus ours, learnt from NAKs
        self.up: Optional[bool] = None
        self.naks = 0
        self._writes = 0

    def now(self) -> datetime:
        return utcnow() + self.offset

    async def _connect(self) -> None:
        try:
            async with asyncio.timeout(self.cfg.connect_timeout_s):
                self.reader, self.writer = await asyncio.open_connection(
                    self.rc.host, self.rc.port, limit=MAX_FRAME_BYTES)
        except (OSError, TimeoutError) as exc:
            raise PathFailure("connect", f"connect failed: {exc!r}") from None
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def drop(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def _round_trip(self, frame: bytes) -> bytes:
        assert self.reader is not None and self.writer is not None
        self.writer.write(frame)
        await self.writer.drain()
        async with asyncio.timeout(self.cfg.ack_timeout_s):
            reply = await self.reader.readuntil(b"\r")
        return reply

    async def exchange(self, build: Callable[[datetime], bytes], seq: int) -> int:
        """Send build(now) until ACKed; return the frames written. Caller holds the lock."""
        try:
            return await self._exchange(build, seq)
        except PathFailure as exc:
            exc.writes = self._writes
            raise

    def _fail(self, kind: str, reason: str) -> PathFailure:
        self.drop()
        return PathFailure(kind, reason)

    def _learn_offset(self, receiver_time: datetime) -> None:
        offset = receiver_time - utcnow()
        if abs(offset.total_seconds()) > self.cfg.max_clock_offset_s:
            raise self._fail("reply_refused", f"NAK says the receiver clock is {offset.total_seconds():+.0f} s from "
                                              f"ours, beyond max_clock_offset_s {self.cfg.max_clock_offset_s:g}")
        log.warning("DC-09 %s: NAK, receiver clock offset %+.1f s -> %+.1f s", self.name,
                    self.offset.total_seconds(), offset.total_seconds())
        self.offset = offset

    async def _exchange(self, build: Callable[[datetime], bytes], seq: int) -> int:
        self._writes = 0
        naks = 0
        key = self.cfg.key_bytes
        while True:
            reused = self.writer is not None
            if not reused:
                await self._connect()
            sent_at = self.now()
            frame = build(sent_at)
            self._writes += 1
            try:
                raw = await self._round_trip(frame)
            except TimeoutError:  # before OSError, of which it is a subclass
                self.drop()
                raise PathFailure("timeout", f"no reply within {self.cfg.ack_timeout_s} s") from None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                self.drop()
                if reused:
                    # An idle connection the receiver closed since: reconnect once, right away.
                    continue
                raise PathFailure("connection_lost", f"connection lost: {exc!r}") from None
            except BaseException:
                self.drop()  # cancelled mid-exchange: the stream state is unknown
                raise
            try:
                reply = dc09.decode_response(raw, key=key)
            except dc09.DC09Error as exc:
                # An encrypted reply our key does not open is someone else's, not line noise.
                raise self._fail("reply_refused" if exc.kind == "decrypt" else "bad_reply",
                                 f"bad reply: {exc.reason}") from None
            if reply.kind == "NAK":
                naks += 1
                self.naks += 1
                assert reply.timestamp is not None
                self._learn_offset(reply.timestamp)
                if naks > MAX_NAKS_PER_TRY:
                    raise PathFailure("nak_repeated", f"NAK {naks} times in a row")
                continue
            if reply.kind != "ACK":
                raise self._fail("refused", f"receiver answered {reply.kind}")
            try:
                dc09.check_ack(reply, seq=seq, account=self.cfg.account, encrypted=key is not None, sent_at=sent_at,
                               now=self.now(), tolerance_s=self.cfg.ack_clock_tolerance_s)
            except dc09.DC09Error as exc:
                raise self._fail("reply_refused", f"reply refused: {exc.reason}") from None
            return self._writes


class PoliceLink:
    """`on_path_change(receiver, up, reason)` on each path state change; `on_security(receiver, reason)`
    for each refused reply (replayed, plain or mismatched ACK, NAK beyond the clock bound)."""

    def __init__(self, cfg: PoliceConfig, *, on_path_change: Callable[[str, bool, str], None] | None = None,
                 on_security: Callable[[str, str], None] | None = None):
        self.cfg = cfg
        self._paths = [_Path(rc, cfg) for rc in cfg.receivers]
        self._on_path_change = on_path_change
        self._on_security = on_security
        self._seq = 0
        self._tasks: list[asyncio.Task] = []
        # acked, nak, and one count per failure kind (connect, timeout, bad_reply...)
        self.counters: Counter[str] = Counter()

    def _next_seq(self) -> int:
        self._seq = dc09.next_seq(self._seq)
        return self._seq

    def _set_state(self, path: _Path, up: bool, reason: str) -> None:
        if path.up is up:
            return
        path.up = up
        (log.info if up else log.warning)("DC-09 path %s %s: %s", path.name, "up" if up else "DOWN", reason)
        self._notify(self._on_path_change, path.name, up, reason)

    @staticmethod
    def _notify(callback: Callable[..., None] | None, *args) -> None:
        if callback is not None:
            try:
                callback(*args)
            except Exception:
                log.exception("PoliceLink callback failed")

    def path_states(self) -> dict[str, bool]:
        """Each receiver's state; a path not yet tried counts as down."""
        return {p.name: bool(p.up) for p in self._paths}

    async def start(self) -> None:
        for path in self._paths:
            self._tasks.append(asyncio.create_task(self._supervise(path), name=f"dc09-null-{path.name}"))

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for path in self._paths:
            path.drop()

    async def _try(self, path: _Path, build: Callable[[datetime], bytes], seq: int) -> tuple[bool, int]:
        """One delivery attempt on one path: (ACKed?, frames written)."""
        async with path.lock:
            try:
                writes = await path.exchange(build, seq)
            except PathFailure as exc:
                self.counters[exc.kind] += 1
                log.debug("DC-09 %s: %s", path.name, exc)
                if exc.kind == "reply_refused":
                    log.error("DC-09 %s: %s", path.name, exc)
                    self._notify(self._on_security, path.name, str(exc))
                self._set_state(path, False, str(exc))
                return False, exc.writes
            finally:
                self.counters["nak"] += path.naks
                path.naks = 0
        self.counters["acked"] += 1
        self._set_state(path, True, "ACK")
        return True, writes

    async def _supervise(self, path: _Path) -> None:
        key = self.cfg.key_bytes
        while True:
            seq = self._next_seq()
            await self._try(path, lambda now: dc09.encode_null(
                account=self.cfg.account, seq=seq, now=now, receiver=self.cfg.receiver_number,
                prefix=self.cfg.line_prefix, key=key), seq)
            await asyncio.sleep(self.cfg.supervision_interval_s)

    async def send(self, event: PoliceEvent) -> Delivery:
        """Deliver one event; returns on ACK, retries across receivers until then (or cancellation)."""
        data = dc09.EventData(code=dc09.code_for(event.kind, event.restore, self.cfg.protocol),
                              zone=event.zone, alarm_id=event.alarm_id, occurred_at=event.ts)
        seq = self._next_seq()
        key = self.cfg.key_bytes

        def build(now: datetime) -> bytes:
            return dc09.encode_event(data, protocol=self.cfg.protocol, account=self.cfg.account, seq=seq, now=now,
                                     receiver=self.cfg.receiver_number, prefix=self.cfg.line_prefix, key=key)

        build(utcnow())  # a bad event (zone out of range) fails here, once, not in a retry loop
        attempts = 0
        backoff = FIRST_BACKOFF_S
        while True:
            # Primary first, but a path supervision already knows is down goes last, so an
            # unreachable primary does not cost every alarm a connect timeout.
            for path in sorted(self._paths, key=lambda p: p.up is False):
                acked, writes = await self._try(path, build, seq)
                attempts += writes
                if acked:
                    return Delivery(receiver=path.name, seq=seq, delivered_at=utcnow(), attempts=attempts)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.cfg.retry_backoff_max_s)

