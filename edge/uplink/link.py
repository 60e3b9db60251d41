"""The uplink to the cloud's broker: drains the outbox, deletes a message only on PUBACK.

A PUBACK marks a row acked; it is kept for a replay window and sent again after a lost
connection, because a broker can lose what it had acknowledged (edge/outbox.py says why).
Paho keeps QoS 1 messages it has sent and resends them after a reconnect, so a row stays
"in flight" (by MQTT message id) until its PUBACK, across broker restarts; rows not yet
handed to paho (after an agent restart, say) are picked up by the next drain. Duplicates
can reach the cloud after a reconnect: the cloud is idempotent on envelope id.

The gateway's status is retained, with a last will: the cloud sees `offline` when the
gateway vanishes without saying goodbye."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

import paho.mqtt.client as mqtt

from wire.mqtt_client import make_client
from contracts import topics
from contracts.envelope import Envelope, make_envelope, parse_envelope
from contracts.errors import ContractError
from contracts.reject_log import RejectLog
from edge.alarms.journal import Journal
from edge.config import DEFAULT_TELEMETRY_BURST, DEFAULT_TELEMETRY_PER_S
from edge.uplink.outbox import Priority
from wire.token_bucket import TokenBucket

log = logging.getLogger("careguard.edge.uplink")

IN_FLIGHT_WINDOW = 200
# How long an acked message is kept to be sent again after a lost connection: longer than
# a broker's autosave interval plus its delivery time to a subscriber (see edge/outbox.py).
REPLAY_WINDOW_S = 15.0


class Uplink:
    def __init__(self, broker_url: str, facility_id: str, journal: Journal, loop: asyncio.AbstractEventLoop,
                 on_down: Callable[[Envelope], None], on_down_rejected: Callable[[str, str], None] | None = None,
                 telemetry_pace: TokenBucket | None = None):
        self.facility = facility_id
        # Telemetry leaves at most at this pace (alarms, events and status never wait): the backlog
        # after an outage then passes the cloud's per-facility throttle instead of being dropped
        # there (edge/config.py UplinkConfig.telemetry_per_s).
        self.telemetry_pace = telemetry_pace or TokenBucket(DEFAULT_TELEMETRY_PER_S, DEFAULT_TELEMETRY_BURST)
        self._paced: asyncio.TimerHandle | None = None
        self._reject_log = RejectLog(log, "rejected down message on %s: %s")
        self.journal = journal
        self.loop = loop
        self.on_down = on_down
        self.on_down_rejected = on_down_rejected  # (topic, reason) of each down message refused here
        self.in_flight: dict[int, int] = {}  # MQTT mid -> outbox seq
        self.published = 0
        self.acked = 0
        self.down_rejected = 0
        self.stray = 0
        self._down_filter = topics.down_all(facility_id)
        self.connected = False
        self.replayed = 0
        self._lost_at: float | None = None
        self.ever_connected = asyncio.Event()
        self.down_subscribed = asyncio.Event()  # the SUBACK of the down topics: cloud commands now reach us
        self._acked_seqs: list[int] = []
        self._flush_scheduled = False
        self._last_purge = 0.0
        self.client, self.addr = make_client(broker_url, f"edge-{facility_id}", clean=False)
        self.client.max_inflight_messages_set(IN_FLIGHT_WINDOW)
        self.client.will_set(topics.up(facility_id, topics.Stream.STATUS), self._status(False), qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._to_loop(self.down_subscribed.set)
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message

    def _status(self, online: bool) -> bytes:
        return make_envelope(self.facility, "status.gateway", {"state": "online" if online else "offline"}).to_bytes()

    def start(self) -> None:
        self.client.connect_async(self.addr.host, self.addr.port, keepalive=10)
        self.client.loop_start()

    def stop(self) -> None:
        """A clean goodbye: the retained status says offline on purpose."""
        if self._paced is not None:
            self._paced.cancel()
            self._paced = None
        if self.connected:
            info = self.client.publish(topics.up(self.facility, topics.Stream.STATUS), self._status(False), qos=1,
                                       retain=True)
            try:
                info.wait_for_publish(timeout=2)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    def publish_direct(self, env: Envelope, qos: int = 0) -> None:
        """For state, not facts (heartbeats): sent only when connected, never buffered."""
        if self.connected:
            self.client.publish(topics.up(self.facility, env.stream), env.to_bytes(), qos=qos)

    def publish_live(self, camera_id: str, payload: bytes) -> bool:
        """A live view frame, QoS 0 outside the durable path: dropped, not queued, while disconnected."""
        if not self.connected:
            return False
        return self.client.publish(topics.live(self.facility, camera_id), payload, qos=0).rc == 0

    def kick(self) -> None:
        """Hand paho the next rows of the outbox, up to the in-flight window."""
        if not self.connected:
            return
        room = IN_FLIGHT_WINDOW - len(self.in_flight)
        if room <= 0:
            return
        items = self.journal.outbox.next_batch(room, exclude=set(self.in_flight.values()) | set(self._acked_seqs))
        for item in items:
            # Rows come by priority: once telemetry must wait, so does everything after it.
            if item.priority == Priority.TELEMETRY and not self.telemetry_pace.take():
                if self._paced is None:
                    self._paced = self.loop.call_later(self.telemetry_pace.wait_s(), self._paced_kick)
                break
            info = self.client.publish(item.topic, item.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
                log.warning("publish of outbox row %d failed: %s", item.seq, mqtt.error_string(info.rc))
                break
            self.in_flight[info.mid] = item.seq
            self.published += 1

    def _paced_kick(self) -> None:
        self._paced = None
        self.kick()

    # --- paho callbacks (paho's thread): hand over to the loop ---------------------------
    def _to_loop(self, fn, *args) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # the loop has closed: the agent is stopping, the outbox keeps what was not acked

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("uplink broker refused connection: %s", reason_code)
            return
        client.subscribe(self._down_filter, qos=1)
        client.publish(topics.up(self.facility, topics.Stream.STATUS), self._status(True), qos=1, retain=True)
        self._to_loop(self._connected_changed, True)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        # A fresh will for the next connection: the cloud is idempotent on envelope id, so a
        # will reused across connections would be dropped there as a duplicate.
        client.will_set(topics.up(self.facility, topics.Stream.STATUS), self._status(False), qos=1, retain=True)
        self._to_loop(self._connected_changed, False)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._to_loop(self._on_puback, mid)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        if not mqtt.topic_matches_sub(self._down_filter, msg.topic):
            # Not bad input but a broker fault: amqtt hands a connecting client the retained
            # messages of every client's subscriptions. Counted, not acted on.
            self.stray += 1
            return
        self._to_loop(self._on_down_message, msg.topic, msg.payload)

    # --- on the loop ---------------------------------------------------------------------
    def _connected_changed(self, up: bool) -> None:
        if up == self.connected:
            return
        self.connected = up
        if up:
            log.info("uplink connected to %s:%d", self.addr.host, self.addr.port)
            self.ever_connected.set()
            if self._lost_at is not None:
                with self.journal.transaction(durable=False):
                    n = self.journal.outbox.replay_since(self._lost_at - REPLAY_WINDOW_S)
                self.replayed += n
                if n:
                    log.info("replaying %d messages acked just before the connection was lost", n)
            self.kick()
        else:
            self._lost_at = time.time()
            log.warning("uplink disconnected; outbox holds %d", self.journal.outbox.count())

    def _on_puback(self, mid: int) -> None:
        seq = self.in_flight.pop(mid, None)
        if seq is None:
            return  # the status message or a heartbeat
        self.acked += 1
        self._acked_seqs.append(seq)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush_acked)

    def _flush_acked(self) -> None:
        self._flush_scheduled = False
        seqs, self._acked_seqs = self._acked_seqs, []
        now = time.time()
        # Losing this update in a power cut costs a duplicate, which the cloud absorbs: no fsync.
        with self.journal.transaction(durable=False):
            self.journal.outbox.mark_acked(seqs, now)
            if now - self._last_purge > REPLAY_WINDOW_S:
                self.journal.outbox.purge_acked(now - REPLAY_WINDOW_S)
                self._last_purge = now
        self.kick()

    def _on_down_message(self, topic: str, payload: bytes) -> None:
        try:
            facility, _kind = topics.parse_down_topic(topic)
            env = parse_envelope(payload, expect_facility=self.facility)
            if facility != self.facility:
                raise ContractError(f"down topic for facility {facility!r}")
        except ContractError as exc:
            self.down_rejected += 1
            self._reject_log("down", topic, exc.reason)
            if self.on_down_rejected is not None:
                self.on_down_rejected(topic, exc.reason)
            return
        self.on_down(env)
