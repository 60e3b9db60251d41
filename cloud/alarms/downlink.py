"""Cloud-to-gateway messages (`cg/v1/fac/{F}/down/{kind}`), published QoS 1, each signed.

Every envelope is signed with the cloud's Ed25519 key (cloud/alarms/signing_key.py) just before
it goes out, so a gateway that pins the public key can tell the cloud's commands from those of
anyone else who can publish on its down topic (a leaked credential, a compromised broker).
A message published while the broker is unreachable stays queued in the client and goes out
on reconnect; `publish` reports whether the broker has confirmed it yet."""

from __future__ import annotations

import logging

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts.envelope import Envelope
from contracts.topics import DownKind, down
from wire.envelope_signing import sign
from wire.mqtt_client import make_client

log = logging.getLogger("careguard.cloud.downlink")


class Downlink:
    def __init__(self, broker_url: str, signing_key: Ed25519PrivateKey, client_id: str | None = None):
        self._client, self._addr = make_client(broker_url, client_id)
        self._key = signing_key

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
        info = self._client.publish(topic, sign(env, self._key).to_bytes(), qos=1)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            log.warning("down message %s on %s not queued: %s", env.id, topic, exc)
            return False
        if not info.is_published():
            log.warning("down message %s on %s not confirmed within %.1fs; it stays queued", env.id, topic, timeout)
        return info.is_published()
