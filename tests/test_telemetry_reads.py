"""Telemetry read back through the store interface, from the relational table and from a real
VictoriaMetrics: the same answers from both (with points written twice to VictoriaMetrics), the
newest point visible at once even from a server hiding its last 30 s, the server's dedup flag
checked, and climate supervision working when ingest writes to VictoriaMetrics only (it used to
go blank)."""

from __future__ import annotations

import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from fastapi.testclient import TestClient

from cloud.alarms.events_bus import EventBus
from cloud.api.app import create_app
from cloud.api.auth import TokenGrant, TokenTable
from cloud.config import TokenEntry
from cloud.registry.records import FacilityRegistration, register_facility, uscc_check_char
from cloud.store.db import create_schema, make_engine, telemetry
from cloud.store.telemetry import InfluxTelemetryStore, RelationalTelemetryStore, SeriesKey, TelemetryRow
from contracts.envelope import make_envelope
from contracts.topics import Stream, up
from testing.services import free_port, victoria_metrics
from tests.test_cloud_ingest import Publisher, count, start_cloud, wait_until

BASE = datetime(2026, 7, 1, 2, 0, 0, tzinfo=timezone.utc)
METRICS = ("temperature", "humidity", "co2")


def flush(vm_url: str) -> None:
    # VictoriaMetrics makes fresh samples searchable every second or so; a test need not wait for that.
    urllib.request.urlopen(f"{vm_url}/internal/force_flush", timeout=5).read()


