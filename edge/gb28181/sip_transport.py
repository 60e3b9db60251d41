"""The gateway's SIP path to the police video platform, over UDP or TCP, around the sans-IO codec
in wire/sip.py.

- Client transactions: a request goes out and its final response is matched by the top Via
  branch and the CSeq method; over UDP it is sent again at 0.5, 1, 2, 4, 4... s (RFC 3261
  timer E) until the answer or the deadline. Provisional (1xx) answers are only waited past.
- Server side: requests come only from the platform's address; anything else is counted and
  dropped without an answer, so the gateway reflects nothing to a spoofed source. A request
  the platform sends again (same branch) is answered again from a small cache, never handled twice.
- A message that fails SIP is answered 400 with the reason when enough of it can be read to
  address an answer, else counted and dropped; over TCP a framing error closes the connection
  (a byte stream cannot be resynchronised), and the next request reconnects.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter, OrderedDict
from typing import Callable, Optional

from wire import sip

log = logging.getLogger("careguard.edge.gb28181")

T1_S = 0.5
T2_S = 4.0
ANSWERED_CACHE = 128  # server transactions remembered for retransmissions
MAX_DATAGRAM = 65_535

RequestHandler = Callable[[sip.SipRequest, tuple[str, int]], None]  # the request and where to answer


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: "SipTransport"):
        self.owner = owner

    def datagram_received(self, data: bytes, addr) -> None:
        self.owner._received(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        self.owner.counters["udp_error"] += 1  # an ICMP unreachable from the platform: the next send tells


class SipTransport:
    def __init__(self, *, transport: str, platform_host: str, platform_port: int, bind_host: str, bind_port: int,
                 local_ip: Optional[str], on_request: RequestHandler):
        self.kind = transport
        self.platform = (platform_host, platform_port)
        self.bind = (bind_host, bind_port)
        self._local_ip = local_ip
        self.on_request = on_request
        self.counters: Counter[str] = Counter()
        self.last_rejection: Optional[str] = None
        self.platform_ip: Optional[str] = None
        self._udp: Optional[asyncio.DatagramTransport] = None
        self._reader: Optional[asyncio.StreamReader] = None
        self._writer: Optional[asyncio.StreamWriter] = None
        self._read_task: Optional[asyncio.Task] = None
        self._connect_lock = asyncio.Lock()
        self._pending: dict[tuple[str, str], asyncio.Future] = {}
        self._answered: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self.local = (local_ip or "127.0.0.1", bind_port)  # (ip, port) the platform reaches us at

    # --- life cycle ---------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(*self.platform, family=socket.AF_INET)
        self.platform_ip = infos[0][4][0]
        ip = self._local_ip or _route_to(self.platform_ip, self.platform[1])
        if self.kind == "udp":
            self._udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=self.bind)
            self.local = (ip, self._udp.get_extra_info("sockname")[1])
        else:
            self.local = (ip, self.bind[1])

    async def close(self) -> None:
        if self._read_task is not None:
            self._read_task.cancel()
            await asyncio.gather(self._read_task, return_exceptions=True)
        self._drop_tcp()
        if self._udp is not None:
            self._udp.close()
        for fut in self._pending.values():
            fut.cancel()

    @property
    def via_transport(self) -> str:
        return self.kind.upper()

    # --- sending ------------------------------------------------------------------------
    async def _ensure_tcp(self) -> None:
        async with self._connect_lock:
            if self._writer is not None:
                return
            reader, writer = await asyncio.open_connection(self.platform[0], self.platform[1],
                                                           local_addr=(self.bind[0], self.bind[1]) if self.bind[1]
                                                           else None)
            self._reader, self._writer = reader, writer
            self.local = (self.local[0], writer.get_extra_info("sockname")[1])
            self._read_task = asyncio.get_running_loop().create_task(self._read_tcp(reader))

    def _drop_tcp(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    def _send(self, data: bytes, addr: Optional[tuple[str, int]] = None) -> None:
        if self.kind == "udp":
            assert self._udp is not None
            self._udp.sendto(data, addr or self.platform)
        elif self._writer is not None:
            self._writer.write(data)

    async def request(self, req: sip.SipRequest, timeout: float,
                      to: Optional[tuple[str, int]] = None) -> Optional[sip.SipResponse]:
        """Send `req` (over UDP to `to`, the platform by default) and return its final response, or
        None when none came within `timeout` s."""
        if self.kind == "tcp":
            try:
                async with asyncio.timeout(timeout):
                    await self._ensure_tcp()
            except (OSError, TimeoutError) as exc:
                self.counters["connect_failed"] += 1
                log.debug("GB28181: TCP connect to %s:%d failed: %r", *self.platform, exc)
                return None
        key = (sip.parse_via(req.headers.get("via") or "").branch or "", req.method)
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending[key] = fut
        data = sip.encode(req)
        interval = T1_S
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                self._send(data, to)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                wait = min(interval, remaining) if self.kind == "udp" else remaining
                try:
                    # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
                    # that lands as the answer arrives, and the device would never stop.
                    async with asyncio.timeout(wait):
                        return await asyncio.shield(fut)
                except TimeoutError:
                    interval = min(interval * 2, T2_S)
        finally:
            self._pending.pop(key, None)

    def respond(self, resp: sip.SipResponse, to: tuple[str, int]) -> None:
        data = sip.encode(resp)
        branch = sip.parse_via(resp.headers.get("via") or "").branch
        if branch:
            self._answered[(branch, resp.cseq[1])] = data
            while len(self._answered) > ANSWERED_CACHE:
                self._answered.popitem(last=False)
        self._send(data, to)

    def send_request(self, req: sip.SipRequest) -> None:
        """A request whose answer nobody waits for: ACK."""
        self._send(sip.encode(req))

    # --- receiving ----------------------------------------------------------------------
    def _reject(self, kind: str, reason: str) -> None:
        self.counters[kind] += 1
        self.last_rejection = reason
        log.warning("GB28181: rejected from the platform: %s", reason)

    def _received(self, data: bytes, addr: tuple[str, int]) -> None:
        if addr[0] != self.platform_ip:
            self.counters["foreign_source"] += 1  # not the platform: no answer at all
            return
        if not data.strip(b"\r\n"):
            return  # keep-alive
        try:
            msg = sip.parse_datagram(data)
        except sip.SipError as exc:
            self._reject("bad_sip", str(exc))
            answer = sip.error_response(data, exc)
            if answer is not None:
                self._send(answer, addr)
            return
        self._dispatch(msg, addr)

    async def _read_tcp(self, reader: asyncio.StreamReader) -> None:
        stream = sip.SipStream()
        try:
            while True:
                chunk = await reader.read(MAX_DATAGRAM)
                if not chunk:
                    break
                try:
                    messages = stream.feed(chunk)
                except sip.SipError as exc:
                    self._reject("bad_sip", f"{exc} (connection closed)")
                    break
                for msg in messages:
                    self._dispatch(msg, self.platform)
        except OSError as exc:
            log.info("GB28181: TCP connection lost: %r", exc)
        finally:
            self.counters["tcp_closed"] += 1
            self._drop_tcp()

    def _dispatch(self, msg: sip.SipMessage, addr: tuple[str, int]) -> None:
        try:
            branch = sip.parse_via(msg.headers.get("via") or "").branch or ""
        except sip.SipError as exc:
            self._reject("bad_sip", str(exc))
            return
        method = msg.cseq[1]
        if isinstance(msg, sip.SipResponse):
            fut = self._pending.get((branch, method))
            if fut is None:
                self.counters["stray_response"] += 1
            elif msg.status >= 200 and not fut.done():
                fut.set_result(msg)
            return
        again = self._answered.get((branch, msg.method))
        if again is not None and msg.method != "ACK":
            self.counters["retransmission"] += 1
            self._send(again, addr)
            return
        try:
            self.on_request(msg, addr)
        except Exception:
            log.exception("GB28181: handling %s failed", msg.method)
            self.respond(sip.build_response(msg, 500), addr)


def _route_to(host: str, port: int) -> str:
    """The local address the kernel would use towards the platform (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((host, port))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"
