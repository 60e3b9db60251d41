"""The device mapping table (edge/device_mapping.py) on the payloads Zigbee2MQTT's documentation
shows for common devices, Tasmota's SENSOR/LWT and Home Assistant style plain values; and the
config sections that declare them."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given, settings, strategies as st

from contracts.device import DeviceEvent, DeviceEventKind, DeviceTelemetry
from contracts.timefmt import utcnow
from edge.config import ConfigError, MqttDevice, Zigbee2MqttDevice, parse_config
from edge.device_mapping import (MAX_MAPPED_PAYLOAD, Availability, AvailabilityTopic, DeviceStatus, MappingRejected,
                                 TopicMapping, map_state, parse_availability)

NOW = utcnow()

# As Zigbee2MQTT's device pages expose them (Xiaomi WXKG11LM, TuYa TS0215A_sos, Xiaomi MCCGQ11LM,
# TuYa TS0205, Xiaomi WSDCGQ11LM), with the cached state Zigbee2MQTT sends along.
WXKG11LM_SINGLE = {"action": "single", "battery": 100, "linkquality": 120, "voltage": 3005}
TS0215A_SOS = {"action": "emergency", "battery": 90, "linkquality": 80}
MCCGQ11LM = {"battery": 100, "contact": True, "linkquality": 102, "temperature": 27, "voltage": 3005}
TS0205 = {"battery": 100, "battery_low": False, "linkquality": 91, "smoke": False, "tamper": False}
WSDCGQ11LM = {"battery": 97, "humidity": 44.72, "linkquality": 150, "pressure": 1012.4, "temperature": 27.34,
              "voltage": 3005}
# Tasmota with an MH-Z19B: tele/<topic>/SENSOR, and tele/<topic>/LWT Online/Offline.
TASMOTA_SENSOR = {"Time": "2021-08-23T10:22:13", "MHZ19B": {"Model": "B", "CarbonDioxide": 589, "Temperature": 27.0},
                  "ESP32": {"Temperature": 34.4}, "TempUnit": "C"}


def z2m(profile: str, **over) -> TopicMapping:
    d = Zigbee2MqttDevice(friendly_name="dev", device_id="d1", profile=profile, **over)
    return TopicMapping("zigbee2mqtt/dev", "d1", d.compiled_fields())


def generic(**kw) -> TopicMapping:
    return TopicMapping("t", "d1", MqttDevice(device_id="d1", topic="t", **kw).compiled_fields())


def run(mapping: TopicMapping, payload, *, retained=False, last=None):
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return map_state(mapping, raw, retained=retained, last=last or {}, now=NOW)


def events(result) -> list[DeviceEventKind]:
    return [m.event for m in result.messages if isinstance(m, DeviceEvent)]


def telemetry(result) -> DeviceTelemetry | None:
    found = [m for m in result.messages if isinstance(m, DeviceTelemetry)]
    assert len(found) <= 1
    return found[0] if found else None


# --- Zigbee2MQTT built-in profiles ---------------------------------------------------------------
@pytest.mark.parametrize("action, expected", [
    ("single", [DeviceEventKind.PRESS]), ("double", [DeviceEventKind.PRESS]), ("quadruple", [DeviceEventKind.PRESS]),
    ("hold", [DeviceEventKind.LONG_PRESS]), ("release", [DeviceEventKind.RELEASE]),
    ("", []),  # the empty follow-up for Home Assistant's legacy action sensor
])
def test_button_actions(action, expected):
    result = run(z2m("button"), {**WXKG11LM_SINGLE, "action": action})
    assert events(result) == expected
    assert telemetry(result).battery_pct == 100 and telemetry(result).readings == {}
    assert not result.refused


def test_sos_button_emergency_is_one_press_and_battery_only_report_is_none():
    result = run(z2m("button"), TS0215A_SOS)
    assert events(result) == [DeviceEventKind.PRESS]
    check_in = {k: v for k, v in TS0215A_SOS.items() if k != "action"}  # action is never cached
    assert events(run(z2m("button"), check_in)) == []


def test_a_retained_press_never_raises():
    result = run(z2m("button"), WXKG11LM_SINGLE, retained=True)
    assert result.messages == [] and not result.refused


def test_contact_raises_on_change_only():
    m = z2m("contact")
    first = run(m, MCCGQ11LM)  # closed: the baseline, nothing to say
    assert events(first) == [] and first.states == {"contact": True}
    opened = run(m, {**MCCGQ11LM, "contact": False}, last=first.states)
    assert events(opened) == [DeviceEventKind.DOOR_OPEN]
    again = run(m, {**MCCGQ11LM, "contact": False}, last=opened.states)  # a battery report, still open
    assert events(again) == []
    closed = run(m, MCCGQ11LM, last=again.states)
    assert events(closed) == [DeviceEventKind.DOOR_CLOSE]
    # The chip's own temperature is not the room's: the contact profile does not read it.
    assert telemetry(closed).readings == {}


def test_first_news_of_an_open_door_raises_but_a_retained_one_only_sets_the_baseline():
    m = z2m("contact")
    assert events(run(m, {**MCCGQ11LM, "contact": False})) == [DeviceEventKind.DOOR_OPEN]
    retained = run(m, {**MCCGQ11LM, "contact": False}, retained=True)
    assert retained.messages == [] and retained.states == {"contact": False}
    assert events(run(m, {**MCCGQ11LM, "contact": False}, last=retained.states)) == []


def test_smoke_and_tamper():
    m = z2m("smoke")
    base = run(m, TS0205)
    smoke = run(m, {**TS0205, "smoke": True}, last=base.states)
    assert events(smoke) == [DeviceEventKind.SMOKE]
    tamper = run(m, {**TS0205, "smoke": True, "tamper": True}, last=smoke.states)
    assert events(tamper) == [DeviceEventKind.TAMPER]
    clear = run(m, TS0205, last=tamper.states)
    assert sorted(events(clear)) == sorted([DeviceEventKind.SMOKE_CLEAR, DeviceEventKind.TAMPER_RESTORE])
    assert not any(m.role.value == "press" for m in z2m("smoke").fields)  # a test button cannot raise fire


def test_climate_readings_and_unknown_fields_ignored():
    result = run(z2m("climate"), {**WSDCGQ11LM, "co2": 820, "surprise": {"nested": [1, 2]}})
    tm = telemetry(result)
    assert tm.readings == {"temperature": 27.34, "humidity": 44.72, "co2": 820.0} and tm.battery_pct == 97
    assert events(result) == [] and not result.refused


def test_null_is_a_value_not_yet_known():
    result = run(z2m("climate"), {"temperature": None, "humidity": 40})
    assert telemetry(result).readings == {"humidity": 40.0} and not result.refused


def test_profile_fields_can_be_overridden():
    m = z2m("button", fields={"press": {"path": "action", "values": {"on": "press", "off": "ignore"}}})
    assert events(run(m, {"action": "on"})) == [DeviceEventKind.PRESS]
    assert events(run(m, {"action": "off"})) == []
    follow_up = run(m, {"action": ""})
    assert events(follow_up) == [] and not follow_up.refused
    refused = run(m, {"action": "brightness_up"}).refused
    assert [r.label for r in refused] == ["d1: field action unknown value"]


# --- refusals ------------------------------------------------------------------------------------
def test_wrong_types_are_refused_per_field_naming_it_and_the_press_survives():
    result = run(z2m("button"), {"action": "single", "battery": "100.00"})
    assert events(result) == [DeviceEventKind.PRESS]
    assert [r.label for r in result.refused] == ["d1: field battery wrong type"]
    assert "must be a finite number, got string" in result.refused[0].reason
    result = run(z2m("climate"), {"temperature": True, "humidity": [1], "co2": 500, "battery": 140})
    assert telemetry(result).readings == {"co2": 500.0}
    assert sorted(r.label for r in result.refused) == ["d1: field battery out of range", "d1: field humidity wrong type",
                                                        "d1: field temperature wrong type"]
    assert [r.label for r in run(z2m("button"), {"action": 1}).refused] == ["d1: field action wrong type"]
    assert [r.label for r in run(z2m("contact"), {"contact": "open"}).refused] == ["d1: field contact wrong type"]


@pytest.mark.parametrize("payload, label", [
    (b"{not json", "d1: not JSON"),
    (b"[1, 2]", "d1: not a JSON object"),
    (b'"single"', "d1: not a JSON object"),
    (b"[" * 9000 + b"]" * 9000, "d1: payload too large"),
    (b"[" * 2000 + b"]" * 2000, "d1: not JSON"),  # nested past the parser's depth limit
    (b'{"battery": NaN}', "d1: not JSON"),
    (b'{"battery": 1e999}', "d1: not JSON"),
    (b"\xff\xfe", "d1: not JSON"),
])
def test_unreadable_payloads_are_refused_whole(payload, label):
    with pytest.raises(MappingRejected) as err:
        run(z2m("button"), payload)
    assert err.value.label == label


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                              | st.text(max_size=10),
                              lambda c: st.lists(c, max_size=4) | st.dictionaries(
                                  st.sampled_from(["action", "battery", "contact", "smoke", "MHZ19B", "x"]), c,
                                  max_size=5), max_leaves=20).map(lambda v: json.dumps(v).encode())))
def test_any_payload_maps_or_is_refused_with_a_bounded_label(payload):
    labels = set()
    for mapping in (z2m("button"), z2m("smoke"), generic(fields={"co2": {"path": "MHZ19B.CarbonDioxide"}})):
        try:
            result = run(mapping, payload)
        except MappingRejected as exc:
            labels.add(exc.label)
            continue
        labels |= {r.label for r in result.refused}
        assert all(m.device_id == "d1" for m in result.messages)
    # Labels are counters' keys: built from the config, never from the payload.
    assert labels <= {"d1: not JSON", "d1: not a JSON object", "d1: payload too large"} | {
        f"d1: field {f} {why}" for f in ("action", "battery", "smoke", "tamper", "MHZ19B.CarbonDioxide")
        for why in ("wrong type", "out of range", "unknown value")}


# --- other bridges ---------------------------------------------------------------------------
def test_tasmota_sensor_by_json_path():
    m = generic(fields={"co2": {"path": "MHZ19B.CarbonDioxide"}, "temperature": {"path": "MHZ19B.Temperature"}})
    assert telemetry(run(m, TASMOTA_SENSOR)).readings == {"co2": 589.0, "temperature": 27.0}
    refused = run(m, {**TASMOTA_SENSOR, "MHZ19B": 5}).refused
    assert {r.label for r in refused} == {"d1: field MHZ19B.CarbonDioxide wrong type",
                                          "d1: field MHZ19B.Temperature wrong type"}


def test_home_assistant_style_plain_values_through_a_value_mapping():
    door = generic(fields={"contact": {"path": "$", "values": {"ON": False, "OFF": True}}})  # ON = open
    base = run(door, b"OFF")
    assert events(run(door, b"ON", last=base.states)) == [DeviceEventKind.DOOR_OPEN]
    assert [r.label for r in run(door, b"AJAR").refused] == ["d1: field $ wrong type"]
    temperature = generic(fields={"temperature": {"path": "$"}})
    assert telemetry(run(temperature, b"21.5")).readings == {"temperature": 21.5}


def test_availability_payloads():
    z = AvailabilityTopic("zigbee2mqtt/dev/availability", ("d1",), json_state=True)
    assert parse_availability(z, b"online") and not parse_availability(z, b"offline")
    assert parse_availability(z, b'{"state":"online"}') and not parse_availability(z, b'{"state": "offline"}')
    tasmota = AvailabilityTopic("tele/x/LWT", ("d1",), "Online", "Offline")
    assert parse_availability(tasmota, b"Online") and not parse_availability(tasmota, b"Offline")
    for topic, bad in [(z, b"sideways"), (z, b'{"state": 1}'), (z, b'{"state"'), (tasmota, b"online"),
                       (tasmota, b'{"state":"Online"}'), (z, b"o" * 1000)]:
        with pytest.raises(MappingRejected) as err:
            parse_availability(topic, bad)
        assert err.value.label.startswith("d1: availability")


def test_a_bridge_offline_takes_its_devices_offline():
    bridge = AvailabilityTopic("zigbee2mqtt/bridge/state", ("a", "b"), bridge=True, json_state=True)
    own = AvailabilityTopic("zigbee2mqtt/a/availability", ("a",), json_state=True)
    av = Availability([bridge, own])
    assert av.on_message(own, True) == [DeviceStatus("a", True)]
    assert av.on_message(bridge, False) == [DeviceStatus("a", False), DeviceStatus("b", False)]
    assert av.on_message(own, True) == [DeviceStatus("a", False)]  # still behind a dead bridge
    assert av.on_message(bridge, True) == [DeviceStatus("a", True), DeviceStatus("b", True)]
    assert av.on_message(own, False) == [DeviceStatus("a", False)]


# --- config ---------------------------------------------------------------------------------------
def config(**over) -> dict:
    cfg = {"facility_id": "F1", "local_broker": "mqtt://127.0.0.1:1", "uplink": {"broker": "mqtt://127.0.0.1:2"},
           "police": {"account": "1234", "receivers": [{"host": "127.0.0.1", "port": 3}]},
           "zones": [{"id": "p", "number": 1, "kind": "panic", "devices": ["btn"]},
                     {"id": "env", "number": 2, "kind": "environment", "devices": ["co2-1"]}],
           "zigbee2mqtt": {"devices": [{"friendly_name": "class1/sos", "device_id": "z-sos", "zone": "p",
                                        "profile": "button"}]},
           "mqtt_devices": [{"device_id": "co2-1", "topic": "tele/hall/SENSOR",
                             "fields": {"co2": {"path": "MHZ19B.CarbonDioxide"}},
                             "availability_topic": "tele/hall/LWT", "payload_online": "Online",
                             "payload_offline": "Offline"}]}
    cfg.update(over)
    return cfg


def test_mapped_devices_join_their_zone_and_leave_the_native_topics():
    cfg = parse_config(config())
    assert cfg.zones[0].devices == ["btn", "z-sos"]
    assert cfg.native_devices() == {"btn"}
    assert [(m.topic, m.device_id) for m in cfg.state_topics()] == [("zigbee2mqtt/class1/sos", "z-sos"),
                                                                    ("tele/hall/SENSOR", "co2-1")]
    assert {a.topic: (a.device_ids, a.bridge) for a in cfg.availability_topics()} == {
        "zigbee2mqtt/class1/sos/availability": (("z-sos",), False),
        "zigbee2mqtt/bridge/state": (("z-sos",), True), "tele/hall/LWT": (("co2-1",), False)}


@pytest.mark.parametrize("mutate, named", [
    (lambda c: c["zigbee2mqtt"]["devices"][0].update(profile="lamp"), "zigbee2mqtt.devices.0.profile"),
    (lambda c: c["zigbee2mqtt"]["devices"][0].update(friendly_name="a/#"), "zigbee2mqtt.devices.0.friendly_name"),
    (lambda c: c["zigbee2mqtt"]["devices"][0].update(friendly_name="x/availability"), "collides with Zigbee2MQTT"),
    (lambda c: c["zigbee2mqtt"]["devices"][0].update(zone="nowhere"), "names zone 'nowhere'"),
    (lambda c: c["zigbee2mqtt"]["devices"][0].pop("zone"), "device 'z-sos' is in no zone"),
    (lambda c: c["zigbee2mqtt"]["devices"][0].update(zone="env") or c["zones"][0]["devices"].append("z-sos"),
     "device 'z-sos' is in both"),
    (lambda c: c["zigbee2mqtt"]["devices"][0].update(fields={"press": {"path": "action", "values": {"x": True}}}),
     "press: values must map to press"),
    (lambda c: c["zigbee2mqtt"].update(base_topic="cg/z2m"), "zigbee2mqtt.base_topic"),
    (lambda c: c["mqtt_devices"][0].update(topic="cg/dev/btn/event"), "mqtt_devices.0.topic"),
    (lambda c: c["mqtt_devices"][0].update(topic="zigbee2mqtt/x"), "under zigbee2mqtt's base topic"),
    (lambda c: c["mqtt_devices"][0].update(topic="a\nuser x\ntopic readwrite b"), "control character"),
    (lambda c: c["mqtt_devices"][0].update(availability_topic="tele/hall/LWT "), "white space"),
    (lambda c: c["zones"][0]["devices"].append("zigbee2mqtt"), "username 'zigbee2mqtt' is also a device id"),
    (lambda c: c["mqtt_devices"][0].update(fields={"co2": {"path": "a..b"}}), "mqtt_devices.0.fields.co2.path"),
    (lambda c: c["mqtt_devices"][0].update(fields={"smell": {"path": "a"}}), "mqtt_devices.0.fields.smell"),
    (lambda c: c["mqtt_devices"][0].update(fields={"co2": {"path": "a", "values": {"x": True}}}),
     "co2: a reading takes no values mapping"),
    (lambda c: c["mqtt_devices"].append(dict(c["mqtt_devices"][0])), "a topic appears twice"),
    (lambda c: c["mqtt_devices"].append({**c["mqtt_devices"][0], "device_id": "z-sos", "topic": "t2"}),
     "device 'z-sos' is also in zigbee2mqtt.devices"),
    (lambda c: c.update(device_auth={"edge_username": "btn"}), "username 'btn' is also a device id"),
])
def test_bad_mapping_config_names_the_key(mutate, named):
    c = copy.deepcopy(config())
    mutate(c)
    with pytest.raises(ConfigError) as err:
        parse_config(c)
    assert named in str(err.value)


def test_payload_limit_is_sized_for_zigbee2mqtt_with_device_information():
    # include_device_information adds the device's description to every message: well under the cap.
    info = {"device": {"friendlyName": "class1/sos", "model": "TS0215A_sos", "ieeeAddr": "0x00124b0001020304",
                       "manufacturerName": "_TZ3000_0zrccfgx", "powerSource": "Battery", "type": "EndDevice"}}
    assert len(json.dumps({**TS0215A_SOS, **info})) * 8 < MAX_MAPPED_PAYLOAD
