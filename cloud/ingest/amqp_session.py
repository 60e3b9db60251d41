"""Ingest from a RabbitMQ cluster: the gateways publish MQTT to any node (its MQTT plugin routes
each message to the `amq.topic` exchange, `/` becoming `.`), and a quorum queue bound there,
replicated on every node, holds the uplink until an ingest worker acknowledges it. Workers are
competing consumers of that queue over AMQP 0-9-1 (pika): RabbitMQ 3.10's MQTT plugin speaks
3.1.1 only, without shared subscriptions.

`AmqpSession` and MqttSession (cloud.ingest.session) share cloud.ingest.broker_session, so
IngestConsumer uses either:
a message stays unacknowledged until `ack(tag, generation)` and `flush_acks()` after its commit;
a lost connection returns every unacknowledged message to the queue for the next consumer."""

from __future__ import annotations

import logging
from typing import Any, Callable
from urllib.parse import unquote, urlparse

import pika
import pika.exceptions

from cloud.ingest.broker_session import BrokerSession
from contracts.topics import UP_WILDCARD
from wire.mqtt_client import parse_broker_urls

log = logging.getLogger("careguard.cloud.amqp_session")

INGEST_QUEUE = "cg.ingest"
# The uplink topic filter as an AMQP topic binding: MQTT's `+` is AMQP's `*`, `#` is `#`.
INGEST_BINDING = UP_WILDCARD.replace("/", ".").replace("+", "*")


def connection_parameters(url: str, client_id: str) -> list[pika.ConnectionParameters]:
    """One set of parameters per node of `amqp://user:pass@host1:5672,host2:5672/vhost`."""
    u = urlparse(url)
    vhost = unquote(u.path[1:]) if len(u.path) > 1 else "/"
    return [pika.ConnectionParameters(
        host=a.host, port=a.port, virtual_host=vhost,
        credentials=pika.PlainCredentials(a.username or "guest", a.password or "guest"),
        heartbeat=30, blocked_connection_timeout=60, connection_attempts=1, socket_timeout=10,
        client_properties={"connection_name": client_id})
        for a in parse_broker_urls(f"{u.scheme}://{u.netloc}", schemes=("amqp",), default_port=5672)]


class AmqpSession(BrokerSession):
    """Consumes the ingest queue and calls `on_message(topic, payload, tag, qos)` on its thread.
    `prefetch` bounds the messages delivered and not yet acknowledged, like MQTT's in-flight window."""

    LOST = (pika.exceptions.AMQPError, OSError)
    transport = "amqp"

    def __init__(self, amqp_url: str, client_id: str, on_message: Callable[[str, bytes, int, int], None], *,
                 prefetch: int = 2000):
        super().__init__(client_id, on_message, log)
        self.params = connection_parameters(amqp_url, client_id)
        self.amqp_url = amqp_url
        self.prefetch = prefetch
        self._conn: pika.BlockingConnection | None = None

    def _drop(self) -> None:
        # The queue takes back what was unacknowledged.
        conn = self._conn
        if conn is not None:
            self._call(conn, conn.close)

    def _ended(self) -> None:
        self._conn = None
        self.connected.clear()
        self.subscribed.clear()

    def _send_acks(self, tags: list[int], link: Any) -> None:
        if link is None:
            return  # the queue delivers them again; the envelope id makes that a duplicate
        conn, channel = link

        def send() -> None:
            for tag in tags:
                channel.basic_ack(tag)

        self._call(conn, send)

    @staticmethod
    def _call(conn: pika.BlockingConnection, fn: Callable[[], None]) -> None:
        """Run `fn` on the connection's own thread (pika's connections are not thread-safe)."""
        try:
            conn.add_callback_threadsafe(fn)
        except (pika.exceptions.AMQPError, RuntimeError, AttributeError) as exc:
            log.debug("amqp call dropped: %s", exc)

    def _session(self) -> None:
        # Start with the next node each time: the last one may be the one that went away.
        start = self._attempts % len(self.params)
        self._attempts += 1
        conn = pika.BlockingConnection(self.params[start:] + self.params[:start])
        try:
            channel = conn.channel()
            channel.basic_qos(prefetch_count=self.prefetch)
            channel.queue_declare(INGEST_QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
            channel.queue_bind(INGEST_QUEUE, "amq.topic", routing_key=INGEST_BINDING)
            self._new_generation((conn, channel))
            self._conn = conn
            self.connected.set()
            channel.basic_consume(INGEST_QUEUE, self._deliver)
            self.subscribed.set()
            log.info("ingest %s consuming %s from %s:%d", self.client_id, INGEST_QUEUE, conn._impl.params.host,
                     conn._impl.params.port)
            while not self._stopping.is_set() and conn.is_open:
                conn.process_data_events(time_limit=0.5)
            if conn.is_open:
                self.flush_acks()
                conn.process_data_events(time_limit=0)
        finally:
            if conn.is_open:
                try:
                    conn.close()
                except pika.exceptions.AMQPError:
                    pass

    def _deliver(self, channel, method, properties, body: bytes) -> None:
        # The MQTT plugin wrote the topic as a routing key, `/` as `.`; facility ids hold no `.`.
        self.on_message(method.routing_key.replace(".", "/"), body, method.delivery_tag, 1)
        self.flush_acks()
