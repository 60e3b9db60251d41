"""Broker URLs and paho-mqtt clients, set up the same way everywhere.

A URL may name several brokers, the nodes of a cluster, as libpq does hosts:
`mqtt://user:pass@host1:1883,host2:1883,host3:1883`. A client then connects to the first and,
each time it has to connect again (the connection failed or was lost), to the next one."""

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


def parse_broker_urls(url: str, *, schemes: tuple[str, ...] = ("mqtt", "tcp"),
                      default_port: int = 1883) -> list[BrokerAddress]:
    """Every broker `url` names (`scheme://[user:pass@]host[:port][,host[:port]...]`), in order;
    raises ValueError naming what is wrong."""
    u = urlparse(url)
    if u.scheme not in schemes:
        raise ValueError(f"broker URL {url!r}: scheme must be {' or '.join(s + '://' for s in schemes)}")
    creds, _, hosts = u.netloc.rpartition("@")
    user, _, password = creds.partition(":")
    out = []
    for part in hosts.split(","):
        host, sep, port = part.rpartition(":") if not part.endswith("]") else (part, "", "")
        if not sep:
            host, port = part, ""
        host = host.strip("[]")
        if not host:
            raise ValueError(f"broker URL {url!r}: no host")
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"broker URL {url!r}: port {port!r} is not a number from 1 to 65535")
        out.append(BrokerAddress(host, int(port) if port else default_port, unquote(user) if user else None,
                                 unquote(password) if password else None))
    return out


def parse_broker_url(url: str) -> BrokerAddress:
    """The first broker of `url` (all of them are checked)."""
    return parse_broker_urls(url)[0]


class FailoverClient(mqtt.Client):
    """A paho client that goes to the next of several brokers each time it connects again."""

    def __init__(self, *args, addresses: list[BrokerAddress], **kwargs):
        super().__init__(*args, **kwargs)
        self._addresses = addresses
        self._attempts = 0

    def reconnect(self) -> mqtt.MQTTErrorCode:
        addr = self._addresses[self._attempts % len(self._addresses)]
        self._attempts += 1
        # paho reads the address when it opens the socket; its setters refuse while it is connecting.
        self._host, self._port = addr.host, addr.port
        return super().reconnect()


def make_client(url: str, client_id: str | None = None, *, v5: bool = False,
                clean: bool = True) -> tuple[mqtt.Client, BrokerAddress]:
    """A paho client for `url`, not yet connected. MQTT 3.1.1 unless `v5`
    (shared subscriptions need v5; the embedded broker speaks only 3.1.1)."""
    addresses = parse_broker_urls(url)
    addr = addresses[0]
    cid = client_id or f"cg-{os.getpid()}-{next(_client_counter)}"
    cls, extra = (FailoverClient, {"addresses": addresses}) if len(addresses) > 1 else (mqtt.Client, {})
    if v5:
        client = cls(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5, **extra)
    else:
        client = cls(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv311, clean_session=clean,
                     **extra)
    if addr.username:
        client.username_pw_set(addr.username, addr.password)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(min_delay=0.2, max_delay=5)
    return client, addr
