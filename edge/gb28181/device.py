"""The gateway as a GB/T 28181 device on the police video platform.

- Registration: REGISTER, answered 401 with a digest challenge, again with credentials; renewed
  at 3/4 of the granted Expires. A refusal or silence is retried with backoff doubling up to
  `register_retry_max_s`, never given up.
- Keepalive MESSAGE every `keepalive_s`; `keepalive_misses` unanswered in a row, or an answer
  refusing it (a restarted platform no longer knows the device), and the platform counts as
  lost: streams stop and registration starts again.
- Catalog / DeviceInfo / DeviceStatus queries are answered 200 at once, then by MESSAGE(s) of
  our own (the Catalog cut to fit datagrams). A body that fails MANSCDP is answered 400 naming
  why; a command this device does not carry out, 501 naming it.
- Alarm notify: built and handed to the socket on the loop turn after the alarm, behind the
  DC-09 frame (the agent schedules it so); while unregistered, kept (bounded) and sent after.
- INVITE (Play) for a channel: SDP answer with the offer's SSRC, streaming starts at ACK and
  ends at BYE, when the source ends (we send BYE), or when the platform is lost; at most
  `max_streams` at once (486 beyond).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Optional
from zoneinfo import ZoneInfo

from contracts.alarms import AlarmKind
from contracts.timefmt import iso_utc, utcnow
from contracts.video_platform import VideoPlatformStatus
from edge.config import GbConfig
from edge.gb28181 import catalog
from edge.gb28181.media import MediaSession
from edge.gb28181.sip_transport import SipTransport
from wire import manscdp, sdp, sip

log = logging.getLogger("careguard.edge.gb28181")

FIRST_BACKOFF_S = 1.0
REFRESH_FRACTION = 0.75
MIN_EXPIRES_S = 30
ACK_TIMEOUT_S = 32.0  # RFC 3261 timer H: 64 x T1
QUEUED_ALARMS = 64
USER_AGENT = "CareGuard-edge"
ANSWERED_QUERIES = ("Catalog", "DeviceInfo", "DeviceStatus")


@dataclass
class Dialog:
    call_id: str
    local: sip.Address  # the INVITE's To, with our tag: our side of the dialog
    remote: sip.Address  # the INVITE's From: the platform's side
    remote_target: str  # the platform's Contact, where in-dialog requests go
    channel: catalog.Channel
    session: MediaSession
    acked: bool = False
    timer: Optional[asyncio.TimerHandle] = None
    started_at: float = field(default_factory=time.monotonic)


class GbDevice:
    def __init__(self, cfg: GbConfig, channels: list[catalog.Channel], *, timezone: str, address: str = "",
                 camera_online: Callable[[], dict[str, bool]] = dict, recording: Callable[[], bool] = lambda: False,
                 alarm_active: Callable[[], bool] = lambda: False,
                 on_state: Callable[[bool, str], None] = lambda up, reason: None):
        self.cfg = cfg
        self.channels = {ch.gb_id: ch for ch in channels}
        self.tz = ZoneInfo(timezone)
        self.address = address
        self.camera_online = camera_online
        self.recording = recording
        self.alarm_active = alarm_active
        self.on_state = on_state
        self.transport = SipTransport(transport=cfg.transport, platform_host=cfg.platform_host,
                                      platform_port=cfg.platform_port, bind_host="0.0.0.0", bind_port=cfg.local_port,
                                      local_ip=cfg.local_ip, on_request=self._on_request)
        self.counters: Counter[str] = Counter()
        self.registered: Optional[bool] = None  # None: not tried yet
        self.state_reason = "not started"
        self.state_since = utcnow()
        self.dialogs: dict[str, Dialog] = {}
        self.registered_at: Optional[float] = None  # time.monotonic() of the latest registration
        self._queued: deque[manscdp.AlarmNotify] = deque(maxlen=QUEUED_ALARMS)
        self._tasks: set[asyncio.Task] = set()
        self._main: Optional[asyncio.Task] = None
        self.backoff_s = FIRST_BACKOFF_S  # the wait before the next registration attempt
        self._sn = 0
        self._cseq = 0
        self._reg_call_id = sip.new_call_id()
        self._tag = sip.new_tag()

    # --- life cycle ---------------------------------------------------------------------
    async def start(self) -> None:
        await self.transport.start()
        self._main = asyncio.get_running_loop().create_task(self._run(), name="gb28181-device")

    async def close(self) -> None:
        if self._main is not None:
            self._main.cancel()
            await asyncio.gather(self._main, return_exceptions=True)
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stop_streams("gateway stopping")
        await self.transport.close()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def status(self) -> dict:
        """The registration as the heartbeat reports it to the cloud (contracts/video_platform.py)."""
        return VideoPlatformStatus(
            registered=bool(self.registered), platform=f"{self.cfg.platform_host}:{self.cfg.platform_port}",
            platform_id=self.cfg.platform_id, device_id=self.cfg.device_id, transport=self.cfg.transport,
            since=iso_utc(self.state_since), reason=self.state_reason[:300],
            cameras=[ch.camera_id for ch in self.channels.values()], streams=len(self.dialogs)).model_dump(mode="json")

    def _set_state(self, up: bool, reason: str) -> None:
        if up is self.registered and reason == self.state_reason:
            return
        changed = up is not self.registered
        self.registered, self.state_reason = up, reason
        if changed:
            self.state_since = utcnow()
            (log.info if up else log.warning)("GB28181 platform %s: %s", "registered" if up else "LOST", reason)
            try:
                self.on_state(up, reason)
            except Exception:
                log.exception("on_state callback failed")

    # --- registration and keepalive ------------------------------------------------------
    async def _run(self) -> None:
        while True:
            ok, reason, expires = await self._register(self.cfg.register_expires_s)
            if not ok:
                self.counters["register_failed"] += 1
                self._set_state(False, reason)
                await asyncio.sleep(self.backoff_s)
                self.backoff_s = min(self.backoff_s * 2, self.cfg.register_retry_max_s)
                continue
            self.backoff_s = FIRST_BACKOFF_S
            self.registered_at = time.monotonic()
            self._set_state(True, reason)
            while self._queued:
                self._spawn(self._send_alarm(self._queued.popleft()))
            reason = await self._stay_registered(expires)
            self._set_state(False, reason)
            await self._stop_streams(reason)

    def _next_cseq(self) -> int:
        self._cseq += 1
        return self._cseq

    def _device_addr(self, tag: Optional[str] = None) -> sip.Address:
        return sip.Address(sip.SipUri(self.cfg.device_id, self.cfg.platform_domain), {"tag": tag} if tag else {})

    def _platform_uri(self) -> str:
        return f"sip:{self.cfg.platform_id}@{self.cfg.platform_domain}"

    def _via(self) -> sip.Via:
        ip, port = self.transport.local
        return sip.Via(self.transport.via_transport, ip, port, {"rport": "", "branch": sip.new_branch()})

    def _contact(self) -> sip.Address:
        ip, port = self.transport.local
        return sip.Address(sip.SipUri(self.cfg.device_id, ip, port))

    def _register_request(self, expires: int, auth: Optional[str]) -> sip.SipRequest:
        extra = [("User-Agent", USER_AGENT), ("Expires", str(expires))]
        if auth:
            extra.append(("Authorization", auth))
        return sip.build_request("REGISTER", self._platform_uri(), via=self._via(),
                                 from_addr=self._device_addr(self._tag), to_addr=self._device_addr(),
                                 call_id=self._reg_call_id, cseq=self._next_cseq(), contact=self._contact(), extra=extra)

    async def _register(self, expires: int) -> tuple[bool, str, int]:
        """(registered?, why, seconds granted)."""
        timeout = self.cfg.response_timeout_s
        resp = await self.transport.request(self._register_request(expires, None), timeout)
        if resp is None:
            return False, "no answer to REGISTER", 0
        if resp.status in (401, 407):
            header = resp.headers.get("www-authenticate" if resp.status == 401 else "proxy-authenticate")
            try:
                challenge = sip.parse_challenge(header or "")
                creds = sip.authorize(challenge, self.cfg.device_id, self.cfg.password, "REGISTER",
                                      self._platform_uri())
            except sip.SipError as exc:
                return False, f"platform's challenge refused: {exc}", 0
            resp = await self.transport.request(self._register_request(expires, creds.encode()), timeout)
            if resp is None:
                return False, "no answer to the authenticated REGISTER", 0
            if resp.status in (401, 403, 407):
                return False, f"platform refused the credentials ({resp.status} {resp.reason})", 0
        if not 200 <= resp.status < 300:
            return False, f"platform answered REGISTER {resp.status} {resp.reason}", 0
        granted = resp.headers.get("expires") or ""
        seconds = int(granted) if granted.isdigit() else expires
        return True, "registered", max(MIN_EXPIRES_S, min(seconds, expires))

    async def _stay_registered(self, expires: int) -> str:
        """Keepalives and renewals until the platform is lost; returns why it was."""
        loop = asyncio.get_running_loop()
        refresh_at = loop.time() + expires * REFRESH_FRACTION
        next_keepalive = loop.time()
        misses = 0
        while True:
            await asyncio.sleep(max(0.0, min(next_keepalive, refresh_at) - loop.time()))
            if loop.time() >= refresh_at:
                ok, reason, expires = await self._register(self.cfg.register_expires_s)
                if not ok:
                    return f"renewal failed: {reason}"
                refresh_at = loop.time() + expires * REFRESH_FRACTION
                continue
            next_keepalive += self.cfg.keepalive_s
            resp = await self._message(manscdp.Keepalive(self._next_sn(), self.cfg.device_id),
                                       min(self.cfg.response_timeout_s, self.cfg.keepalive_s))
            self.counters["keepalive_sent"] += 1
            if resp is None:
                misses += 1
                self.counters["keepalive_unanswered"] += 1
                if misses >= self.cfg.keepalive_misses:
                    return f"{misses} keepalives unanswered"
            elif resp.status >= 300:
                # A platform that restarted answers an unknown device's keepalive with an error.
                return f"platform refused a keepalive ({resp.status} {resp.reason})"
            else:
                misses = 0
            next_keepalive = max(next_keepalive, loop.time())

    def _next_sn(self) -> int:
        self._sn = (self._sn + 1) % (2**31)
        return self._sn

    async def _message(self, body: manscdp.Message, timeout: Optional[float] = None) -> Optional[sip.SipResponse]:
        req = sip.build_request("MESSAGE", self._platform_uri(), via=self._via(), from_addr=self._device_addr(self._tag),
                                to_addr=sip.Address(sip.parse_uri(self._platform_uri())), call_id=sip.new_call_id(),
                                cseq=self._next_cseq(), extra=[("User-Agent", USER_AGENT)],
                                body=manscdp.encode(body), content_type=manscdp.CONTENT_TYPE)
        return await self.transport.request(req, timeout or self.cfg.response_timeout_s)

    # --- alarms -------------------------------------------------------------------------
    def notify_alarm(self, kind: AlarmKind, ts: datetime, detail: str, camera_id: Optional[str] = None) -> None:
        """Tell the platform of an alarm (a kind it is told of); returns at once."""
        if kind not in catalog.NOTIFIED:
            return
        gb_id = self.cfg.device_id
        if camera_id is not None:
            gb_id = next((ch.gb_id for ch in self.channels.values() if ch.camera_id == camera_id), gb_id)
        notify = catalog.alarm_notify(self._next_sn(), kind, gb_id, ts.astimezone(self.tz).replace(tzinfo=None), detail)
        if self.registered:
            self._spawn(self._send_alarm(notify))
        else:
            self.counters["alarm_queued"] += 1
            self._queued.append(notify)

    async def _send_alarm(self, notify: manscdp.AlarmNotify) -> None:
        resp = await self._message(notify)
        if resp is not None and resp.status < 300:
            self.counters["alarm_notified"] += 1
            return
        self.counters["alarm_unanswered"] += 1
        self._queued.append(notify)  # sent again after the next registration

    # --- requests from the platform ------------------------------------------------------
    def _answer(self, req: sip.SipRequest, to: tuple[str, int], status: int, reason: Optional[str] = None,
                **kw) -> None:
        if status >= 400:
            self.counters[f"answered_{status}"] += 1
            log.warning("GB28181: %s from the platform answered %d: %s", req.method, status, reason or "")
        self.transport.respond(sip.build_response(req, status, reason, to_tag=kw.pop("to_tag", self._tag), **kw), to)

    def _on_request(self, req: sip.SipRequest, source: tuple[str, int]) -> None:
        handler = {"MESSAGE": self._on_message, "INVITE": self._on_invite, "ACK": self._on_ack, "BYE": self._on_bye,
                   "OPTIONS": lambda r, s: self._answer(r, s, 200)}.get(req.method)
        if handler is None:
            self._answer(req, source, 405, extra=[("Allow", "INVITE, ACK, BYE, MESSAGE, OPTIONS")])
            return
        handler(req, source)

    def _on_message(self, req: sip.SipRequest, source: tuple[str, int]) -> None:
        if req.content_type != manscdp.CONTENT_TYPE.lower():
            self._answer(req, source, 415, f"Unsupported Media Type ({req.content_type or 'none'}, not MANSCDP+xml)")
            return
        try:
            msg = manscdp.parse(req.body)
        except manscdp.ManscdpError as exc:
            self._answer(req, source, 400, f"Bad MANSCDP ({exc.reason})")
            return
        if isinstance(msg, manscdp.Reply):
            self._answer(req, source, 200)
            return
        if not isinstance(msg, manscdp.Query):
            self._answer(req, source, 400, f"Bad MANSCDP ({type(msg).__name__} is not sent to a device)")
            return
        if msg.device_id != self.cfg.device_id and msg.device_id not in self.channels:
            self._answer(req, source, 404, f"Not Found (DeviceID {msg.device_id} is not this device)")
            return
        if msg.cmd not in ANSWERED_QUERIES:
            self._answer(req, source, 501, f"Not Implemented ({msg.cmd})")
            return
        self._answer(req, source, 200)
        self.counters[f"query_{msg.cmd}"] += 1
        self._spawn(self._answer_query(msg))

    async def _answer_query(self, q: manscdp.Query) -> None:
        if q.cmd == "Catalog":
            items = catalog.catalog_items(self.cfg.device_id, list(self.channels.values()), self.camera_online(),
                                          self.address)
            answers: list[manscdp.Message] = list(manscdp.split_catalog(q.sn, self.cfg.device_id, items))
        elif q.cmd == "DeviceInfo":
            answers = [manscdp.DeviceInfoResponse(q.sn, q.device_id, self.cfg.name, catalog.MANUFACTURER,
                                                  catalog.MODEL, catalog.FIRMWARE, len(self.channels))]
        else:
            online = self.camera_online()
            duty = "ALARM" if self.alarm_active() else "ONDUTY"
            answers = [manscdp.DeviceStatusResponse(
                q.sn, q.device_id, True, all(online.get(ch.camera_id) for ch in self.channels.values()), True,
                self.recording(), datetime.now(self.tz).replace(tzinfo=None, microsecond=0),
                (manscdp.DutyStatus(self.cfg.device_id, duty),))]
        for body in answers:
            resp = await self._message(body)
            if resp is None or resp.status >= 300:
                self.counters["answer_unacknowledged"] += 1

    # --- media sessions -----------------------------------------------------------------
    def _on_invite(self, req: sip.SipRequest, source: tuple[str, int]) -> None:
        if req.call_id in self.dialogs:
            self._answer(req, source, 488, "Not Acceptable Here (re-INVITE unsupported)")
            return
        uri = sip.parse_uri(req.uri)
        channel = self.channels.get(uri.user or "")
        if channel is None:
            self._answer(req, source, 404, f"Not Found (no channel {uri.user})")
            return
        try:
            offer = sdp.parse_sdp(req.body)
            video = offer.video
            if offer.session_name != "Play":
                raise sdp.SdpError(f"s={offer.session_name[:20]}: only live Play is served")
            if video is None:
                raise sdp.SdpError("no video media")
            payload_type = sdp.ps_payload_type(video)
        except sdp.SdpError as exc:
            self._answer(req, source, 488, f"Not Acceptable Here ({exc.reason})")
            return
        if len(self.dialogs) >= self.cfg.max_streams:
            self._answer(req, source, 486, f"Busy Here ({self.cfg.max_streams} streams already)")
            return
        self._answer(req, source, 100, to_tag=None)
        self._spawn(self._accept_invite(req, source, channel, offer, payload_type))

    async def _accept_invite(self, req: sip.SipRequest, source: tuple[str, int], channel: catalog.Channel,
                             offer: sdp.SessionDescription, payload_type: int) -> None:
        video = offer.video
        mode = "udp" if not video.tcp else ("tcp-active" if video.setup in ("passive", "actpass", None)
                                            else "tcp-passive")
        ssrc = offer.ssrc or f"0{self.cfg.platform_domain[3:8]}{self._next_sn() % 10000:04d}"
        session = MediaSession(source=channel.source, dest=(offer.connection_addr, video.port), mode=mode,
                               ssrc=int(ssrc), payload_type=payload_type, fps=self.cfg.stream_fps,
                               bind_ip=self.transport.local[0] if self.cfg.local_ip else "0.0.0.0",
                               on_end=self._on_media_end)
        try:
            port = await session.prepare()
        except OSError as exc:
            self._answer(req, source, 500, f"Server Internal Error (media socket: {exc.strerror})")
            return
        contact = req.headers.get("contact")
        to = req.to_addr
        dialog = Dialog(req.call_id, sip.Address(to.uri, {**to.params, "tag": sip.new_tag()}, to.display),
                        req.from_addr, str(sip.parse_address(contact).uri) if contact else str(req.from_addr.uri),
                        channel, session)
        self.dialogs[req.call_id] = dialog
        answer = sdp.answer(offer, user=self.cfg.device_id, addr=self.transport.local[0], port=port, ssrc=ssrc,
                            fmt=sdp.MediaFormat("2", "", str(self.cfg.stream_fps), "2"))
        self._answer(req, source, 200, to_tag=dialog.local.tag, body=answer.encode(), content_type="application/sdp",
                     extra=[("Contact", str(self._contact())), ("User-Agent", USER_AGENT)])
        dialog.timer = asyncio.get_running_loop().call_later(ACK_TIMEOUT_S, self._ack_timeout, req.call_id)
        self.counters["invite_answered"] += 1

    def _ack_timeout(self, call_id: str) -> None:
        dialog = self.dialogs.get(call_id)
        if dialog is not None and not dialog.acked:
            self.counters["ack_missing"] += 1
            self._spawn(self._end_dialog(call_id, "no ACK for the INVITE's answer", send_bye=False))

    def _on_ack(self, req: sip.SipRequest, source: tuple[str, int]) -> None:
        dialog = self.dialogs.get(req.call_id)
        if dialog is None or dialog.acked:
            return  # an ACK for a refused INVITE, or a repeated one: nothing to do
        dialog.acked = True
        if dialog.timer is not None:
            dialog.timer.cancel()
        dialog.session.start()
        log.info("GB28181: streaming %s to %s:%d (%s)", dialog.channel.camera_id, *dialog.session.dest,
                 dialog.session.mode)

    def _on_bye(self, req: sip.SipRequest, source: tuple[str, int]) -> None:
        if req.call_id not in self.dialogs:
            self._answer(req, source, 481, to_tag=None)
            return
        self._answer(req, source, 200, to_tag=None)
        self._spawn(self._end_dialog(req.call_id, "BYE from the platform", send_bye=False))

    def _on_media_end(self, session: MediaSession, reason: str) -> None:
        call_id = next((c for c, d in self.dialogs.items() if d.session is session), None)
        if call_id is not None:
            log.warning("GB28181: stream %s ended: %s", call_id, reason)
            self._spawn(self._end_dialog(call_id, reason, send_bye=True))

    async def _end_dialog(self, call_id: str, reason: str, send_bye: bool) -> None:
        dialog = self.dialogs.pop(call_id, None)
        if dialog is None:
            return
        if dialog.timer is not None:
            dialog.timer.cancel()
        await dialog.session.stop()
        self.counters["streams_ended"] += 1
        if send_bye and self.registered:
            bye = sip.build_request("BYE", dialog.remote_target, via=self._via(), from_addr=dialog.local,
                                    to_addr=dialog.remote, call_id=call_id, cseq=self._next_cseq(),
                                    extra=[("User-Agent", USER_AGENT)])
            await self.transport.request(bye, self.cfg.response_timeout_s, to=self._target_addr(dialog.remote_target))

    def _target_addr(self, uri: str) -> Optional[tuple[str, int]]:
        """Where an in-dialog request goes over UDP: the platform's Contact when it names an
        address of the platform's host, else the platform's SIP address."""
        target = sip.parse_uri(uri)
        if target.host == self.transport.platform_ip:
            return target.host, target.port or 5060
        return None

    async def _stop_streams(self, reason: str) -> None:
        for call_id in list(self.dialogs):
            await self._end_dialog(call_id, reason, send_bye=False)
