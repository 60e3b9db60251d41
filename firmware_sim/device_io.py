"""The MQTT side of simulated devices: one connection per device, and a fleet that runs many.

Each device has its own MQTT connection because the last will (`offline`, retained) belongs
to a connection: a fleet sharing one would show a single device offline when it dies. One
clock thread drives every device of a fleet; paho runs each connection's network loop."""

from __future__ import annotations

import itertools
import logging
import re
import socket
import threading
import time
from datetime import datetime, timedelta
from typing import Iterable, Optional, Self, Union
from uuid import uuid4

import paho.mqtt.client as mqtt
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from wire.mqtt_client import make_client
from contracts import topics
from contracts.device import ANALOGUE_KINDS, EVENT_KINDS, DeviceEvent, DeviceEventKind, DeviceKind, DeviceTelemetry
from contracts.ids import DEVICE_ID_RE, DeviceId
from contracts.timefmt import utcnow
from firmware_sim.button import Button
from firmware_sim.sensors import (EVENT_SENSOR_FAULTS, METRICS, AnalogueSensor, EventSensor, EventSensorKind, Fault,
                                  FaultKind)

log = logging.getLogger(__name__)

STATUS_ONLINE = "online"
STATUS_OFFLINE = "offline"
QOS = 1
# A device that hangs without closing its socket is declared dead by the broker after 1.5 × keepalive.
DEFAULT_KEEPALIVE_S = 15
# The fleet clock wakes at least this often, so scheduled door/PIR events go out within this delay.
_MAX_SLEEP_S = 0.5


class BrokerUnreachable(ConnectionError):
    pass


def initial_seq() -> int:
    """A real device keeps its seq in flash across reboots; a simulator restarted from the command
    line starts from the clock in milliseconds instead, so seq still grows per device."""
    return int(time.time() * 1000)


