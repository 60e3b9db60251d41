"""Cloud-to-gateway messages (`cg/v1/fac/{F}/down/{kind}`), published QoS 1.

A message published while the broker is unreachable stays queued in the client and goes out
on reconnect; `publish` reports whether the broker has confirmed it yet."""

from __future__ import annotations

import logging

from contracts.envelope import Envelope
from contracts.topics import DownKind, down
from wire.mqtt_client import make_client

log = logging.getLogger("careguard.cloud.downlink")


class Downlink:
    def __init__(self, broker_url: str, client_id: str | None = None):
        self._client, self._addr = make_client(broker_url, client_id)

    def start(self) -> "Downlink":
        self._client.connect_async(self._addr.host, self._addr.port, keepalive=30)
        self._client.loop_start()
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, env: Envelope, kind: DownKind, *, timeout: float = 2.0) -> bool:
        """True once the broker has acknowledged the message (PUBACK) within `timeout`."""
        topic = down(env.facility, kind)
        info = self._client.publish(topic, env.to_bytes(), qos=1)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            log.warning("down message %s on %s not queued: %s", env.id, topic, exc)
            return False
        if not info.is_published():
            log.warning("down message %s on %s not confirmed within %.1fs; it stays queued", env.id, topic, timeout)
        return info.is_published()
