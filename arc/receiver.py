"""The police alarm centre's DC-09 receiver (ARC): `careguard arc --listen HOST:PORT --accounts FILE [--db PATH]`.

Checks CRC, length, account, key and the timestamp window (-40/+20 s), answers ACK/NAK/DUH
(see wire.dc09 for which reply means what), ACKs NULL supervision messages, and stores each alarm
once (arc.store). A bad frame is answered, logged and counted; it never stops the receiver.

Accounts file (TOML):
    [accounts.1234]
    key = "000102...0F"   # optional, AES key in hex (16, 24 or 32 bytes)
    facility = "F001"
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import tomllib
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from arc.store import ArcAlarm, ArcStore
from contracts.dc09_codes import (CID_CODES, MANUAL_TEST_CID, MANUAL_TEST_SIA, PERIODIC_TEST_CID, PERIODIC_TEST_SIA,
                                  SIA_CODES)
from contracts.errors import describe_validation_error
from contracts.timefmt import utcnow
from wire import dc09

log = logging.getLogger(__name__)

KNOWN_CODES = frozenset(SIA_CODES.values()) | frozenset(CID_CODES.values()) | {
    PERIODIC_TEST_SIA, PERIODIC_TEST_CID, MANUAL_TEST_SIA, MANUAL_TEST_CID}
MAX_FRAME_BYTES = 4200
# Replies that name a frame's fault with DUH (understood as DC-09 but not as content); the rest NAK.
_DUH_KINDS = frozenset({"token", "format", "code"})


class ArcAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: Optional[dc09.AesKeyHex] = Field(default=None, description="AES key in hex (16, 24 or 32 bytes); plain text when unset")
    facility: Optional[str] = Field(default=None, max_length=32)

    @property
    def key_bytes(self) -> Optional[bytes]:
        return bytes.fromhex(self.key) if self.key else None


class ArcAccountsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accounts: dict[str, ArcAccount]

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


def load_accounts(path: str | Path) -> dict[str, ArcAccount]:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
        return ArcAccountsFile.model_validate(data).accounts
    except FileNotFoundError:
        raise AccountsError(f"{p}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise AccountsError(f"{p}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        raise AccountsError(f"{p}: {describe_validation_error(exc)}") from None


class ArcReceiver:
    """An asyncio DC-09 TCP receiver.

    Fault injection for tests: `clock_skew_s` runs the receiver's clock ahead (NAKs follow from the
    window check); `drop_replies` processes (and stores) that many frames without answering them."""

    def __init__(self, accounts: Mapping[str, ArcAccount], *, host: str = "127.0.0.1", port: int = 0,
                 store: Optional[ArcStore] = None, on_alarm: Optional[Callable[[ArcAlarm], None]] = None,
                 clock_skew_s: float = 0.0, drop_replies: int = 0):
        self.accounts = {a.upper(): conf for a, conf in accounts.items()}
        self._keys = {a: conf.key_bytes for a, conf in self.accounts.items()}
        self.host = host
        self.port = port
        self.store = store if store is not None else ArcStore()
        self.on_alarm = on_alarm
        self.clock_skew = timedelta(seconds=clock_skew_s)
        self.drop_replies = drop_replies
        self.counters: Counter[str] = Counter()
        self._server: Optional[asyncio.Server] = None
        self._conns: set[asyncio.StreamWriter] = set()

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"

    def now(self) -> datetime:
        return utcnow() + self.clock_skew

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_FRAME_BYTES)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("ARC receiver listening on %s", self.name)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._conns):
                w.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns.add(writer)
        self.counters["connections"] += 1
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                try:
                    chunk = await reader.readuntil(b"\r")
                except asyncio.IncompleteReadError:
                    break
                except asyncio.LimitOverrunError:
                    self._count_reject("oversize", f"no CR within {MAX_FRAME_BYTES} bytes, dropping the connection")
                    break
                # Bytes before the last LF are line noise, not part of this frame.
                lf = chunk.rfind(b"\n")
                reply = self.handle_frame(chunk[lf:] if lf >= 0 else chunk)
                if reply is not None:
                    writer.write(reply)
                    await writer.drain()
        except (ConnectionError, OSError) as exc:
            log.info("ARC connection ended: %r", exc)
        finally:
            self._conns.discard(writer)
            writer.close()

    def _count_reject(self, kind: str, reason: str) -> None:
        self.counters[f"rejected_{kind}"] += 1
        log.warning("ARC rejected frame: %s: %s", kind, reason)

    def handle_frame(self, frame: bytes) -> Optional[bytes]:
        """The reply to one frame (None: no reply)."""
        now = self.now()
        try:
            decoded = dc09.decode_frame(frame, self._keys)
            dc09.check_timestamp(decoded, now)
            if decoded.event is not None and decoded.event.code not in KNOWN_CODES:
                raise dc09.DC09Error("code", f"event code {decoded.event.code!r} not handled here", decoded.header)
        except dc09.DC09Error as exc:
            self._count_reject(exc.kind, str(exc))
            if exc.kind in _DUH_KINDS and exc.header is not None:
                return dc09.encode_duh(exc.header)
            return dc09.encode_nak(now=now)
        header = decoded.header
        if decoded.event is None:
            self.counters["null_ok"] += 1
        else:
            try:
                self._record(decoded, now)
            except Exception:
                # Not stored means not ACKed: the sender will resend.
                self.counters["store_error"] += 1
                log.exception("ARC could not store an alarm from account %s", header.account)
                return None
        if self.drop_replies > 0:
            self.drop_replies -= 1
            self.counters["replies_dropped"] += 1
            return None
        return dc09.encode_ack(header, now=now, key=self._keys[header.account])

    def _record(self, frame: dc09.Frame, now: datetime) -> None:
        ev, header = frame.event, frame.header
        assert ev is not None
        alarm = ArcAlarm(account=header.account, facility=self.accounts[header.account].facility, seq=header.seq,
                         protocol=header.token, code=ev.code, zone=ev.zone, area=ev.area, alarm_id=ev.alarm_id,
                         event_time=ev.occurred_at or frame.timestamp or now, received_at=now, receiver=self.name,
                         content=frame.data)
        if self.store.record(alarm):
            self.counters["frames_ok"] += 1
            if self.on_alarm is not None:
                try:
                    self.on_alarm(alarm)
                except Exception:
                    log.exception("on_alarm callback failed")
        else:
            self.counters["duplicates"] += 1


# ------------------------------------------------------------------ command line
def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host or "0.0.0.0", int(port)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", type=_host_port, default=("127.0.0.1", 9000), help="HOST:PORT to listen on")
    parser.add_argument("--accounts", required=True, help="TOML file of accounts ([accounts.<id>] key, facility)")
    parser.add_argument("--db", default="var/arc/arc.sqlite3", help="SQLite file for received alarms")


async def _run(receiver: ArcReceiver) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await receiver.start()
    print(f"ARC receiver listening on {receiver.name}", flush=True)
    try:
        await stop.wait()
    finally:
        await receiver.close()
        log.info("ARC counters: %s", dict(receiver.counters))


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        accounts = load_accounts(args.accounts)
    except AccountsError as exc:
        print(f"careguard arc: {exc}")
        return 2
    if args.db != ":memory:":
        Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    store = ArcStore(args.db)
    host, port = args.listen
    try:
        asyncio.run(_run(ArcReceiver(accounts, host=host, port=port, store=store)))
    finally:
        store.close()
    return 0
