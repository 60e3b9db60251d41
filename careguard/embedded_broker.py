"""The in-process MQTT broker (amqtt) for `make run`: no Mosquitto to install.

It speaks MQTT 3.1.1 only (no shared subscriptions), so the cloud subscribes plainly
when it runs on it. It runs on a thread of its own with its own event loop, so it
neither slows nor is slowed by the code that embeds it."""

from __future__ import annotations

import asyncio
import logging
import threading

from amqtt.broker import Broker

from testing.services import LOOPBACK, free_port


class EmbeddedBroker:
    def __init__(self, port: int | None = None, host: str = LOOPBACK):
        self.host = host
        self.port = port or free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="embedded-broker", daemon=True)
        self._broker: Broker | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> "EmbeddedBroker":
        # amqtt logs every connection at INFO; keep the console for what matters.
        logging.getLogger("amqtt").setLevel(logging.WARNING)
        self._thread.start()
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

        async def _start() -> None:
            self._broker = Broker(config)
            await self._broker.start()

        asyncio.run_coroutine_threadsafe(_start(), self._loop).result(timeout=15)
        return self

    def stop(self) -> None:
        if self._broker is not None:
            asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(timeout=15)
            self._broker = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
