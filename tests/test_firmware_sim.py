"""firmware_sim: the pure sensor models, and the simulated devices against a real Mosquitto."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings, strategies as st
from pydantic import ValidationError

from wire.mqtt_client import make_client
from testing.services import free_port
from contracts.device import DeviceEvent, DeviceEventKind, DeviceTelemetry
from contracts.timefmt import utcnow
from firmware_sim import (METRICS, AnalogueSensor, DeviceLink, DeviceSpec, EventSensor, EventSensorKind, Fault,
                          FaultKind, connect_button, start_devices)
from firmware_sim.button import BOUNCE_GAP_MS
from firmware_sim.sensors import CHINA_TZ, co2_curve, temperature_curve

REPO = Path(__file__).resolve().parents[1]
WAIT_S = 10.0  # upper bound of every wait on the broker; a healthy run takes milliseconds


class Tap:
    """A subscriber that records what the broker delivers."""

    def __init__(self, url: str, pattern: str = "cg/dev/#"):
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.client, addr = make_client(url)
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        subscribed = queue.Queue()
        self.client.on_subscribe = lambda *a: subscribed.put(True)
        self.client.connect(addr.host, addr.port)
        self.client.subscribe(pattern, qos=1)
        self.client.loop_start()
        subscribed.get(timeout=WAIT_S)

    def next(self, match, timeout: float = WAIT_S) -> mqtt.MQTTMessage:
        """The next message for which match(msg) is true."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self.messages.get(timeout=left)
            except queue.Empty:
                break
            if match(msg):
                return msg
        raise AssertionError(f"no matching message within {timeout} s")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def tap(mosquitto):
    t = Tap(mosquitto.url)
    yield t
    t.close()


def on_topic(topic: str):
    return lambda msg: msg.topic == topic


def retained_status(url: str, device_id: str) -> tuple[str, bool]:
    """What a newcomer sees on the status topic: (payload, retain flag)."""
    t = Tap(url, f"cg/dev/{device_id}/status")
    try:
        msg = t.next(lambda m: True)
        return msg.payload.decode(), msg.retain
    finally:
        t.close()


def at(hour: int, minute: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=CHINA_TZ)


# --- pure models -------------------------------------------------------------------------------

aware_times = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1),
                           timezones=st.just(timezone.utc))


@settings(max_examples=200, deadline=None)
@given(t=aware_times, seed=st.integers(0, 10**6))
def test_healthy_readings_are_pure_and_within_the_nursery_range(t, seed):
    for name, lo, hi in (("temperature", 20.0, 24.0), ("humidity", 40.0, 60.0), ("co2", 400.0, 1200.0)):
        sensor = AnalogueSensor(METRICS[name], seed=seed)
        v = sensor.value_at(t)
        assert v == AnalogueSensor(METRICS[name], seed=seed).value_at(t)
        assert lo <= v <= hi, (name, t, v)
        # The curve repeats every day; only the noise differs.
        assert sensor.base_at(t) == pytest.approx(sensor.base_at(t + timedelta(days=1)))


def test_seeds_give_different_noise():
    t = at(10)
    values = {AnalogueSensor(METRICS["temperature"], seed=s).value_at(t) for s in range(20)}
    assert len(values) > 10


def test_co2_rises_while_occupied_and_falls_after():
    assert co2_curve(3.0) == pytest.approx(450.0, abs=1.0)
    assert co2_curve(8.0) < co2_curve(10.0) < co2_curve(12.0) < co2_curve(16.9)
    assert co2_curve(16.9) > 1000.0
    assert co2_curve(17.5) > co2_curve(19.0) > co2_curve(23.0)
    # Warmest mid-afternoon, coolest before dawn.
    assert temperature_curve(15.0) == pytest.approx(23.5)
    assert temperature_curve(3.0) == pytest.approx(20.5)


def test_each_fault_alters_the_model_from_its_start():
    since = at(12)
    healthy = AnalogueSensor(METRICS["temperature"], seed=3)
    before, later = since - timedelta(minutes=5), [since + timedelta(minutes=m) for m in (1, 30, 60, 120)]

    def faulty(kind, **kw):
        return healthy.with_fault(Fault(kind=kind, since=since, **kw))

    for kind in FaultKind:
        assert faulty(kind).value_at(before) == healthy.value_at(before)

    stuck = faulty(FaultKind.STUCK)
    assert {stuck.value_at(t) for t in later} == {healthy.value_at(since)}

    drift = faulty(FaultKind.DRIFT, drift_per_hour=2.0)
    offsets = [drift.value_at(t) - healthy.value_at(t) for t in later]
    assert offsets == pytest.approx([2.0 / 60, 1.0, 2.0, 4.0], abs=0.011)

    assert all(faulty(FaultKind.DROPOUT).value_at(t) is None for t in later)

    for metric in METRICS.values():
        oor = AnalogueSensor(metric).with_fault(Fault(kind=FaultKind.OUT_OF_RANGE, since=since))
        assert all(oor.value_at(t) > metric.valid_max for t in later)
    assert faulty(FaultKind.OUT_OF_RANGE).value_at(later[0]) == 60.0