@pytest.fixture
def stores(vm_url, tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    create_schema(engine)
    vm = InfluxTelemetryStore(vm_url)
    yield engine, RelationalTelemetryStore(), vm
    vm.close()
    engine.dispose()


def _points(fac: str) -> list[TelemetryRow]:
    rows = []
    for k in range(21):
        # Every 61.25 s: points fall on and beside bucket edges, with milliseconds.
        ts = BASE + timedelta(milliseconds=61_250 * k)
        rows.append(TelemetryRow(fac, "t1", "temperature", ts, 20.0 + k * 0.5))
        rows.append(TelemetryRow(fac, "t1", "co2", ts, 600.0 + 17 * k))
        rows.append(TelemetryRow(fac, "t2", "temperature", ts, 30.0 - k))
    rows.append(TelemetryRow(fac, "t1", "temperature", BASE + timedelta(seconds=300), 99.0))  # exactly on an edge
    return rows


def test_both_stores_answer_the_same(stores, vm_url):
    engine, rel, vm = stores
    fac, other = f"R{uuid.uuid4().hex[:8]}", f"S{uuid.uuid4().hex[:8]}"
    points = _points(fac) + _points(other)
    with engine.begin() as conn:
        rel.write(conn, points)
    vm.write(None, points)
    # Some points again, as after a commit that failed once VictoriaMetrics had them: a mean over
    # a bucket holding some twice would move if the copies counted.
    vm.write(None, [p for p in points if p.device_id == "t1" and p.ts.second % 2 == 0])
    flush(vm_url)
    until = BASE + timedelta(minutes=30)
    with engine.connect() as conn:
        for since, upto, facility in ((BASE, until, fac), (BASE, BASE + timedelta(minutes=9, seconds=1), fac),
                                      (BASE + timedelta(minutes=3), until, None)):
            want = rel.latest(conn, METRICS, since, upto, facility=facility)
            got = vm.latest(None, METRICS, since, upto, facility=facility)
            mine = {k: v for k, v in got.items() if k.facility in (fac, other)}
            assert mine == want and len(want) == (3 if facility else 6), (since, upto, facility)
        keys = [SeriesKey(fac, "t1", "temperature"), SeriesKey(other, "t2", "temperature"),
                SeriesKey(fac, "t9", "co2")]
        since = BASE + timedelta(seconds=100)
        want = rel.readings(conn, keys, since, until)
        assert vm.readings(None, keys, since, until) == want
        assert len(want[keys[0]]) == 20 and keys[2] not in want
        key = keys[0]
        spans = ((BASE, until, 300), (BASE + timedelta(seconds=7), BASE + timedelta(seconds=1000), 120),
                 (BASE, BASE + timedelta(seconds=300), 60))
        for since, upto, step in spans:
            want = rel.buckets(conn, key, since, upto, step)
            got = vm.buckets(None, key, since, upto, step)
            assert [t for t, _ in got] == [t for t, _ in want] and want, (since, upto, step)
            assert [round(v, 9) for _, v in got] == [round(v, 9) for _, v in want], (since, upto, step)


@pytest.fixture(scope="module")
def bare_vm_url():
    """VictoriaMetrics as it starts by default: newest 30 s hidden, duplicates kept."""
    with victoria_metrics(flags=()) as url:
        yield url


def test_the_newest_point_is_read_at_once(bare_vm_url):
    vm = InfluxTelemetryStore(bare_vm_url)
    fac = f"N{uuid.uuid4().hex[:8]}"
    now = datetime.now(timezone.utc)
    vm.write(None, [TelemetryRow(fac, "t1", "temperature", now - timedelta(seconds=2), 23.5)])
    flush(bare_vm_url)
    got = vm.latest(None, METRICS, now - timedelta(hours=1), now, facility=fac)
    vm.close()
    assert got == {SeriesKey(fac, "t1", "temperature"): (now.replace(microsecond=now.microsecond // 1000 * 1000)
                                                         - timedelta(seconds=2), 23.5)}


def test_check_server_names_the_dedup_flag(vm_url, bare_vm_url):
    for url, problems in ((vm_url, 0), (bare_vm_url, 1)):
        store = InfluxTelemetryStore(url)
        found = store.check_server()
        store.close()
        assert len(found) == problems and all("dedup.minScrapeInterval" in p for p in found), (url, found)


def _registration(fid: str) -> FacilityRegistration:
    first17 = f"91370800{uuid.uuid4().int % 10**9:09d}"
    return FacilityRegistration.model_validate({
        "facility_id": fid, "name": f"园{fid}", "uscc": first17 + uscc_check_char(first17), "kind": "inclusive",
        "address": "a", "district": {"province": "p", "city": "c", "district": "d", "street": "s"},
        "devices": [{"device_id": "t1", "kind": "temperature", "name": "t", "zone": "活动室"}]})


def test_climate_supervision_reads_victoriametrics(mosquitto, vm_url, tmp_path):
    fac = f"C{uuid.uuid4().hex[:8]}"
    token = "t-health-0123456789"
    cloud = start_cloud(mosquitto.url, f"sqlite:///{tmp_path / 'c.db'}", shared_subscription=True,
                        telemetry_url=vm_url, tokens=[TokenEntry(token=token, user="h", role="health")])
    pub = Publisher(mosquitto.url)
    try:
        now = datetime.now(timezone.utc).replace(microsecond=0)
        with cloud.engine.begin() as conn:
            register_facility(conn, _registration(fac), now)
        # Sixteen minutes at 35 °C: out of range in any season, for longer than the 15 sustained.
        body = {"points": [{"device_id": "t1", "metric": "temperature", "value": 35.0,
                            "ts": (now - timedelta(minutes=16 - i)).isoformat()} for i in range(17)]}
        pub.send(up(fac, Stream.TELEMETRY), make_envelope(fac, "telemetry.batch", body).to_bytes())
        wait_until(lambda: cloud.counters["telemetry_points"] == 17, what="the batch to be stored")
        assert count(cloud, telemetry) == 0, "ingest wrote VictoriaMetrics only"
        flush(vm_url)
        [alarm_id] = cloud.health.run_once(now).raised
        auth = {"Authorization": f"Bearer {token}"}
        rooms = httpx.get(f"{cloud.url}/api/environment/rooms", params={"facility": fac}, headers=auth).json()
        [room] = rooms["items"]
        assert (room["zone"], room["latest"], room["in_range"], room["sustained"]) == ("活动室", 35.0, False, True)
        assert room["breach_since"].startswith((now - timedelta(minutes=16)).isoformat()[:19])
        series = httpx.get(f"{cloud.url}/api/environment/series", headers=auth, params={
            "facility": fac, "device_id": "t1", "metric": "temperature", "step_s": 600,
            "since": (now - timedelta(minutes=20)).isoformat(), "until": now.isoformat()}).json()
        assert [p["value"] for p in series["points"]] == [35.0, 35.0] and alarm_id
    finally:
        pub.close()
        cloud.stop()


def test_an_unreachable_telemetry_store_is_a_503_naming_it(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    create_schema(engine)
    down = InfluxTelemetryStore(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    app = create_app(engine=engine, bus=EventBus(), telemetry=down,
                     tokens=TokenTable([TokenGrant("t-health-0123456789", "h", "health")]))
    with TestClient(app) as client:
        r = client.get("/api/environment/rooms", headers={"Authorization": "Bearer t-health-0123456789"})
    down.close()
    engine.dispose()
    assert r.status_code == 503 and "telemetry query /api/v1/query failed" in r.json()["detail"], r.text