class MqttLink:
    """One MQTT connection of a simulated device or bridge, QoS 1 for everything it sends. With a
    `status_topic`: retained `online` on every (re)connect and the last will `offline` (retained).

    Credentials come from the broker URL (`mqtt://user:pass@host:port`) or `username`/`password`."""

    def __init__(self, broker_url: str, client_id: str, *, name: str, status_topic: Optional[str] = None,
                 online: str = STATUS_ONLINE, offline: str = STATUS_OFFLINE, keepalive: int = DEFAULT_KEEPALIVE_S,
                 username: Optional[str] = None, password: Optional[str] = None):
        self.broker_url = broker_url
        self.name = name
        self.status_topic = status_topic
        self.online_payload, self.offline_payload = online, offline
        self.keepalive = keepalive
        self._client, self._addr = make_client(broker_url, client_id)
        if username is not None:
            self._client.username_pw_set(username, password)
        self._connected = threading.Event()
        self._answered = threading.Event()  # the broker accepted or refused the CONNECT
        self._online_info: Optional[mqtt.MQTTMessageInfo] = None
        self._refusal: Optional[str] = None
        if status_topic is not None:
            self._client.will_set(status_topic, offline, qos=QOS, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refusal = str(reason_code)
            self._answered.set()
            return
        if self.status_topic is not None:
            # Also after a reconnect: the broker may have published our will in between.
            self._online_info = client.publish(self.status_topic, self.online_payload, qos=QOS, retain=True)
        self._connected.set()
        self._answered.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def connect(self, timeout: float = 5.0) -> Self:
        """Connect and, with a status topic, wait until `online` is at the broker. Raises
        BrokerUnreachable naming the broker when refused (at once: bad credentials do not get
        better by waiting) or not done within `timeout`."""
        deadline = time.monotonic() + timeout
        self._client.connect_timeout = timeout
        self._client.connect_async(self._addr.host, self._addr.port, keepalive=self.keepalive)
        self._client.loop_start()
        self._answered.wait(timeout)
        if not self._connected.is_set():
            self._client.disconnect()
            self._client.loop_stop()
            why = f"refused: {self._refusal}" if self._refusal else "TCP connection refused or timed out"
            raise BrokerUnreachable(f"broker {_safe_url(self.broker_url)} not reachable within {timeout:g} s ({why})")
        if self._online_info is not None:
            self.wait_acked([self._online_info], max(deadline - time.monotonic(), 0.0), what="online status")
        return self

    def wait_connected(self, timeout: float) -> None:
        """For a sender that must confirm delivery: paho queues a message published while the link
        is down and sends it on reconnect, but its PUBACK can then no longer be awaited."""
        if not self._connected.wait(timeout):
            raise TimeoutError(f"{self.name}: not connected to broker {_safe_url(self.broker_url)} within {timeout:g} s")

    def publish(self, topic: str, payload: Union[str, bytes], *, retain: bool = False) -> mqtt.MQTTMessageInfo:
        return self._client.publish(topic, payload, qos=QOS, retain=retain)

    def wait_acked(self, infos: list[mqtt.MQTTMessageInfo], timeout: float, *, what: str) -> None:
        """Block until the broker has PUBACKed every message; TimeoutError names `what` if not."""
        deadline = time.monotonic() + timeout
        for info in infos:
            try:
                info.wait_for_publish(max(deadline - time.monotonic(), 0.0))
            except (RuntimeError, ValueError) as exc:
                raise TimeoutError(f"{what}: not accepted by broker {_safe_url(self.broker_url)}: {exc}") from None
            if not info.is_published():
                raise TimeoutError(f"{what}: broker {_safe_url(self.broker_url)} did not acknowledge within {timeout:g} s")

    def close(self, timeout: float = 5.0) -> None:
        """A clean goodbye: retained `offline`, then DISCONNECT (which suppresses the will)."""
        if self.status_topic is not None and self.connected:
            info = self.publish(self.status_topic, self.offline_payload, retain=True)
            try:
                self.wait_acked([info], timeout, what="offline status")
            except TimeoutError as exc:
                log.warning("%s", exc)
        self._client.disconnect()
        self._client.loop_stop()

    def drop(self) -> None:
        """Die without a goodbye: the socket closes without DISCONNECT, as when power fails or the
        process is killed, so the broker publishes the last will."""
        sock = self._client.socket()
        self._client.loop_stop()
        if isinstance(sock, socket.socket):
            sock.close()
        self._connected.clear()


def _safe_url(url: str) -> str:
    """A broker URL fit for a message: without its password."""
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)


class DeviceLink(MqttLink):
    """One CareGuard device's connection to the gateway's broker, on `cg/dev/{device_id}/...`.

    `announce_status=False` gives a link that only injects events (`careguard sim press`),
    so that its coming and going does not mark the device online or offline."""

    def __init__(self, broker_url: str, device_id: str, *, announce_status: bool = True,
                 keepalive: int = DEFAULT_KEEPALIVE_S, seq_start: Optional[int] = None,
                 username: Optional[str] = None, password: Optional[str] = None):
        if not re.match(DEVICE_ID_RE, device_id):
            raise ValueError(f"device_id {device_id!r} must match {DEVICE_ID_RE}")
        super().__init__(broker_url, f"sim-{device_id}-{uuid4().hex[:8]}", name=f"device {device_id}",
                         status_topic=topics.dev_status(device_id) if announce_status else None,
                         keepalive=keepalive, username=username, password=password)
        self.device_id = device_id
        self.announce_status = announce_status
        self._seq = itertools.count(initial_seq() if seq_start is None else seq_start)
        self._seq_lock = threading.Lock()
        self.events_sent = 0
        self.telemetry_sent = 0

    def make_event(self, kind: DeviceEventKind, ts: datetime) -> DeviceEvent:
        with self._seq_lock:
            seq = next(self._seq)
        return DeviceEvent(id=uuid4(), device_id=self.device_id, ts=ts, event=kind, seq=seq)

    def send_event(self, kind: DeviceEventKind, ts: datetime) -> tuple[DeviceEvent, mqtt.MQTTMessageInfo]:
        ev = self.make_event(kind, ts)
        info = self.publish(topics.dev_event(self.device_id), ev.model_dump_json())
        self.events_sent += 1
        return ev, info

    def make_telemetry(self, ts: datetime, readings: dict[str, float],
                       battery_pct: Optional[float] = None) -> DeviceTelemetry:
        return DeviceTelemetry(id=uuid4(), device_id=self.device_id, ts=ts, readings=readings,
                               battery_pct=battery_pct)

    def send_telemetry(self, tm: DeviceTelemetry) -> mqtt.MQTTMessageInfo:
        # While disconnected paho keeps QoS 1 messages and sends them on reconnect, each with its own ts.
        info = self.publish(topics.dev_telemetry(self.device_id), tm.model_dump_json())
        self.telemetry_sent += 1
        return info