def test_door_and_motion_schedules():
    door = EventSensor(EventSensorKind.DOOR, seed=7)
    day = door.events_between(at(7), at(19))
    kinds = [k for _, k in day]
    assert len(kinds) >= 20
    # Every opening is followed by its closing, never two openings in a row.
    assert kinds[0::2] == [DeviceEventKind.DOOR_OPEN] * (len(kinds) // 2)
    assert kinds[1::2] == [DeviceEventKind.DOOR_CLOSE] * (len(kinds) // 2)
    assert [ts for ts, _ in day] == sorted(ts for ts, _ in day)
    # Any split of a window gives the same events: the schedule is a function of time alone.
    assert door.events_between(at(7), at(12, 17)) + door.events_between(at(12, 17), at(19)) == day
    assert door.events_between(at(7), at(19)) == day
    assert door.events_between(at(0), at(6)) == []

    pir = EventSensor(EventSensorKind.PIR, seed=1)
    assert {k for _, k in pir.events_between(at(9), at(10))} == {DeviceEventKind.MOTION}
    assert pir.events_between(at(20), at(23)) == []
    assert EventSensor(EventSensorKind.SMOKE).events_between(at(0), at(23)) == []

    for kind in (FaultKind.STUCK, FaultKind.DROPOUT):
        silent = door.with_fault(Fault(kind=kind, since=at(12)))
        assert silent.events_between(at(7), at(19)) == [e for e in day if e[0] < at(12)]


def test_misfit_faults_and_bad_specs_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="drift.*door"):
        EventSensor(EventSensorKind.DOOR, fault=Fault(kind=FaultKind.DRIFT, since=at(1)))
    with pytest.raises(ValidationError, match="device_id"):
        DeviceSpec(device_id="a/b", kind="co2")
    with pytest.raises(ValidationError, match="button takes no sensor fault"):
        DeviceSpec(device_id="b1", kind="panic_button", fault="stuck")
    with pytest.raises(ValidationError, match="out_of_range.*pir"):
        DeviceSpec(device_id="p1", kind="pir", fault="out_of_range")
    with pytest.raises(ValidationError, match="interval_s"):
        DeviceSpec(device_id="t1", kind="temperature", interval_s=0)


# --- the button on a real broker ----------------------------------------------------------------

def test_press_arrives_as_a_valid_qos1_event(mosquitto, tap):
    button = connect_button(mosquitto.url, "btn-1")
    try:
        press = button.press()
        msg = tap.next(on_topic("cg/dev/btn-1/event"))
        ev = DeviceEvent.model_validate_json(msg.payload)
        assert msg.qos == 1
        assert (str(ev.id), ev.ts, ev.event, ev.device_id) == (press.id, press.ts, DeviceEventKind.PRESS, "btn-1")

        later = [button.press(long=True).events[0], button.release(), button.tamper(), button.tamper_restore()]
        got = [DeviceEvent.model_validate_json(tap.next(on_topic("cg/dev/btn-1/event")).payload) for _ in later]
        assert [e.event for e in got] == [DeviceEventKind.LONG_PRESS, DeviceEventKind.RELEASE,
                                          DeviceEventKind.TAMPER, DeviceEventKind.TAMPER_RESTORE]
        assert [e.id for e in got] == [e.id for e in later]
        seqs = [ev.seq] + [e.seq for e in got]
        assert seqs == sorted(set(seqs))
    finally:
        button.link.close()


def test_bounce_sends_n_presses_with_distinct_ids_ms_apart(mosquitto, tap):
    button = connect_button(mosquitto.url, "btn-2")
    try:
        press = button.press(bounce=4)
        got = [DeviceEvent.model_validate_json(tap.next(on_topic("cg/dev/btn-2/event")).payload) for _ in range(4)]
    finally:
        button.link.close()
    assert [e.id for e in got] == [e.id for e in press.events]
    assert len({e.id for e in got}) == 4
    assert {e.event for e in got} == {DeviceEventKind.PRESS}
    assert [e.seq for e in got] == sorted({e.seq for e in got})
    assert got[-1].ts - got[0].ts == timedelta(milliseconds=3 * BOUNCE_GAP_MS)
    assert str(got[0].id) == press.id


def test_online_is_retained_and_the_last_will_marks_a_dead_device_offline(mosquitto, tap):
    link = DeviceLink(mosquitto.url, "btn-3").connect()
    assert retained_status(mosquitto.url, "btn-3") == ("online", True)
    link.drop()
    assert tap.next(lambda m: m.topic == "cg/dev/btn-3/status" and m.payload == b"offline")
    assert retained_status(mosquitto.url, "btn-3") == ("offline", True)


def test_press_only_link_leaves_status_alone(mosquitto):
    device = DeviceLink(mosquitto.url, "btn-4").connect()
    injector = connect_button(mosquitto.url, "btn-4", announce_status=False)
    injector.press()
    injector.link.drop()
    injector2 = connect_button(mosquitto.url, "btn-4", announce_status=False)
    injector2.link.close()
    assert retained_status(mosquitto.url, "btn-4") == ("online", True)
    device.close()
    assert retained_status(mosquitto.url, "btn-4") == ("offline", True)


def test_press_during_a_broker_outage_fails_then_works_after_reconnect(mosquitto):
    button = connect_button(mosquitto.url, "btn-5")
    try:
        mosquitto.stop()
        with pytest.raises(TimeoutError, match="btn-5"):
            button.press(timeout=0.5)
        mosquitto.start()
        tap = Tap(mosquitto.url)
        try:
            press = button.press(timeout=WAIT_S)
            ev = DeviceEvent.model_validate_json(
                tap.next(lambda m: m.topic == "cg/dev/btn-5/event" and json.loads(m.payload)["id"] == press.id).payload)
        finally:
            tap.close()
        assert ev.ts == press.ts
        assert retained_status(mosquitto.url, "btn-5") == ("online", True)
    finally:
        button.link.close()


# --- fleets -------------------------------------------------------------------------------------

def collect_telemetry(tap: Tap, wanted: dict[str, int]) -> dict[str, list[DeviceTelemetry]]:
    """Telemetry per device until each device in `wanted` has at least that many."""
    got: dict[str, list[DeviceTelemetry]] = {d: [] for d in wanted}
    while any(len(got[d]) < n for d, n in wanted.items()):
        msg = tap.next(lambda m: m.topic.endswith("/telemetry"))
        tm = DeviceTelemetry.model_validate_json(msg.payload)
        got.setdefault(tm.device_id, []).append(tm)
    return got


def test_fleet_telemetry_is_valid_and_follows_the_model(mosquitto, tap):
    specs = [DeviceSpec(device_id=f"s-{k}", kind=k, interval_s=0.05, seed=5)
             for k in ("temperature", "humidity", "co2", "door", "pir", "smoke")]
    specs.append(DeviceSpec(device_id="s-button", kind="panic_button", interval_s=0.05, battery_pct=37.5))
    with start_devices(mosquitto.url, specs) as fleet:
        got = collect_telemetry(tap, {s.device_id: 3 for s in specs})
        smoke = fleet.trigger("s-smoke", "smoke")
        msg = tap.next(on_topic("cg/dev/s-smoke/event"))
        with pytest.raises(ValueError, match="motion"):
            fleet.trigger("s-smoke", "motion")
        assert fleet.errors == 0
    assert DeviceEvent.model_validate_json(msg.payload) == smoke
    for name in ("temperature", "humidity", "co2"):
        model = AnalogueSensor(METRICS[name], seed=5)
        for tm in got[f"s-{name}"]:
            assert tm.readings == {name: model.value_at(tm.ts)}
    for kind in ("door", "pir", "smoke"):
        assert all(tm.readings == {} for tm in got[f"s-{kind}"])
    assert {tm.battery_pct for tm in got["s-button"]} == {37.5}
    for s in specs:
        assert retained_status(mosquitto.url, s.device_id) == ("offline", True)


def test_each_fault_visibly_alters_the_stream(mosquitto, tap):
    def spec(device_id, fault=None, **kw):
        return DeviceSpec(device_id=device_id, kind="temperature", interval_s=0.05, seed=9, fault=fault, **kw)

    specs = [spec("healthy"), spec("stuck", "stuck"), spec("drift", "drift", drift_per_hour=36_000.0),
             spec("oor", "out_of_range"), spec("drops")]
    with start_devices(mosquitto.url, specs) as fleet:
        got = collect_telemetry(tap, {s.device_id: 6 for s in specs})
        fleet.set_fault("drops", FaultKind.DROPOUT)
        after_fault = utcnow()
        late = collect_telemetry(tap, {"healthy": 6})
        with pytest.raises(ValueError, match="bogus"):
            fleet.set_fault("healthy", "bogus")
    # The healthy sensor moves with the noise; a stuck one never does.
    assert len({tm.readings["temperature"] for tm in got["healthy"]}) > 1
    assert len({tm.readings["temperature"] for tm in got["stuck"]}) == 1
    model = AnalogueSensor(METRICS["temperature"], seed=9)
    offsets = [tm.readings["temperature"] - model.healthy_value_at(tm.ts) for tm in got["drift"]]
    assert offsets == sorted(offsets) and offsets[-1] - offsets[0] > 1.0
    assert all(tm.readings["temperature"] > METRICS["temperature"].valid_max for tm in got["oor"])
    assert [tm for tm in late.get("drops", []) if tm.ts > after_fault] == []


# --- the command line ---------------------------------------------------------------------------

def careguard(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "careguard", "sim", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60, **kw)


def test_cli_press_exits_once_the_press_is_at_the_broker(mosquitto, tap):
    r = careguard("press", "--broker", mosquitto.url, "--device-id", "cli-btn", "--bounce", "2")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip())
    assert set(out) == {"id", "ts", "device_id"} and out["device_id"] == "cli-btn"
    ev = DeviceEvent.model_validate_json(tap.next(on_topic("cg/dev/cli-btn/event")).payload)
    assert str(ev.id) == out["id"]
    assert ev.ts == datetime.fromisoformat(out["ts"])
    tap.next(on_topic("cg/dev/cli-btn/event"))  # the bounce


