"""A lean MQTT subscriber session for ingest: one socket, one reader thread, manual acks.

paho reads a packet with a select and three recv calls and wakes its loop for every ack; at
thousands of messages a second that was about 40 % of an ingest worker's CPU. Here one recv
takes up to 256 KiB (hundreds of envelopes under load), the codec (wire.mqtt_codec) splits it,
and the PUBACKs a writer commit releases go out in one sendall.

`mqtts://` wraps the socket in TLS (wire.mqtt_client.tls_context: CA pinned, client certificate
when given). An SSL connection may not be read and written from two threads at once, so the
reader thread alone touches the socket: other threads queue what to send and wake it through a
socket pair."""

from __future__ import annotations

import logging
import select
import socket
import ssl
import threading
import time
from typing import Callable

from cloud.ingest.broker_session import BrokerSession
from wire import mqtt_codec as codec
from wire.mqtt_client import parse_broker_urls, redact_url, tls_context

log = logging.getLogger("careguard.cloud.mqtt_session")

RECV_BYTES = 256 * 1024
CONNECT_TIMEOUT_S = 10.0


class MqttSession(BrokerSession):
    """Subscribes `topic` at QoS 1 on a persistent session and calls
    `on_message(topic, payload, mid, qos)` on its reader thread. A QoS 1 message stays
    unacknowledged until `ack(mid, generation)`; `flush_acks()` sends what was acked since the
    last flush (cloud.ingest.broker_session)."""

    LOST = (OSError, codec.MqttProtocolError)
    transport = "mqtt"

    def __init__(self, broker_url: str, client_id: str, topic: str, on_message: Callable[[str, bytes, int, int], None],
                 *, v5: bool, session_expiry_s: int = 0, keepalive_s: int = 30, max_packet_bytes: int):
        super().__init__(client_id, on_message, log)
        # Several brokers (a cluster's nodes): each new connection goes to the next.
        self.addrs = parse_broker_urls(broker_url)
        self.addr = self.addrs[0]
        self.broker_url = redact_url(broker_url)  # for logs; the credentials stay in `addr`
        self.topic = topic
        self.v5 = v5
        self.session_expiry_s = session_expiry_s
        self.keepalive_s = keepalive_s
        self.max_packet_bytes = max_packet_bytes
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None  # the thread that owns `_sock`
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)
        self._out: list[bytes] = []  # queued by other threads for the reader to send
        self._out_lock = threading.Lock()
        self._goodbye: bool | None = None  # a close asked for by another thread: with DISCONNECT?
        self._last_sent = 0.0

    def stop(self, timeout: float = 10.0) -> None:
        """Send what was acked, say goodbye (the session stays on the broker), end the thread."""
        super().stop(timeout)
        self._wake_r.close()
        self._wake_w.close()

    def _where(self) -> str:
        return self.broker_url

    def _interrupt(self) -> None:
        self._close(goodbye=True)

    def _drop(self) -> None:
        self._close(goodbye=True)

    def _ended(self) -> None:
        self._close(goodbye=False)

    def _send_acks(self, tags: list[int], link: socket.socket | None) -> None:
        self._send(b"".join(codec.encode_puback(m) for m in tags), link)

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # already awake, or closing

    def _send(self, data: bytes, only_on: socket.socket | None = None) -> None:
        """Send `data` (from the reader thread) or queue it for the reader; `only_on`: drop it
        unless that is still the connection (PUBACKs: a packet id means nothing on another)."""
        if self._sock is None or (only_on is not None and only_on is not self._sock):
            return  # unsent acks are harmless: the broker redelivers, the envelope id deduplicates
        if threading.current_thread() is not self._reader:
            with self._out_lock:
                # Checked again under the lock a close takes to discard what is queued.
                if only_on is not None and only_on is not self._sock:
                    return
                self._out.append(data)
            self._wake()
            return
        try:
            self._sock.sendall(data)
            self._last_sent = time.monotonic()
        except OSError as exc:
            # Part of a packet may have gone out: the stream is out of step, start a new connection.
            raise ConnectionError(f"mqtt send to {self.broker_url} failed: {exc}") from None

    def _close(self, goodbye: bool) -> None:
        """Close the connection: at once on the reader thread, else by asking the reader."""
        if threading.current_thread() is not self._reader:
            if self._sock is not None:
                self._goodbye = goodbye
                self._wake()
            return
        sock, self._sock = self._sock, None
        self.connected.clear()
        self.subscribed.clear()
        with self._out_lock:
            out, self._out = self._out, []
        if sock is None:
            return
        try:
            if goodbye:
                sock.sendall(b"".join(out) + codec.encode_disconnect(v5=self.v5))
        except OSError:
            pass
        sock.close()

    def _run(self) -> None:
        self._reader = threading.current_thread()
        super()._run()

    def _connect(self) -> socket.socket:
        self.addr = self.addrs[self._attempts % len(self.addrs)]
        self._attempts += 1
        sock = socket.create_connection((self.addr.host, self.addr.port), timeout=CONNECT_TIMEOUT_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.addr.tls:
            try:
                sock = tls_context(self.addr).wrap_socket(sock, server_hostname=self.addr.host)
            except (ssl.SSLError, OSError):
                sock.close()
                raise
        return sock

    def _drain_wakeups(self, sock: socket.socket) -> None:
        """What other threads asked for: a close, or bytes to send."""
        try:
            while self._wake_r.recv(4096, socket.MSG_DONTWAIT):
                pass
        except (BlockingIOError, OSError):
            pass
        goodbye, self._goodbye = self._goodbye, None
        if goodbye is not None:
            self._close(goodbye)
            return
        with self._out_lock:
            out, self._out = self._out, []
        if out:
            self._send(b"".join(out))

    def _session(self) -> None:
        """One connection, from CONNECT until it ends; returns when closed on purpose."""
        sock = self._connect()
        decoder = codec.Decoder(v5=self.v5, max_packet_bytes=self.max_packet_bytes)
        self._new_generation(sock)
        with self._out_lock:
            self._out.clear()
        self._goodbye = None
        self._sock = sock
        if self._stopping.is_set():
            self._close(goodbye=False)
            return
        self._send(codec.encode_connect(self.client_id, v5=self.v5, keepalive_s=self.keepalive_s, clean=False,
                                        session_expiry_s=self.session_expiry_s if self.v5 else 0,
                                        max_packet_bytes=self.max_packet_bytes if self.v5 else 0,
                                        username=self.addr.username, password=self.addr.password))
        # Bounded: a TLS record cut off mid-way must not hold the reader for ever.
        sock.settimeout(self.keepalive_s)
        # Wake at least twice per keepalive interval to ping; a broker silent for 1.5 intervals is gone.
        wait_s = self.keepalive_s / 2
        last_heard = time.monotonic()
        handshake = True
        tls = isinstance(sock, ssl.SSLSocket)
        while self._sock is sock:
            # TLS may hold decrypted bytes the kernel no longer shows as readable.
            ready = [sock] if tls and sock.pending() else select.select([sock, self._wake_r], [], [], wait_s)[0]
            if self._wake_r in ready:
                self._drain_wakeups(sock)
                if self._sock is not sock:
                    return  # closed on purpose (stop, reconnect)
            data = None
            if sock in ready:
                data = sock.recv(RECV_BYTES)
            now = time.monotonic()
            if data is not None:
                if not data:
                    raise ConnectionError("broker closed the connection")
                last_heard = now
                for packet in decoder.feed(data):
                    if type(packet) is codec.Publish:
                        self.on_message(packet.topic, packet.payload, packet.packet_id, packet.qos)
                    elif handshake and type(packet) is codec.ConnAck:
                        if packet.reason_code:
                            raise ConnectionError(f"broker refused the connection: reason code {packet.reason_code}")
                        handshake = False
                        self.connected.set()
                        log.info("ingest connected to %s (session present: %s), subscribing %s", self.broker_url,
                                 packet.session_present, self.topic)
                        self._send(codec.encode_subscribe(1, self.topic, 1, v5=self.v5))
                    else:
                        self._control(packet)
                # Acks of messages refused on this thread; the writer flushes its own after each commit.
                self.flush_acks()
            elif now - last_heard > self.keepalive_s * 1.5:
                raise ConnectionError(f"no word from the broker for {now - last_heard:.0f} s")
            if not handshake and now - self._last_sent >= self.keepalive_s / 2:
                self._send(codec.encode_pingreq())

    def _control(self, packet: codec.Packet) -> None:
        if type(packet) is codec.SubAck:
            if all(rc < 0x80 for rc in packet.reason_codes):
                self.subscribed.set()
            else:
                log.error("ingest: subscription to %s refused: %s", self.topic, packet.reason_codes)
        elif type(packet) is codec.Disconnect:
            raise ConnectionError(f"broker disconnected: reason code {packet.reason_code}")
        elif type(packet) is codec.ConnAck:
            raise codec.MqttProtocolError("a second CONNACK on one connection")