def connect_button(broker_url: str, device_id: str, *, announce_status: bool = True, timeout: float = 5.0,
                   battery_pct: float = 100.0, heartbeat_s: float = 60.0, username: Optional[str] = None,
                   password: Optional[str] = None) -> Button:
    """A connected button, ready to press. Close it with `button.link.close()`."""
    link = DeviceLink(broker_url, device_id, announce_status=announce_status, username=username, password=password)
    return Button(link.connect(timeout), battery_pct=battery_pct, heartbeat_s=heartbeat_s)


SIMULATED_KINDS = frozenset({DeviceKind.PANIC_BUTTON}) | ANALOGUE_KINDS | EVENT_KINDS


class DeviceSpec(BaseModel):
    """One simulated device of a fleet. `interval_s` is the reading period of a sensor and the
    heartbeat period of a button, door, PIR or smoke detector."""
    model_config = ConfigDict(extra="forbid")

    device_id: DeviceId
    kind: DeviceKind
    interval_s: float = Field(default=10.0, gt=0, description="seconds between readings or heartbeats")
    seed: int = Field(default=0, description="noise and event schedule; same seed, same stream")
    fault: Optional[FaultKind] = Field(default=None, description="injected from the start")
    drift_per_hour: Optional[float] = Field(default=None, description="drift fault rate; metric default if unset")
    fault_value: Optional[float] = Field(default=None, description="stuck/out_of_range value; default if unset")
    battery_pct: float = Field(default=100.0, ge=0, le=100)
    username: Optional[str] = Field(default=None, description="broker login; the device id when only a password is given")
    password: Optional[SecretStr] = Field(default=None, description="broker password (`careguard edge provision` issues it)")

    def login(self) -> tuple[Optional[str], Optional[str]]:
        if self.password is None:
            return self.username, None
        return self.username or self.device_id, self.password.get_secret_value()

    @model_validator(mode="after")
    def _fault_fits_kind(self) -> "DeviceSpec":
        if self.kind not in SIMULATED_KINDS:
            raise ValueError(f"kind {self.kind.value!r} is not simulated; one of {sorted(k.value for k in SIMULATED_KINDS)}")
        if self.fault is not None:
            check_fault_fits(self.kind, self.fault)
        return self


def check_fault_fits(kind: DeviceKind, fault: FaultKind) -> None:
    if kind is DeviceKind.PANIC_BUTTON:
        raise ValueError(f"fault {fault.value!r}: a button takes no sensor fault (use kill/drop for a dead button)")
    if kind in EVENT_KINDS and fault not in EVENT_SENSOR_FAULTS:
        raise ValueError(f"fault {fault.value!r} does not apply to a {kind.value} sensor (it has no reading); "
                         f"use one of {sorted(k.value for k in EVENT_SENSOR_FAULTS)}")


_TRIGGERABLE: dict[EventSensorKind, frozenset[DeviceEventKind]] = {
    EventSensorKind.SMOKE: frozenset({DeviceEventKind.SMOKE, DeviceEventKind.SMOKE_CLEAR}),
    EventSensorKind.DOOR: frozenset({DeviceEventKind.DOOR_OPEN, DeviceEventKind.DOOR_CLOSE}),
    EventSensorKind.PIR: frozenset({DeviceEventKind.MOTION}),
}


