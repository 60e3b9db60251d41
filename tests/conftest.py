"""Shared fixtures: real services on free loopback ports, stopped when the test ends."""

from __future__ import annotations

import json
import threading

import pytest

from wire.mqtt_client import make_client
from contracts import topics

from testing.services import Mosquitto, postgres, victoria_metrics


def _broker(workdir):
    workdir.mkdir()
    broker = Mosquitto(workdir=str(workdir)).start()
    yield broker
    broker.close()


@pytest.fixture
def mosquitto(tmp_path):
    """A fresh anonymous Mosquitto for one test (restartable with `.restart()`)."""
    yield from _broker(tmp_path / "mosq")


@pytest.fixture
def uplink_broker(tmp_path):
    """A second one, for the cloud side, where `mosquitto` is the gateway's local broker."""
    yield from _broker(tmp_path / "up")


@pytest.fixture(scope="session")
def pg_url():
    with postgres() as url:
        yield url


@pytest.fixture(scope="session")
def vm_url():
    with victoria_metrics() as url:
        yield url


class Collector:
    """A cloud stand-in on the uplink broker: records every envelope (persistent session, QoS 1,
    as the cloud's ingest subscribes)."""

    def __init__(self, url: str, client_id: str = "collector"):
        self.envelopes: list[dict] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client, addr = make_client(url, client_id, clean=False)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topics.UP_WILDCARD, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(addr.host, addr.port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.envelopes.append(json.loads(msg.payload))

    def distinct(self) -> set[str]:
        with self.lock:
            return {e["id"] for e in self.envelopes}

    def of_type(self, type_: str) -> list[dict]:
        with self.lock:
            return [e for e in self.envelopes if e["type"] == type_]

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def collector_factory():
    made: list[Collector] = []

    def make(url: str, client_id: str = "collector") -> Collector:
        """A collector whose subscription is in place (the broker's SUBACK) when it is returned."""
        made.append(Collector(url, client_id))
        assert made[-1].subscribed.wait(10), f"no SUBACK from {url}"
        return made[-1]

    yield make
    for c in made:
        c.stop()
