"""Gateway offline: the pure rule, and the watch against a real Mosquitto and SQLite store."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from wire.mqtt_client import make_client
from cloud.store.db import alarms, gateways
from cloud.alarms.gateway_watch import GatewaySeen, GatewayWatch, decide, offline_alarm_id, read_state
from tests.helpers import store_engine
from contracts.envelope import make_envelope
from contracts.topics import Stream, up
from tests.test_cloud_ingest import Publisher, start_cloud, wait_until

T0 = datetime(2026, 11, 23, 10, 0, 0, tzinfo=timezone.utc)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def test_rule_silence_will_grace_and_clear():
    quiet = GatewaySeen("F1", at(0), "online")
    assert decide([quiet], {}, at(30), 30, at(-100)) == [], "30 s exactly is not yet past the limit"
    [change] = decide([quiet], {}, at(31), 30, at(-100))
    assert change.raise_ and change.alarm_id == offline_alarm_id("F1", at(0)) and "31 s" in change.reason
    assert decide([quiet], {"F1": change.alarm_id}, at(40), 30, at(-100)) == [], "one active alarm per gateway"
    assert decide([quiet], {}, at(31), 30, at(10)) == [], "silence counts from when the cloud started listening"
    [will] = decide([GatewaySeen("F2", at(0), "offline")], {}, at(1), 30, at(-100))
    assert will.raise_ and "last will" in will.reason
    back = GatewaySeen("F1", at(50), "online")
    [clear] = decide([back], {"F1": change.alarm_id}, at(51), 30, at(-100))
    assert not clear.raise_ and clear.alarm_id == change.alarm_id


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    with store_engine(request, tmp_path, "watch") as engine:
        yield engine


def test_a_check_reads_only_the_gateways_that_may_change(engine):
    """A province's check must not read 10,000 rows a second: only the silent, the ones whose
    status says offline and the ones with an alarm to clear; and it decides as a full read would."""
    now = datetime.now(timezone.utc)
    rows = [dict(facility=f"F{i:04d}", last_seen_at=now, last_received_at=now - timedelta(seconds=i % 20),
                 last_type="heartbeat", status={"state": "online"}, status_state="online") for i in range(1000)]
    rows[7].update(last_received_at=now - timedelta(seconds=40))               # silent
    rows[8].update(status={"state": "offline"}, status_state="offline")        # its last will
    rows[9].update(last_received_at=now - timedelta(seconds=26))               # back, alarm to clear below
    with engine.begin() as conn:
        conn.execute(gateways.insert(), rows)
    watch = GatewayWatch(engine, threshold_s=25.0)
    watch._since = now - timedelta(hours=1)
    first = watch.check()
    assert sorted((c.facility, c.raise_) for c in first) == [("F0007", True), ("F0008", True), ("F0009", True)]
    with engine.begin() as conn:
        conn.execute(gateways.update().where(gateways.c.facility == "F0009").values(last_received_at=now))
    seen, active = read_state(engine, now, 25.0, now - timedelta(hours=1))
    assert sorted(g.facility for g in seen) == ["F0007", "F0008", "F0009"], "only those that may change are read"
    assert sorted(active) == ["F0007", "F0008", "F0009"]
    [clear] = watch.check()
    assert (clear.facility, clear.raise_) == ("F0009", False)
    assert decide(seen, active, now, 25.0, now - timedelta(hours=1)) == [clear]
    seen, _ = read_state(engine, now, 25.0, now - timedelta(seconds=10))
    assert sorted(g.facility for g in seen) == ["F0007", "F0008"], "no silence counted before the cloud listened"


def offline_alarms(cloud, facility: str) -> list:
    with cloud.engine.connect() as conn:
        return conn.execute(sa.select(alarms).where(alarms.c.facility == facility,
                                                    alarms.c.kind == "gateway_offline")).all()


def test_silence_raises_and_a_heartbeat_clears(mosquitto, tmp_path):
    fac = f"G{uuid.uuid4().hex[:6]}"
    cloud = start_cloud(mosquitto.url, f"sqlite:///{tmp_path / 'c.db'}", gateway_offline_s=1.0, gateway_check_s=0.1)
    pub = Publisher(mosquitto.url)
    try:
        pub.send(up(fac, Stream.HEARTBEAT), make_envelope(fac, "heartbeat", {}).to_bytes())
        wait_until(lambda: len(offline_alarms(cloud, fac)) == 1, what="gateway_offline after 1 s of silence")
        [row] = offline_alarms(cloud, fac)
        assert (row.state, row.severity, row.source) == ("active", "major", "gateway")
        pub.send(up(fac, Stream.HEARTBEAT), make_envelope(fac, "heartbeat", {}).to_bytes())
        wait_until(lambda: offline_alarms(cloud, fac)[0].state == "cleared", what="the alarm to clear")
        assert cloud.gateway_watch.raised >= 1 and cloud.gateway_watch.cleared >= 1
    finally:
        pub.close()
        cloud.stop()


def test_last_will_raises_at_once(mosquitto, tmp_path):
    fac = f"G{uuid.uuid4().hex[:6]}"
    cloud = start_cloud(mosquitto.url, f"sqlite:///{tmp_path / 'c.db'}", gateway_offline_s=600, gateway_check_s=0.1)
    gateway, addr = make_client(mosquitto.url, f"edge-{fac}")
    try:
        gateway.will_set(up(fac, Stream.STATUS), make_envelope(fac, "status.gateway", {"state": "offline"}).to_bytes(),
                         qos=1, retain=True)
        gateway.connect(addr.host, addr.port)
        gateway.loop_start()
        info = gateway.publish(up(fac, Stream.STATUS),
                               make_envelope(fac, "status.gateway", {"state": "online"}).to_bytes(), qos=1, retain=True)
        info.wait_for_publish(5)
        wait_until(lambda: cloud.counters["stored"] == 1, what="the online status")
        assert offline_alarms(cloud, fac) == []
        gateway.socket().close()  # the connection drops without DISCONNECT: the broker sends the will
        wait_until(lambda: len(offline_alarms(cloud, fac)) == 1, what="gateway_offline from the last will")
        assert offline_alarms(cloud, fac)[0].detail["reason"].startswith("its last will")
    finally:
        gateway.loop_stop()
        cloud.stop()
