"""Telemetry into a real VictoriaMetrics through the InfluxDB v2 write API, and the relational default."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timezone

import sqlalchemy as sa

from testing.services import free_port
from cloud.store.db import create_schema, envelopes, make_engine, telemetry
from cloud.store.telemetry import RelationalTelemetryStore, TelemetryRow, to_line_protocol
from contracts.envelope import make_envelope
from contracts.topics import Stream, up
from tests.test_cloud_ingest import Publisher, count, start_cloud, wait_until

ORIGIN = datetime(2026, 11, 23, 10, 0, 0, 250000, tzinfo=timezone.utc)


def export(vm_url: str, facility: str) -> list[dict]:
    # VictoriaMetrics makes fresh samples searchable every few seconds; a test need not wait for that.
    urllib.request.urlopen(f"{vm_url}/internal/force_flush", timeout=5).read()
    q = urllib.parse.urlencode({"match[]": f'cg_telemetry_value{{facility="{facility}"}}', "start": "0"})
    text = urllib.request.urlopen(f"{vm_url}/api/v1/export?{q}", timeout=5).read().decode()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def batch(facility: str) -> bytes:
    body = {"points": [{"device_id": "th-1", "metric": "temp_c", "value": 22.5, "ts": "2026-11-23T10:00:00.250Z"},
                       {"device_id": "th-1", "metric": "co2_ppm", "value": 640, "ts": "2026-11-23T10:00:00.250Z"}]}
    return make_envelope(facility, "telemetry.batch", body).to_bytes()


def test_points_reach_victoriametrics_once_with_their_origin_time(mosquitto, vm_url, tmp_path):
    fac = f"V{uuid.uuid4().hex[:8]}"
    cloud = start_cloud(mosquitto.url, f"sqlite:///{tmp_path / 'c.db'}", shared_subscription=True,
                        telemetry_url=vm_url)
    try:
        payload = batch(fac)
        pub = Publisher(mosquitto.url)
        pub.send(up(fac, Stream.TELEMETRY), payload)
        pub.send(up(fac, Stream.TELEMETRY), payload)  # the same envelope again (QoS 1 retry)
        pub.close()
        wait_until(lambda: cloud.counters["stored"] + cloud.counters["duplicates"] == 2, what="both copies handled")
        assert (cloud.counters["stored"], cloud.counters["duplicates"]) == (1, 1), cloud.counters
        assert cloud.counters["telemetry_points"] == 2
        assert count(cloud, telemetry) == 0, "with a telemetry server the relational table stays empty"
        wait_until(lambda: len(export(vm_url, fac)) == 2, what="the points to be searchable in VictoriaMetrics")
        series = {s["metric"]["metric"]: s for s in export(vm_url, fac)}
        origin_ms = int(ORIGIN.timestamp() * 1000)
        assert series["temp_c"]["values"] == [22.5] and series["temp_c"]["timestamps"] == [origin_ms]
        assert series["co2_ppm"]["values"] == [640] and series["co2_ppm"]["timestamps"] == [origin_ms]
        assert series["temp_c"]["metric"]["device"] == "th-1"
    finally:
        cloud.stop()


def test_failed_telemetry_write_leaves_the_envelope_for_redelivery(mosquitto, vm_url, tmp_path):
    fac = f"V{uuid.uuid4().hex[:8]}"
    db = f"sqlite:///{tmp_path / 'c.db'}"
    client_id = f"ingest-{uuid.uuid4().hex[:8]}"
    down = start_cloud(mosquitto.url, db, client_id=client_id, shared_subscription=True,
                       telemetry_url=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    pub = Publisher(mosquitto.url)
    try:
        pub.send(up(fac, Stream.TELEMETRY), batch(fac))
        wait_until(lambda: down.counters["store_errors"] >= 1, what="the failed write to be counted")
        assert down.counters["stored"] == 0
        assert count(down, envelopes) == 0, "an envelope whose points were not written must not be marked stored"
    finally:
        down.stop()
        pub.close()
    up_again = start_cloud(mosquitto.url, db, client_id=client_id, shared_subscription=True, telemetry_url=vm_url)
    try:
        wait_until(lambda: up_again.counters["stored"] == 1, what="the broker to deliver it again")
        wait_until(lambda: len(export(vm_url, fac)) == 2, what="its points in VictoriaMetrics")
    finally:
        up_again.stop()


def test_line_protocol_carries_tags_and_origin_milliseconds():
    row = TelemetryRow("F1", "th-1", "temp_c", ORIGIN, 22.5)
    assert to_line_protocol([row, row._replace(metric="co2_ppm", value=640)]) == (
        b"cg_telemetry,facility=F1,device=th-1,metric=temp_c value=22.5 1795428000250\n"
        b"cg_telemetry,facility=F1,device=th-1,metric=co2_ppm value=640.0 1795428000250")
    # The store keeps the formatted series heads between batches: the lines must not change.
    heads: dict = {}
    first = to_line_protocol([row], heads)
    assert heads and to_line_protocol([row._replace(value=1.0)], heads) == first.replace(b"=22.5 ", b"=1.0 ")


def test_relational_rows_match_what_sqlalchemy_writes(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    create_schema(engine)
    store = RelationalTelemetryStore()
    with engine.begin() as conn:
        conn.execute(telemetry.insert().values(facility="F1", device_id="th-1", metric="temp_c", ts=ORIGIN, value=1.0))
        # The same key through the fast path must hit the unique key, a new one must be stored.
        new = store.write(conn, [TelemetryRow("F1", "th-1", "temp_c", ORIGIN, 2.0),
                                 TelemetryRow("F1", "th-1", "temp_c", ORIGIN.replace(microsecond=0), 3.0)])
    assert new == 1
    with engine.connect() as conn:
        rows = conn.execute(sa.select(telemetry.c.ts, telemetry.c.value).order_by(telemetry.c.ts)).all()
    assert rows == [(ORIGIN.replace(microsecond=0), 3.0), (ORIGIN, 1.0)]
    engine.dispose()