class _AnalogueDevice:
    def __init__(self, link: DeviceLink, model: AnalogueSensor, interval_s: float, battery_pct: float):
        self.link, self.model, self.interval_s, self.battery_pct = link, model, interval_s, battery_pct
        self._next: Optional[datetime] = None

    def tick(self, now: datetime) -> None:
        if self._next is not None and now < self._next:
            return
        self._next = now + timedelta(seconds=self.interval_s)
        value = self.model.value_at(now)
        if value is not None:
            self.link.send_telemetry(self.link.make_telemetry(now, {self.model.metric.name: value}, self.battery_pct))

    def next_due(self) -> Optional[datetime]:
        return self._next

    def set_fault(self, fault: Optional[Fault]) -> None:
        self.model = self.model.with_fault(fault)


class _EventDevice:
    """Sends the model's scheduled events with their own time, plus heartbeats."""

    def __init__(self, link: DeviceLink, model: EventSensor, interval_s: float, battery_pct: float, start: datetime):
        self.link, self.model, self.interval_s, self.battery_pct = link, model, interval_s, battery_pct
        self._events_from = start
        self._next_heartbeat: Optional[datetime] = None
        self._lock = threading.Lock()

    def tick(self, now: datetime) -> None:
        with self._lock:
            for ts, kind in self.model.events_between(self._events_from, now):
                self.link.send_event(kind, ts)
            self._events_from = now
        if self.model.dropped_out_at(now) or (self._next_heartbeat is not None and now < self._next_heartbeat):
            return
        self._next_heartbeat = now + timedelta(seconds=self.interval_s)
        self.link.send_telemetry(self.link.make_telemetry(now, {}, self.battery_pct))

    def next_due(self) -> Optional[datetime]:
        return self._next_heartbeat

    def set_fault(self, fault: Optional[Fault]) -> None:
        self.model = self.model.with_fault(fault)

    def trigger(self, kind: DeviceEventKind, timeout: float) -> Optional[DeviceEvent]:
        """Inject a fact (smoke, a door opened); a stuck or dropped-out sensor does not report it."""
        if kind not in _TRIGGERABLE[self.model.kind]:
            raise ValueError(f"a {self.model.kind.value} sensor does not report {kind.value!r}; "
                             f"it reports {sorted(k.value for k in _TRIGGERABLE[self.model.kind])}")
        now = utcnow()
        if self.model.silenced_at(now):
            return None
        self.link.wait_connected(timeout)
        with self._lock:
            ev, info = self.link.send_event(kind, now)
        self.link.wait_acked([info], timeout, what=f"{kind.value} of {self.link.device_id}")
        return ev


_Device = Union[Button, _AnalogueDevice, _EventDevice]


