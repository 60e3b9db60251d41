"""Broker URLs, their TLS context, and paho-mqtt clients, set up the same way everywhere.

`mqtt://[user:pass@]host[:1883]` in the clear (loopback and the embedded broker), or
`mqtts://[user:pass@]host[:8883][?cafile=CA.pem&certfile=CERT.pem&keyfile=KEY.pem]` over TLS:
with `cafile` only that CA is trusted (pinned), otherwise the system's; `certfile`/`keyfile`
present a client certificate (a gateway's, issued at its registration). The host name is
always checked against the broker's certificate.

A URL may name several brokers, the nodes of a cluster, as libpq does hosts:
`mqtts://user:pass@host1:8883,host2:8883,host3:8883?cafile=...`. A client then connects to the
first and, each time it has to connect again (the connection failed or was lost), to the next."""

from __future__ import annotations

import itertools
import os
import re
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

import paho.mqtt.client as mqtt

_client_counter = itertools.count(1)
_TLS_OPTIONS = ("cafile", "certfile", "keyfile")


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None


_MQTT_SCHEMES = ("mqtt", "tcp", "mqtts", "ssl")
# scheme://netloc[/path][?query]: read by hand, because urllib's check of IPv6 brackets refuses a
# list of hosts with a bracketed one after the first in some 3.11 releases and not in others.
_URL_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<netloc>[^/?#]*)[^?#]*(?:\?(?P<query>[^#]*))?")


def parse_broker_urls(url: str, *, schemes: tuple[str, ...] = _MQTT_SCHEMES,
                      default_port: int | None = None) -> list[BrokerAddress]:
    """Every broker `url` names, in order (`mqtt://` or `mqtts://` as above, or another of
    `schemes`); raises ValueError naming what is wrong (never the password)."""
    m = _URL_RE.match(url)
    scheme, netloc, query_text = (m["scheme"].lower(), m["netloc"], m["query"] or "") if m else ("", "", "")
    shown = redact_url(url)
    if scheme not in schemes:
        allowed = "mqtt:// or mqtts://" if schemes == _MQTT_SCHEMES else " or ".join(f"{s}://" for s in schemes)
        raise ValueError(f"broker URL {shown!r}: scheme must be {allowed}")
    tls = scheme in ("mqtts", "ssl")
    query = parse_qs(query_text, keep_blank_values=True)
    unknown = set(query) - set(_TLS_OPTIONS)
    if unknown:
        raise ValueError(f"broker URL {shown!r}: unknown option(s) {sorted(unknown)}; known: {list(_TLS_OPTIONS)}")
    if query and not tls:
        raise ValueError(f"broker URL {shown!r}: {sorted(query)} need mqtts://")
    opts = {k: v[-1] for k, v in query.items()}
    if ("certfile" in opts) != ("keyfile" in opts):
        raise ValueError(f"broker URL {shown!r}: certfile and keyfile go together")
    creds, _, hosts = netloc.rpartition("@")
    user, _, password = creds.partition(":")
    port_default = default_port or (8883 if tls else 1883)
    out = []
    for part in hosts.split(","):
        host, sep, port = part.rpartition(":") if not part.endswith("]") else (part, "", "")
        if not sep:
            host, port = part, ""
        host = host.strip("[]").lower()
        if not host:
            raise ValueError(f"broker URL {shown!r}: no host")
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"broker URL {shown!r}: port {port!r} is not a number from 1 to 65535")
        out.append(BrokerAddress(host, int(port) if port else port_default, unquote(user) if user else None,
                                 unquote(password) if password else None, tls, opts.get("cafile"),
                                 opts.get("certfile"), opts.get("keyfile")))
    return out


def parse_broker_url(url: str) -> BrokerAddress:
    """The first broker of `url` (all of them are checked)."""
    return parse_broker_urls(url)[0]


_USERINFO_RE = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/@:\s]*):[^@/\s]*@")
_SECRET_PARAM_RE = re.compile(r"(?P<head>[?&](?:password|pass|token|secret)=)[^&\s]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """`url` fit for a log: the password of its user info and any password/token parameter
    replaced by `***`. Every URL that may carry credentials is logged through this."""
    url = _USERINFO_RE.sub(r"\g<head>:***@", str(url))
    return _SECRET_PARAM_RE.sub(r"\g<head>***", url)


def tls_context(addr: BrokerAddress) -> ssl.SSLContext:
    """A client TLS context for `addr`: TLS 1.2 or later, the broker's name checked, its CA pinned
    when `cafile` is given, a client certificate when `certfile` is."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=addr.cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if addr.certfile:
        ctx.load_cert_chain(addr.certfile, addr.keyfile)
    return ctx


class FailoverClient(mqtt.Client):
    """A paho client that goes to the next of several brokers each time it connects again."""

    def __init__(self, *args, addresses: list[BrokerAddress], **kwargs):
        super().__init__(*args, **kwargs)
        self._addresses = addresses
        self._attempts = 0

    def reconnect(self) -> mqtt.MQTTErrorCode:
        addr = self._addresses[self._attempts % len(self._addresses)]
        self._attempts += 1
        # paho reads the address (and checks the certificate's name against it) when it opens the
        # socket; its setters refuse while it is connecting.
        self._host, self._port = addr.host, addr.port
        return super().reconnect()


def make_client(url: str, client_id: str | None = None, *, v5: bool = False,
                clean: bool = True) -> tuple[mqtt.Client, BrokerAddress]:
    """A paho client for `url`, not yet connected, over TLS for `mqtts://`. MQTT 3.1.1 unless
    `v5` (shared subscriptions need v5; the embedded broker speaks only 3.1.1)."""
    addresses = parse_broker_urls(url)
    addr = addresses[0]
    cid = client_id or f"cg-{os.getpid()}-{next(_client_counter)}"
    cls, extra = (FailoverClient, {"addresses": addresses}) if len(addresses) > 1 else (mqtt.Client, {})
    if v5:
        client = cls(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5, **extra)
    else:
        client = cls(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv311, clean_session=clean,
                     **extra)
    if addr.tls:
        client.tls_set_context(tls_context(addr))
    if addr.username:
        client.username_pw_set(addr.username, addr.password)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(min_delay=0.2, max_delay=5)
    return client, addr
