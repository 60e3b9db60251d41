"""A simulated Zigbee2MQTT bridge: off-the-shelf Zigbee buttons, door contacts, smoke, motion and
climate sensors as Zigbee2MQTT publishes them, so the edge's mapping is exercised on the payloads
a facility's real bridge sends, and `make run` can run a facility of such devices.

Topics and payloads as Zigbee2MQTT documents them (its MQTT topics page, the device pages'
"Exposes", the availability guide):
- `<base>/<friendly_name>`: the device's whole cached state as one JSON object with every
  report (`battery`, `linkquality`, `voltage`, ...). `action` is never cached: it appears only
  in the message of the click itself.
- `<base>/<friendly_name>/availability`: retained; `online`/`offline`, or with
  `legacy_availability_payload: false` `{"state":"online"}`.
- `<base>/bridge/state`: retained, the bridge's own, with a last will `offline`.
Options reproduce what trips a naive reader: the empty `action` Zigbee2MQTT sends after each
action for Home Assistant's legacy action sensor, attribute output (`<friendly_name>/action`
published beside the JSON), and device state published retained."""

from __future__ import annotations

import json
import random
import threading
from datetime import datetime, timedelta
from enum import Enum
from typing import Iterable, Optional, Union
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field

from contracts.timefmt import utcnow
from firmware_sim.device_io import DEFAULT_KEEPALIVE_S, MqttLink
from firmware_sim.sensors import METRICS, AnalogueSensor

DEFAULT_BASE_TOPIC = "zigbee2mqtt"
_MAX_SLEEP_S = 0.5


class Z2MKind(str, Enum):
    BUTTON = "button"    # Xiaomi WXKG11LM: action single, double, triple, quadruple, hold, release
    SOS = "sos"          # TuYa TS0215A_sos: action emergency
    CONTACT = "contact"  # Xiaomi MCCGQ11LM: contact (true = closed) and the chip's own temperature
    SMOKE = "smoke"      # TuYa TS0205: smoke, battery_low, tamper
    MOTION = "motion"    # Xiaomi RTCGQ11LM: occupancy, illuminance
    CLIMATE = "climate"  # Xiaomi WSDCGQ11LM (temperature, humidity, pressure) with co2 as air quality sensors add


class Z2MDeviceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    friendly_name: str = Field(min_length=1, max_length=200, pattern=r"^[^+#\x00]+$")
    kind: Z2MKind
    seed: int = Field(default=0, description="readings and link quality; same seed, same values")
    battery: int = Field(default=100, ge=0, le=100)
    report_s: float = Field(default=60.0, gt=0, description="seconds between a climate sensor's reports")


def initial_state(spec: Z2MDeviceSpec, now: datetime) -> dict:
    """The cached state Zigbee2MQTT holds for a freshly joined device of this kind."""
    rng = random.Random(f"{spec.seed}/{spec.friendly_name}")
    state: dict = {"battery": spec.battery, "linkquality": rng.randint(60, 200)}
    if spec.kind in (Z2MKind.BUTTON, Z2MKind.CONTACT, Z2MKind.MOTION, Z2MKind.CLIMATE):
        state["voltage"] = 2800 + spec.battery * 3
    if spec.kind is Z2MKind.CONTACT:
        state |= {"contact": True, "temperature": 27}
    elif spec.kind is Z2MKind.SMOKE:
        state |= {"smoke": False, "battery_low": spec.battery < 20, "tamper": False}
    elif spec.kind is Z2MKind.MOTION:
        state |= {"occupancy": False, "illuminance": rng.randint(10, 300)}
    elif spec.kind is Z2MKind.CLIMATE:
        state |= climate_readings(spec, now)
    return state


def climate_readings(spec: Z2MDeviceSpec, now: datetime) -> dict:
    out: dict = {"pressure": 1012.4}
    for metric in ("temperature", "humidity", "co2"):
        value = AnalogueSensor(METRICS[metric], seed=spec.seed).value_at(now)
        out[metric] = int(value) if metric == "co2" else value
    return out