class SensorFleet:
    """Simulated devices on one broker, each with its own connection, driven by one clock thread.

    Use as a context manager, or start() then stop(). Faults can be set at start (in the spec)
    and at run time (set_fault). A failing device tick is logged and counted in `errors`; it
    never stops the fleet."""

    def __init__(self, broker_url: str, specs: Iterable[Union[DeviceSpec, dict]], *, connect_timeout: float = 5.0,
                 keepalive: int = DEFAULT_KEEPALIVE_S):
        self.broker_url = broker_url
        self.specs = [s if isinstance(s, DeviceSpec) else DeviceSpec.model_validate(s) for s in specs]
        ids = [s.device_id for s in self.specs]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"device ids must be unique in a fleet; repeated: {dupes}")
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self.errors = 0
        self._kinds = {s.device_id: s.kind for s in self.specs}
        self._devices: dict[str, _Device] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "SensorFleet":
        """Connect every device (each `online` at the broker on return), then start the clock.
        Raises BrokerUnreachable, with nothing left running, when a device cannot connect."""
        if self._thread is not None:
            raise RuntimeError("fleet already started")
        now = utcnow()
        try:
            for spec in self.specs:
                username, password = spec.login()
                link = DeviceLink(self.broker_url, spec.device_id, keepalive=self.keepalive, username=username,
                                  password=password)
                self._devices[spec.device_id] = self._build(spec, link, now)
                link.connect(self.connect_timeout)
        except BaseException:
            self._close_all()
            raise
        self._thread = threading.Thread(target=self._run, name="sensor-fleet", daemon=True)
        self._thread.start()
        return self

    def _build(self, spec: DeviceSpec, link: DeviceLink, now: datetime) -> _Device:
        fault = None if spec.fault is None else Fault(kind=spec.fault, since=now, drift_per_hour=spec.drift_per_hour,
                                                      value=spec.fault_value)
        if spec.kind is DeviceKind.PANIC_BUTTON:
            return Button(link, battery_pct=spec.battery_pct, heartbeat_s=spec.interval_s)
        if spec.kind in ANALOGUE_KINDS:
            model = AnalogueSensor(METRICS[spec.kind.value], seed=spec.seed, fault=fault)
            return _AnalogueDevice(link, model, spec.interval_s, spec.battery_pct)
        model = EventSensor(EventSensorKind(spec.kind.value), seed=spec.seed, fault=fault)
        return _EventDevice(link, model, spec.interval_s, spec.battery_pct, now)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = utcnow()
            with self._lock:
                devices = list(self._devices.values())
            for dev in devices:
                try:
                    dev.tick(now)
                except Exception:
                    self.errors += 1
                    log.exception("device %s: tick failed", dev.link.device_id)
            due = [d for dev in devices if (d := dev.next_due()) is not None]
            wait = min([(d - utcnow()).total_seconds() for d in due] + [_MAX_SLEEP_S])
            self._stop.wait(max(wait, 0.001))

    def _device(self, device_id: str) -> _Device:
        with self._lock:
            dev = self._devices.get(device_id)
        if dev is None:
            raise KeyError(f"no device {device_id!r} in this fleet")
        return dev

    def button(self, device_id: str) -> Button:
        dev = self._device(device_id)
        if not isinstance(dev, Button):
            raise TypeError(f"device {device_id!r} is not a button")
        return dev

    def set_fault(self, device_id: str, kind: Optional[Union[FaultKind, str]], *,
                  drift_per_hour: Optional[float] = None, value: Optional[float] = None) -> None:
        """Inject a fault from now on (None heals the sensor)."""
        dev = self._device(device_id)
        spec_kind = self._kinds[device_id]
        if kind is None:
            fault = None
        else:
            fault = Fault(kind=FaultKind(kind), since=utcnow(), drift_per_hour=drift_per_hour, value=value)
            check_fault_fits(spec_kind, fault.kind)
        if isinstance(dev, Button):
            raise ValueError(f"device {device_id!r} is a button: it takes no sensor fault")
        dev.set_fault(fault)

    def trigger(self, device_id: str, event: Union[DeviceEventKind, str], *,
                timeout: float = 5.0) -> Optional[DeviceEvent]:
        """Make a door, PIR or smoke sensor report `event` now; returns it once PUBACKed
        (None when a fault keeps the sensor silent)."""
        dev = self._device(device_id)
        if not isinstance(dev, _EventDevice):
            raise TypeError(f"device {device_id!r} is not a door, PIR or smoke sensor")
        return dev.trigger(DeviceEventKind(event), timeout)

    def kill(self, device_id: str) -> None:
        """The device dies without a goodbye; the broker publishes its last will `offline`."""
        dev = self._device(device_id)
        with self._lock:
            del self._devices[device_id]
        dev.link.drop()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the clock, then each device says `offline` and disconnects."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._close_all(timeout)

    def _close_all(self, timeout: float = 5.0) -> None:
        with self._lock:
            devices = list(self._devices.values())
            self._devices.clear()
        for dev in devices:
            dev.link.close(timeout)

    def __enter__(self) -> "SensorFleet":
        # start_devices() hands out a started fleet, which may then be used in a with block.
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def start_devices(broker_url: str, specs: Iterable[Union[DeviceSpec, dict]], **kwargs) -> SensorFleet:
    """A started fleet; call stop() on it (or use SensorFleet as a context manager)."""
    return SensorFleet(broker_url, specs, **kwargs).start()
