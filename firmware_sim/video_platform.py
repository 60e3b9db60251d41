"""A simulated police video platform (公安视频图像信息联网平台), as much as `make run`'s gateways
need to be networked with it over GB/T 28181: it takes their REGISTER with SIP digest
authentication and answers their Keepalive and other MESSAGEs, over UDP. It asks nothing of
them (no catalog query, no live stream); the tests use SIPp as the full platform peer.

Every datagram is untrusted: one that is not SIP, a REGISTER from an unknown device or with wrong
credentials is answered with the error that names it and counted, and the platform keeps serving."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import Counter
from typing import Optional

from wire import sip

log = logging.getLogger("careguard.sim.video_platform")
GRANTED_EXPIRES_S = 3600


class SimulatedVideoPlatform:
    def __init__(self, platform_id: str, domain: str, passwords: dict[str, str], *, host: str = "127.0.0.1",
                 port: int = 0):
        self.platform_id, self.domain = platform_id, domain
        self.passwords = dict(passwords)  # device code -> the digest password the platform gave it
        self.host, self.port = host, port
        self.nonce = secrets.token_hex(16)
        self.registered: dict[str, tuple[str, int]] = {}  # device code -> where it registered from
        self.counters: Counter[str] = Counter()
        self._transport: Optional[asyncio.DatagramTransport] = None

    async def start(self) -> "SimulatedVideoPlatform":
        platform = self

        class Protocol(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr) -> None:
                platform._received(data, addr)

        self._transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            Protocol, local_addr=(self.host, self.port))
        self.port = self._transport.get_extra_info("sockname")[1]
        return self

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def _send(self, msg: sip.SipMessage, addr) -> None:
        if self._transport is not None:
            self._transport.sendto(sip.encode(msg), addr)

    def _received(self, data: bytes, addr) -> None:
        try:
            msg = sip.parse_datagram(data)
        except sip.SipError as exc:
            self.counters["refused"] += 1
            answer = sip.error_response(data, exc)
            if answer is not None and self._transport is not None:
                self._transport.sendto(answer, addr)
            return
        if not isinstance(msg, sip.SipRequest):
            return  # answers to requests this platform never sends
        try:
            self._answer(msg, addr)
        except sip.SipError as exc:  # a header the parser took but that does not read as what it names
            self.counters["refused"] += 1
            self._send(sip.build_response(msg, 400, str(exc), to_tag=sip.new_tag()), addr)

    def _answer(self, msg: sip.SipRequest, addr) -> None:
        if msg.method == "REGISTER":
            self._register(msg, addr)
        elif msg.method == "MESSAGE":
            self.counters["messages"] += 1
            self._send(sip.build_response(msg, 200, to_tag=sip.new_tag()), addr)
        else:
            self.counters["refused"] += 1
            self._send(sip.build_response(msg, 501, to_tag=sip.new_tag()), addr)

    def _register(self, req: sip.SipRequest, addr) -> None:
        device = req.from_addr.uri.user if req.from_addr.uri else ""
        header = req.headers.get("authorization")
        if header is None:
            challenge = sip.DigestChallenge(realm=self.domain, nonce=self.nonce)
            self._send(sip.build_response(req, 401, to_tag=sip.new_tag(),
                                          extra=[("WWW-Authenticate", challenge.encode())]), addr)
            return
        try:
            creds = sip.parse_credentials(header)
        except sip.SipError as exc:
            self.counters["refused"] += 1
            self._send(sip.build_response(req, 400, str(exc), to_tag=sip.new_tag()), addr)
            return
        password = self.passwords.get(creds.username)
        if password is None or creds.username != device or creds.nonce != self.nonce \
                or not sip.verify(creds, password, "REGISTER"):
            self.counters["refused"] += 1
            log.warning("video platform: REGISTER of %r refused (unknown device or wrong credentials)", device[:32])
            self._send(sip.build_response(req, 403, to_tag=sip.new_tag()), addr)
            return
        self.registered[device] = addr
        self.counters["registered"] += 1
        self._send(sip.build_response(req, 200, to_tag=sip.new_tag(),
                                      extra=[("Expires", str(GRANTED_EXPIRES_S))]), addr)
