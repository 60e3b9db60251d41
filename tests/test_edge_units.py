"""The edge agent's pure parts: config validation, alarm engine, journal and outbox, device parsing."""

import json
import uuid
from datetime import datetime, time as dtime, timedelta, timezone
from pathlib import Path

import pytest

from contracts.alarms import AlarmKind
from contracts.device import DeviceEvent, DeviceEventKind
from contracts.errors import ContractError
from contracts.envelope import ZoneRefusal
from edge.alarms.engine import AlarmEngine, ClearAlarm, CommandError, LogEvent, RaiseAlarm, in_window
from edge.config import ConfigError, load_config, parse_config
from edge.devices import DeviceStatus, parse_device_message
from edge.alarms.journal import AlarmRecord, Journal
from edge.uplink.outbox import Priority

EXAMPLE = Path(__file__).resolve().parent.parent / "deploy" / "edge.example.toml"
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=timezone.utc)  # 10:00 in Shanghai


def base_config(**over) -> dict:
    cfg = {
        "facility_id": "F1", "local_broker": "mqtt://127.0.0.1:1", "uplink": {"broker": "mqtt://127.0.0.1:2"},
        "police": {"account": "1234", "receivers": [{"host": "127.0.0.1", "port": 3}]},
        "zones": [
            {"id": "p", "number": 1, "kind": "panic", "devices": ["btn"]},
            {"id": "gate", "number": 2, "kind": "intrusion", "devices": ["door"],
             "schedule": [{"arm": "18:00:00", "disarm": "07:00:00"}]},
            {"id": "smoke", "number": 3, "kind": "fire", "devices": ["smk"]},
        ],
    }
    cfg.update(over)
    return cfg


def ev(device, kind, ts=T0):
    return DeviceEvent(id=uuid.uuid4(), device_id=device, ts=ts, event=kind)


# --- config ------------------------------------------------------------------------------
def test_example_config_loads():
    cfg = load_config(EXAMPLE)
    assert cfg.facility_id == "F001" and len(cfg.police.receivers) == 2
    assert cfg.police.key_bytes and cfg.uplink.cloud_public_key  # keys on by default