class Zigbee2MqttBridge:
    """Zigbee2MQTT and the devices paired with it, on one MQTT connection (as the real bridge).

    start() brings the bridge and every device online; click/set/report publish what the bridge
    publishes when a device does that; a clock thread sends each climate sensor's reports."""

    def __init__(self, broker_url: str, devices: Iterable[Union[Z2MDeviceSpec, dict]], *,
                 base_topic: str = DEFAULT_BASE_TOPIC, json_availability: bool = False,
                 legacy_action_sensor: bool = False, attribute_output: bool = False, retain_state: bool = False,
                 username: Optional[str] = None, password: Optional[str] = None,
                 keepalive: int = DEFAULT_KEEPALIVE_S):
        self.specs = {s.friendly_name: s for s in (d if isinstance(d, Z2MDeviceSpec) else Z2MDeviceSpec.model_validate(d)
                                                   for d in devices)}
        self.base_topic = base_topic
        self.json_availability = json_availability
        self.legacy_action_sensor = legacy_action_sensor
        self.attribute_output = attribute_output
        self.retain_state = retain_state
        self.link = MqttLink(broker_url, f"zigbee2mqtt-{uuid4().hex[:8]}", name="zigbee2mqtt bridge",
                             status_topic=f"{base_topic}/bridge/state", online=self._availability(True),
                             offline=self._availability(False), keepalive=keepalive, username=username,
                             password=password)
        self._state: dict[str, dict] = {}
        self._next_report: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.errors = 0

    def _availability(self, online: bool) -> str:
        word = "online" if online else "offline"
        return json.dumps({"state": word}) if self.json_availability else word

    def topic(self, friendly_name: str) -> str:
        self._spec(friendly_name)
        return f"{self.base_topic}/{friendly_name}"

    def _spec(self, friendly_name: str) -> Z2MDeviceSpec:
        spec = self.specs.get(friendly_name)
        if spec is None:
            raise KeyError(f"no device {friendly_name!r} on this bridge")
        return spec

    def start(self, timeout: float = 5.0) -> "Zigbee2MqttBridge":
        """Connect (bridge `online`), then each device `online` with its state; returns once the
        broker has all of it. Raises BrokerUnreachable with nothing left running."""
        self.link.connect(timeout)
        try:
            now = utcnow()
            infos = []
            for name, spec in self.specs.items():
                self._state[name] = initial_state(spec, now)
                infos.append(self.link.publish(f"{self.topic(name)}/availability", self._availability(True), retain=True))
                infos.append(self._publish_state(name, self._state[name]))
                if spec.kind is Z2MKind.CLIMATE:
                    self._next_report[name] = now + timedelta(seconds=spec.report_s)
            self.link.wait_acked(infos, timeout, what="zigbee2mqtt devices online")
        except BaseException:
            self.link.close()
            raise
        self._thread = threading.Thread(target=self._run, name="zigbee2mqtt-bridge", daemon=True)
        self._thread.start()
        return self

    def _publish_state(self, name: str, payload: dict):
        return self.link.publish(self.topic(name), json.dumps(payload, sort_keys=True), retain=self.retain_state)

    def state(self, friendly_name: str) -> dict:
        with self._lock:
            return dict(self._state[friendly_name])

    def click(self, friendly_name: str, action: str = "single", *, timeout: float = 5.0) -> dict:
        """The device sends an action (a click, `hold`, `emergency`): the state message carrying it,
        and per the options the attribute topic and the empty follow-up. Returns the state message."""
        with self._lock:
            message = {**self._state[friendly_name], "action": action}
        infos = [self._publish_state(friendly_name, message)]
        if self.attribute_output:
            infos.append(self.link.publish(f"{self.topic(friendly_name)}/action", action))
        if self.legacy_action_sensor:
            infos.append(self._publish_state(friendly_name, {**message, "action": ""}))
        self.link.wait_acked(infos, timeout, what=f"{action} of {friendly_name}")
        return message

    def set(self, friendly_name: str, *, timeout: float = 5.0, **changes) -> dict:
        """The device reports changed values (`contact=False`, `smoke=True`, `occupancy=True`,
        `tamper=True`, `battery=15`): its whole cached state goes out. Returns it."""
        with self._lock:
            self._state[friendly_name].update(changes)
            message = dict(self._state[friendly_name])
        self.link.wait_acked([self._publish_state(friendly_name, message)], timeout,
                             what=f"state of {friendly_name}")
        return message

    def report(self, friendly_name: str, *, timeout: float = 5.0) -> dict:
        """A periodic report with nothing changed (a battery check-in)."""
        return self.set(friendly_name, timeout=timeout)

    def set_available(self, friendly_name: str, online: bool, *, timeout: float = 5.0) -> None:
        """Zigbee2MQTT's availability check marks the device online or offline (retained)."""
        info = self.link.publish(f"{self.topic(friendly_name)}/availability", self._availability(online), retain=True)
        self.link.wait_acked([info], timeout, what=f"availability of {friendly_name}")

    def _run(self) -> None:
        while not self._stop.is_set():
            now = utcnow()
            for name, due in list(self._next_report.items()):
                if now < due:
                    continue
                spec = self.specs[name]
                self._next_report[name] = now + timedelta(seconds=spec.report_s)
                try:
                    with self._lock:
                        self._state[name].update(climate_readings(spec, now))
                        message = dict(self._state[name])
                    self._publish_state(name, message)
                except Exception:
                    self.errors += 1
            wait = min([(d - utcnow()).total_seconds() for d in self._next_report.values()] + [_MAX_SLEEP_S])
            self._stop.wait(max(wait, 0.001))

    def stop(self, timeout: float = 5.0) -> None:
        """The bridge shuts down: `offline` on its state topic, then DISCONNECT."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.link.close(timeout)

    def drop(self) -> None:
        """The bridge dies (its USB stick pulled, the process killed): the broker sends its will."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.link.drop()

    def __enter__(self) -> "Zigbee2MqttBridge":
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def publish_click(broker_url: str, friendly_name: str, action: str = "single", *,
                  base_topic: str = DEFAULT_BASE_TOPIC, username: Optional[str] = None,
                  password: Optional[str] = None, timeout: float = 5.0) -> dict:
    """One action of a device, as a running bridge publishes it, from a one-shot connection that
    announces nothing (so it does not mark the bridge online or offline). Returns the message."""
    link = MqttLink(broker_url, f"zigbee2mqtt-click-{uuid4().hex[:8]}", name="zigbee2mqtt click",
                    username=username, password=password).connect(timeout)
    try:
        message = {"action": action, "linkquality": 120}
        link.wait_acked([link.publish(f"{base_topic}/{friendly_name}", json.dumps(message))], timeout,
                        what=f"{action} of {friendly_name}")
        return message
    finally:
        link.close()