def test_cli_press_without_broker_fails_with_a_message():
    url = f"mqtt://127.0.0.1:{free_port()}"
    r = careguard("press", "--broker", url, "--device-id", "cli-btn", "--timeout", "1")
    assert r.returncode != 0
    assert "not reachable" in r.stderr and url in r.stderr
    assert r.stdout == ""


def test_cli_refuses_a_fault_that_does_not_fit_the_device():
    r = careguard("device", "--broker", "mqtt://127.0.0.1:1", "--device-id", "d1", "--kind", "door",
                  "--fault", "drift")
    assert r.returncode == 2
    assert "drift" in r.stderr and "door" in r.stderr


def test_cli_device_runs_until_sigterm(mosquitto, tap):
    proc = subprocess.Popen([sys.executable, "-m", "careguard", "sim", "device", "--broker", mosquitto.url,
                             "--device-id", "cli-co2", "--kind", "co2", "--interval", "0.05",
                             "--fault", "out_of_range"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert tap.next(on_topic("cg/dev/cli-co2/status")).payload == b"online"
        readings = [DeviceTelemetry.model_validate_json(tap.next(on_topic("cg/dev/cli-co2/telemetry")).payload)
                    for _ in range(3)]
        proc.terminate()
        _, err = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert {tm.readings["co2"] for tm in readings} == {METRICS["co2"].out_of_range_value}
    assert retained_status(mosquitto.url, "cli-co2") == ("offline", True)


def test_cli_zigbee2mqtt_bridge_publishes_as_zigbee2mqtt_does(mosquitto):
    tap = Tap(mosquitto.url, "zigbee2mqtt/#")
    proc = subprocess.Popen([sys.executable, "-m", "careguard", "sim", "zigbee2mqtt", "--broker", mosquitto.url,
                             "--device", "class1/sos=sos", "--device", "nap/air=climate", "--report", "0.1"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert tap.next(on_topic("zigbee2mqtt/bridge/state")).payload == b"online"
        assert tap.next(on_topic("zigbee2mqtt/class1/sos/availability")).payload == b"online"
        state = json.loads(tap.next(on_topic("zigbee2mqtt/class1/sos")).payload)
        assert "action" not in state and state["battery"] == 100  # action is never in the cached state
        climate = json.loads(tap.next(on_topic("zigbee2mqtt/nap/air")).payload)
        assert {"temperature", "humidity", "co2", "battery", "linkquality"} <= set(climate)
        click = careguard("zigbee2mqtt-click", "--broker", mosquitto.url, "--friendly-name", "class1/sos",
                          "--action", "emergency")
        assert click.returncode == 0, click.stderr
        assert json.loads(tap.next(lambda m: m.topic == "zigbee2mqtt/class1/sos" and b"action" in m.payload).payload
                          )["action"] == "emergency"
        proc.terminate()
        _, err = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        tap.close()
    assert proc.returncode == 0, err
    bridge_state = Tap(mosquitto.url, "zigbee2mqtt/bridge/state")
    try:
        msg = bridge_state.next(lambda m: True)
    finally:
        bridge_state.close()
    assert (msg.payload, msg.retain) == (b"offline", True)