@pytest.mark.parametrize("mutate, named", [
    (lambda c: c["police"].update(account="xyz"), "police.account"),
    (lambda c: c["police"].update(key="00ff"), "police.key"),
    (lambda c: c["uplink"].update(cloud_public_key="abcd"), "uplink.cloud_public_key"),
    (lambda c: c["police"].update(receivers=[]), "police.receivers"),
    (lambda c: c.update(facility_id="bad/id"), "facility_id"),
    (lambda c: c["zones"][1].update(number=1), "zone number 1 appears twice"),
    (lambda c: c["zones"][1].update(devices=["btn"]), "device 'btn'"),
    (lambda c: c.update(surprise=1), "surprise"),
])
def test_bad_config_names_the_key(mutate, named):
    c = base_config()
    mutate(c)
    with pytest.raises(ConfigError) as err:
        parse_config(c)
    assert named in str(err.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("facility_id = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


# --- engine ------------------------------------------------------------------------------
def engine(**over):
    return AlarmEngine(parse_config(base_config(**over)))


def test_panic_raises_once_and_latches_until_reset():
    e = engine()
    first = e.on_device_event(ev("btn", DeviceEventKind.PRESS))
    raises = [a for a in first if isinstance(a, RaiseAlarm)]
    assert len(raises) == 1 and raises[0].kind is AlarmKind.PANIC and raises[0].zone.number == 1
    again = e.on_device_event(ev("btn", DeviceEventKind.PRESS, T0 + timedelta(seconds=5)))
    assert not any(isinstance(a, RaiseAlarm) for a in again)
    assert any(isinstance(a, LogEvent) and a.body.get("latched") for a in again)  # the signal is kept
    reset = e.command("reset", "p", "officer", T0 + timedelta(seconds=10))
    assert any(isinstance(a, ClearAlarm) and a.kind is AlarmKind.PANIC for a in reset)
    third = e.on_device_event(ev("btn", DeviceEventKind.PRESS, T0 + timedelta(seconds=20)))
    assert any(isinstance(a, RaiseAlarm) for a in third)


def test_contact_bounce_never_raises_twice():
    e = engine()
    acts = []
    for i in range(5):
        acts += e.on_device_event(ev("btn", DeviceEventKind.PRESS, T0 + timedelta(milliseconds=3 * i)))
    assert sum(isinstance(a, RaiseAlarm) for a in acts) == 1
    assert e.bounces == 4


def test_panic_zone_cannot_be_disarmed():
    e = engine()
    with pytest.raises(CommandError, match="cannot be disarmed") as refused:
        e.command("disarm", "p", "someone", T0)
    assert (refused.value.key, refused.value.params) == (ZoneRefusal.CANNOT_DISARM, {"zone": "p", "zone_kind": "panic"})
    assert any(isinstance(a, RaiseAlarm) for a in e.on_device_event(ev("btn", DeviceEventKind.PRESS)))


def test_latch_survives_restart_through_snapshot():
    e = engine()
    e.on_device_event(ev("btn", DeviceEventKind.PRESS))
    e2 = AlarmEngine(e.cfg, json.loads(json.dumps(e.snapshot())))
    assert not any(isinstance(a, RaiseAlarm) for a in e2.on_device_event(ev("btn", DeviceEventKind.PRESS, T0 + timedelta(seconds=1))))


def test_intrusion_only_when_armed_by_schedule_or_command():
    e = engine()
    day = T0  # 10:00 local: disarmed by schedule
    assert not any(isinstance(a, RaiseAlarm) for a in e.on_device_event(ev("door", DeviceEventKind.DOOR_OPEN, day)))
    night = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)  # 20:00 local
    assert any(isinstance(a, RaiseAlarm) and a.kind is AlarmKind.INTRUSION
               for a in e.on_device_event(ev("door", DeviceEventKind.DOOR_OPEN, night)))
    e2 = engine()
    logs = e2.command("arm", "gate", "director", day)
    assert logs[0].body["armed"] is True
    assert any(isinstance(a, RaiseAlarm) for a in e2.on_device_event(ev("door", DeviceEventKind.MOTION, day)))


def test_schedule_changes_are_logged_by_tick():
    e = engine()
    assert e.tick(datetime(2026, 11, 25, 9, 59, tzinfo=timezone.utc)) == []  # 17:59 local: first look
    acts = e.tick(datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc))  # 18:00 local
    assert len(acts) == 1 and acts[0].body == {"zone": "gate", "armed": True, "by": "schedule"}


def test_window_crossing_midnight():
    assert in_window(dtime(23, 0), dtime(18, 0), dtime(7, 0))
    assert in_window(dtime(6, 59), dtime(18, 0), dtime(7, 0))
    assert not in_window(dtime(7, 0), dtime(18, 0), dtime(7, 0))
    assert in_window(dtime(9, 0), dtime(8, 0), dtime(17, 0))


def test_tamper_raises_and_restores_and_offline_devices():
    e = engine()
    assert any(isinstance(a, RaiseAlarm) and a.kind is AlarmKind.TAMPER for a in e.on_device_event(ev("btn", DeviceEventKind.TAMPER)))
    assert any(isinstance(a, ClearAlarm) for a in e.on_device_event(ev("btn", DeviceEventKind.TAMPER_RESTORE)))
    assert isinstance(e.on_device_status("smk", False, T0)[0], RaiseAlarm)
    assert isinstance(e.on_device_status("smk", True, T0)[0], ClearAlarm)


def test_unknown_commands_are_refused_with_reason():
    """Each refusal has a stable key and its values for the pages, and the English text for logs."""
    e = engine()
    refusals = [(("arm", "nowhere"), "unknown zone", ZoneRefusal.UNKNOWN_ZONE, {"zone": "nowhere"}),
                (("explode", "gate"), "unknown action", ZoneRefusal.UNKNOWN_ACTION, {"action": "explode"}),
                (("reset", "p"), "not latched", ZoneRefusal.NOT_LATCHED, {"zone": "p"})]
    for (action, zone), text, key, params in refusals:
        with pytest.raises(CommandError, match=text) as refused:
            e.command(action, zone, "x", T0)
        assert (refused.value.key, refused.value.params) == (key, params)


