"""The in-process MQTT broker (amqtt) for `make run`: no Mosquitto to install.

It speaks MQTT 3.1.1 only (no shared subscriptions), so the cloud subscribes plainly
when it runs on it. It runs on a thread of its own with its own event loop, so it
neither slows nor is slowed by the code that embeds it.

Given a facility's provisioned logins (edge/broker_auth.py) it enforces them as the facility's
Mosquitto would, through amqtt's own plugins: a password file (argon2: amqtt does not read
Mosquitto's PBKDF2 hashes) and publish/subscribe ACLs. One gap remains: amqtt publishes a
client's last will without checking the ACL, so a device could set its will on another
device's status topic and fake that device going offline (a device fault, never a press).
And unlike Mosquitto, amqtt hands a message queued for a persistent session flagged as retained
when it was published retained: a press published retained (Zigbee2MQTT's `retain: true`)
while the agent was away counts there as an old one and raises nothing."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path
from typing import Optional

from amqtt.broker import Broker
from pwdlib.hashers.argon2 import Argon2Hasher

from testing.services import LOOPBACK, free_port
from edge.broker_auth import Provisioned

AMQTT_PASSWORD_FILE = "amqtt-passwd"
# The passwords are random (144 bits): argon2's cost buys nothing against guessing them, while
# every CONNECT pays it; the lightest parameters keep a facility's devices connecting quickly.
_HASHER = Argon2Hasher(time_cost=1, memory_cost=8192, parallelism=1)


def amqtt_auth_plugins(auth: Provisioned) -> dict:
    """amqtt's plugin configuration for the provisioned logins; writes its password file beside
    the Mosquitto one."""
    path = Path(auth.directory) / AMQTT_PASSWORD_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.writelines(f"{u.username}:{_HASHER.hash(auth.passwords[u.username])}\n" for u in auth.users)
    return {
        "amqtt.plugins.authentication.FileAuthPlugin": {"password_file": str(path)},
        "amqtt.plugins.topic_checking.TopicAccessControlListPlugin": {
            "publish_acl": {u.username: list(u.write) for u in auth.users},
            "acl": {u.username: list(u.read) for u in auth.users},  # subscriptions
        },
    }


class EmbeddedBroker:
    def __init__(self, port: int | None = None, host: str = LOOPBACK, *, auth: Optional[Provisioned] = None):
        self.host = host
        self.port = port or free_port()
        self.auth = auth
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
            "plugins": (amqtt_auth_plugins(self.auth) if self.auth is not None
                        else {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}),
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
