"""What both ingest sessions share (MQTT: cloud.ingest.session, AMQP: cloud.ingest.amqp_session):
a thread that connects again and again with a bounded backoff, and acknowledgements held until
the writer's commit releases them.

A message's tag (MQTT packet id, AMQP delivery tag) means something only on the connection that
delivered it: `generation` counts connections, an ack of an older generation is dropped (the
broker redelivers, the envelope id makes that a duplicate), and a flush sends its tags only on
the connection they were taken with."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from typing import Any, Callable

BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 5.0


class BrokerSession(ABC):
    """Calls `on_message(topic, payload, tag, qos)` on its own thread. A message stays
    unacknowledged until `ack(tag, generation)` and the next `flush_acks()`.

    A transport implements the abstract methods below; `LOST` names the errors of a lost
    connection (logged as such, the backoff grows), anything else is logged as a bug."""

    LOST: tuple[type[BaseException], ...] = (OSError,)
    transport = "broker"

    def __init__(self, client_id: str, on_message: Callable[[str, bytes, int, int], None], log: logging.Logger):
        self.client_id = client_id
        self.on_message = on_message
        self.log = log
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.generation = 0
        self._acks: list[int] = []
        self._acks_lock = threading.Lock()
        self._link: Any = None  # the connection this generation's tags belong to
        self._stopping = threading.Event()
        self._pause_s = 0.0  # before the next connection attempt, set by reconnect()
        self._attempts = 0  # connections started: each goes to the next of several brokers
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"cloud-ingest-{self.transport}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Send what was acked, end the connection and the thread."""
        self._stopping.set()
        self.flush_acks()
        self._interrupt()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread = None

    def reconnect(self, pause_s: float) -> None:
        """Drop the connection and connect again after `pause_s`: the broker then redelivers every
        message left unacknowledged."""
        self._pause_s = pause_s
        self._drop()

    def ack(self, tag: int, generation: int) -> None:
        # Checked under the lock that a new connection takes to start its generation.
        with self._acks_lock:
            if tag and generation == self.generation:
                self._acks.append(tag)

    def flush_acks(self) -> None:
        with self._acks_lock:
            if not self._acks:
                return
            tags, self._acks = self._acks, []
            link = self._link
        self._send_acks(tags, link)

    def _new_generation(self, link: Any) -> None:
        """A connection starts: acks of the last one are void, new tags belong to `link`."""
        with self._acks_lock:
            self._acks.clear()
            self.generation += 1
            self._link = link

    def _run(self) -> None:
        backoff = BACKOFF_MIN_S
        while not self._stopping.is_set():
            pause, self._pause_s = self._pause_s, 0.0
            if pause and self._stopping.wait(pause):
                return
            lost: BaseException | None = None
            try:
                self._session()
                backoff = BACKOFF_MIN_S
                continue
            except self.LOST as exc:
                lost = exc
            except Exception:  # the session must outlive any bug in one message's handling
                self.log.exception("ingest %s session failed; reconnecting", self.transport)
            finally:
                with self._acks_lock:
                    self._link = None
                self._ended()
            if self._stopping.is_set():
                return
            if lost is not None:
                self.log.warning("ingest %s connection (%s) lost: %s; reconnecting in %.1f s", self.transport,
                                 self._where(), lost, backoff)
            if self._stopping.wait(backoff):
                return
            if lost is not None:
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _where(self) -> str:
        """The connection, for logs (never with credentials)."""
        return self.client_id

    def _interrupt(self) -> None:
        """Make the session's thread see `_stopping` at once (by default it polls often enough)."""

    @abstractmethod
    def _session(self) -> None:
        """One connection, from connecting until it ends: returns when closed on purpose (stop,
        reconnect), raises one of `LOST` when the connection is lost. Calls `_new_generation`
        once connected, before the first message."""

    @abstractmethod
    def _ended(self) -> None:
        """Clean up after `_session` (on its thread), however it ended."""

    @abstractmethod
    def _drop(self) -> None:
        """End the current connection, from any thread."""

    @abstractmethod
    def _send_acks(self, tags: list[int], link: Any) -> None:
        """Acknowledge `tags` on `link`, the connection they came from, from any thread; drop them
        if that connection is gone."""
