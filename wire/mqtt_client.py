"""Broker URLs and paho-mqtt clients, set up the same way everywhere."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

import paho.mqtt.client as mqtt

_client_counter = itertools.count(1)


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None


def parse_broker_url(url: str) -> BrokerAddress:
    """`mqtt://[user:pass@]host[:port]`; raises ValueError naming what is wrong."""
    u = urlparse(url)
    if u.scheme not in ("mqtt", "tcp"):
        raise ValueError(f"broker URL {url!r}: scheme must be mqtt://")
    if not u.hostname:
        raise ValueError(f"broker URL {url!r}: no host")
    return BrokerAddress(u.hostname, u.port or 1883,
                         unquote(u.username) if u.username else None,
                         unquote(u.password) if u.password else None)


def make_client(url: str, client_id: str | None = None, *, v5: bool = False,
                clean: bool = True) -> tuple[mqtt.Client, BrokerAddress]:
    """A paho client for `url`, not yet connected. MQTT 3.1.1 unless `v5`
    (shared subscriptions need v5; the embedded broker speaks only 3.1.1)."""
    addr = parse_broker_url(url)
    cid = client_id or f"cg-{os.getpid()}-{next(_client_counter)}"
    if v5:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
    else:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv311,
                             clean_session=clean)
    if addr.username:
        client.username_pw_set(addr.username, addr.password)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(min_delay=0.2, max_delay=5)
    return client, addr