# --- journal and outbox ------------------------------------------------------------------
def test_outbox_orders_alarms_first_and_caps_only_telemetry(tmp_path):
    j = Journal(tmp_path / "j.sqlite3", max_outbox=100)
    with j.transaction(durable=False):
        for i in range(150):
            j.outbox.put("t", f"tele{i}".encode(), Priority.TELEMETRY)
        for i in range(120):
            j.outbox.put("a", f"alarm{i}".encode(), Priority.ALARM)
        dropped = j.outbox.enforce_cap()
    assert dropped == 150  # every telemetry row goes before any alarm
    assert j.outbox.count() == 120
    batch = j.outbox.next_batch(5)
    assert [b.payload for b in batch] == [f"alarm{i}".encode() for i in range(5)]
    assert j.outbox.next_batch(2, exclude={batch[0].seq}) == batch[1:3]
    with j.transaction():
        j.outbox.mark_acked([b.seq for b in batch], now=100.0)
    assert j.outbox.count() == 115 and j.outbox.next_batch(1)[0].payload == b"alarm5"
    with j.transaction():
        assert j.outbox.replay_since(100.0) == 5
    assert j.outbox.count() == 120
    with j.transaction():
        j.outbox.mark_acked([batch[0].seq], now=50.0)
        assert j.outbox.purge_acked(before=60.0) == 1
    assert j.outbox.count() == 119


def test_journal_is_atomic_and_survives_reopen(tmp_path):
    path = tmp_path / "j.sqlite3"
    j = Journal(path, 1000)
    rec = AlarmRecord(uuid.uuid4(), AlarmKind.PANIC, "critical", "p", "p", "btn", T0, {})
    with pytest.raises(RuntimeError):
        with j.transaction():
            j.insert_alarm(rec)
            j.outbox.put("x", b"y", Priority.ALARM)
            raise RuntimeError("crash in the middle")
    assert j.alarm(rec.alarm_id) is None and j.outbox.count() == 0  # nothing half-written
    with j.transaction():
        j.insert_alarm(rec)
        pe = j.insert_police_event(rec.alarm_id, AlarmKind.PANIC, False, 1, T0)
    j.close()
    j2 = Journal(path, 1000)
    assert j2.active_alarm("p", AlarmKind.PANIC) == rec.alarm_id
    pending = j2.pending_police_events()
    assert [p.event_id for p in pending] == [pe.event_id] and pending[0].ts == T0
    with j2.transaction():
        j2.mark_police_delivered(pe.event_id, T0, "127.0.0.1:1", 1)
    assert j2.pending_police_events() == []


# --- device messages ---------------------------------------------------------------------
def test_device_messages_validated_with_reasons():
    known = {"btn"}
    good = ev("btn", DeviceEventKind.PRESS).model_dump_json().encode()
    assert isinstance(parse_device_message("cg/dev/btn/event", good, known), DeviceEvent)
    assert parse_device_message("cg/dev/btn/status", b"offline", known) == DeviceStatus("btn", False)
    cases = [
        ("cg/dev/ghost/event", good, "unknown device"),
        ("cg/dev/btn/event", b"{not json", "invalid event"),
        ("cg/dev/btn/event", b'{"id": 5}', "invalid event"),
        ("cg/dev/btn/event", b"x" * 5000, "exceeds"),
        ("cg/dev/btn/status", b"maybe", "status must be"),
        ("cg/dev/btn/telemetry", json.dumps({"id": str(uuid.uuid4()), "device_id": "btn", "ts": "2026-01-01T00:00:00Z",
                                              "readings": {"t": "hot"}}).encode(), "readings.t"),
        ("cg/dev/a/b/event", good, "is not cg/dev"),
    ]
    for topic, payload, reason in cases:
        with pytest.raises(ContractError) as err:
            parse_device_message(topic, payload, known)
        assert reason in err.value.reason, (topic, err.value.reason)
    other = ev("btn", DeviceEventKind.PRESS).model_copy(update={"device_id": "other"}).model_dump_json().encode()
    with pytest.raises(ContractError, match="does not match topic"):
        parse_device_message("cg/dev/btn/event", other, known)
