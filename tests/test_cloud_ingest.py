"""Cloud ingest against a real Mosquitto and real SQLite / PostgreSQL stores."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from wire.mqtt_client import make_client
from cloud.alarms.records import get_alarm
from cloud.config import CloudConfig
from cloud.store.db import alarms, envelopes, gateways, telemetry
from cloud.main import CloudService
from contracts.alarms import AlarmBody, AlarmKind, Severity
from contracts.envelope import MAX_ENVELOPE_BYTES, make_envelope
from contracts.timefmt import iso_utc
from contracts.topics import Stream, up
from cloud.ingest.dead_letters import dead_letters
from helpers import store_url

FAC = "F001"


def wait_until(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    tick = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        tick.wait(0.05)
    assert predicate(), f"timed out waiting for {what}"


class Publisher:
    """A plain paho client publishing QoS 1 and waiting for the broker's PUBACK."""

    def __init__(self, url: str):
        self.client, addr = make_client(url)
        self.client.connect(addr.host, addr.port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(5)
        assert info.is_published(), f"broker did not confirm publish on {topic}"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(mosquitto):
    p = Publisher(mosquitto.url)
    yield p
    p.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh store per test: a SQLite file, or a new database in the session's PostgreSQL."""
    with store_url(request, tmp_path, "t") as url:
        yield url


def start_cloud(broker_url: str, db: str, **kw) -> CloudService:
    config = CloudConfig(broker_url=broker_url, db_url=db, port=0,
                         client_id=kw.pop("client_id", f"ingest-{uuid.uuid4().hex[:8]}"), **kw)
    cloud = CloudService(config).start()
    assert cloud.wait_ingest_ready(), "ingest never subscribed"
    return cloud


def count(cloud: CloudService, table, *where) -> int:
    with cloud.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()


def alarm_body(alarm_id: uuid.UUID, **kw) -> AlarmBody:
    return AlarmBody(alarm_id=alarm_id, kind=kw.pop("kind", AlarmKind.PANIC), severity=Severity.CRITICAL,
                     source="btn-1", zone="room-2", device_id="btn-1", **kw)


def test_each_kind_stored_once_and_duplicates_counted(mosquitto, publisher, db_url):
    cloud = start_cloud(mosquitto.url, db_url, shared_subscription=True)
    try:
        origin = (datetime.now(timezone.utc) - timedelta(days=1)).replace(microsecond=123000)
        aid = uuid.uuid4()
        raised = make_envelope(FAC, "alarm.raised", alarm_body(aid), ts=origin)
        points = {"points": [{"device_id": "th-1", "metric": "temp_c", "value": 22.5, "ts": "2026-11-23T10:00:00Z"},
                             {"device_id": "th-1", "metric": "co2_ppm", "value": 640, "ts": "2026-11-23T10:00:00Z"}]}
        batch = make_envelope(FAC, "telemetry.batch", points)
        batch_resent = make_envelope(FAC, "telemetry.batch", points)  # new id, same points
        sent = [
            (Stream.ALARM, raised), (Stream.ALARM, raised),  # the same envelope twice
            (Stream.EVENT, make_envelope(FAC, "event.device", {"device_id": "door-1", "event": "open"})),
            (Stream.TELEMETRY, batch), (Stream.TELEMETRY, batch_resent),
            (Stream.HEARTBEAT, make_envelope(FAC, "heartbeat", {"uptime_s": 5})),
            (Stream.STATUS, make_envelope(FAC, "status.gateway", {"police_link": "up"})),
        ]
        for stream, env in sent:
            publisher.send(up(FAC, stream), env.to_bytes())
        wait_until(lambda: cloud.counters["stored"] + cloud.counters["duplicates"] == len(sent), what="all ingested")

        assert cloud.counters["stored"] == 6 and cloud.counters["duplicates"] == 1, cloud.counters
        assert count(cloud, envelopes) == 6
        assert count(cloud, envelopes, envelopes.c.id == str(raised.id)) == 1
        assert count(cloud, telemetry) == 2
        with cloud.engine.connect() as conn:
            row = conn.execute(sa.select(alarms).where(alarms.c.alarm_id == str(aid))).one()
            gw = conn.execute(sa.select(gateways).where(gateways.c.facility == FAC)).one()
        assert row.raised_at == origin, "raised_at must be the time at origin, not of arrival"
        assert (row.kind, row.zone, row.state) == ("panic", "room-2", "active")
        assert gw.status == {"police_link": "up"}
    finally:
        cloud.stop()


def test_delivered_before_raised_joins_by_alarm_id(mosquitto, publisher, tmp_path):
    cloud = start_cloud(mosquitto.url, f"sqlite:///{tmp_path / 'c.db'}")
    try:
        aid = uuid.uuid4()
        t0 = (datetime.now(timezone.utc) - timedelta(hours=1)).replace(microsecond=0)
        delivered = make_envelope(FAC, "alarm.delivered", alarm_body(
            aid, delivered_at=iso_utc(t0 + timedelta(milliseconds=250)), receiver="127.0.0.1:9000"),
            ts=t0 + timedelta(seconds=1))
        publisher.send(up(FAC, Stream.ALARM), delivered.to_bytes())
        wait_until(lambda: cloud.counters["stored"] == 1)
        publisher.send(up(FAC, Stream.ALARM), make_envelope(FAC, "alarm.raised", alarm_body(aid), ts=t0).to_bytes())
        publisher.send(up(FAC, Stream.ALARM), make_envelope(
            FAC, "alarm.cleared", alarm_body(aid), ts=t0 + timedelta(minutes=5)).to_bytes())
        wait_until(lambda: cloud.counters["stored"] == 3)

        assert count(cloud, alarms) == 1
        rec = get_alarm(cloud.engine, aid)
        assert rec.raised_at == t0 and rec.sort_ts == t0
        assert rec.delivered_at == t0 + timedelta(milliseconds=250)
        assert rec.delivery_ms == 250 and rec.receiver == "127.0.0.1:9000"
        assert rec.state.value == "cleared" and rec.cleared_at == t0 + timedelta(minutes=5)
    finally:
        cloud.stop()


def test_bad_input_rejected_with_reason_and_consumer_goes_on(mosquitto, publisher, tmp_path):
    cloud = start_cloud(mosquitto.url, f"sqlite:///{tmp_path / 'c.db'}")
    try:
        owned = uuid.uuid4()
        publisher.send(up(FAC, Stream.ALARM), make_envelope(FAC, "alarm.raised", alarm_body(owned)).to_bytes())
        wait_until(lambda: cloud.counters["stored"] == 1)
        good = make_envelope(FAC, "heartbeat", {})
        wrong_types = good.model_dump(mode="json") | {"seq": "twelve", "ts": 5}
        unknown = good.model_dump(mode="json") | {"type": "alarm.exploded", "id": str(uuid.uuid4())}
        bad_alarm = make_envelope(FAC, "alarm.raised", {"alarm_id": "nope", "kind": "panic"})
        cases = {
            "malformed_json": (up(FAC, Stream.HEARTBEAT), b'{"v": 1, "id": '),
            "invalid_envelope": (up(FAC, Stream.HEARTBEAT), json.dumps(wrong_types).encode()),
            "oversized": (up(FAC, Stream.HEARTBEAT), b"{" + b" " * MAX_ENVELOPE_BYTES + b"}"),
            "facility_mismatch": (up("F999", Stream.HEARTBEAT), good.to_bytes()),
            "unknown_type": (up(FAC, Stream.ALARM), json.dumps(unknown).encode()),
            "wrong_stream": (up(FAC, Stream.ALARM), make_envelope(FAC, "heartbeat", {}).to_bytes()),
            "invalid_body": (up(FAC, Stream.ALARM), bad_alarm.to_bytes()),
            # Another gateway naming an alarm_id it does not own.
            "alarm_facility_conflict": (up("F002", Stream.ALARM),
                                        make_envelope("F002", "alarm.cleared", alarm_body(owned)).to_bytes()),
        }
        for topic, payload in cases.values():
            publisher.send(topic, payload)
        publisher.send(up(FAC, Stream.HEARTBEAT), good.to_bytes())
        wait_until(lambda: cloud.counters["stored"] == 2, what="the good message after the bad ones")

        by_reason = cloud.counters["rejected_by_reason"]
        assert by_reason == {key: 1 for key in cases}, by_reason
        assert cloud.counters["rejected"] == len(cases)
        assert count(cloud, envelopes) == 2
        # Each refused message kept once, with its reason, under the facility its topic names.
        wait_until(lambda: cloud.counters["dead_lettered"] == len(cases), what="the dead letters")
        with cloud.engine.connect() as conn:
            kept = {r.reason_key: r for r in conn.execute(sa.select(dead_letters))}
        assert set(kept) == set(cases)
        assert kept["facility_mismatch"].facility == "F999" and kept["alarm_facility_conflict"].facility == "F002"
        assert kept["oversized"].payload_bytes == len(cases["oversized"][1]) and len(kept["oversized"].payload) == 4096
        assert kept["malformed_json"].payload == cases["malformed_json"][1]
        assert get_alarm(cloud.engine, owned).state.value == "active"
    finally:
        cloud.stop()


def test_broker_restart_while_ingest_runs(mosquitto, tmp_path):
    cloud = start_cloud(mosquitto.url, f"sqlite:///{tmp_path / 'c.db'}")
    try:
        p = Publisher(mosquitto.url)
        p.send(up(FAC, Stream.HEARTBEAT), make_envelope(FAC, "heartbeat", {}).to_bytes())
        p.close()
        wait_until(lambda: cloud.counters["stored"] == 1)
        mosquitto.restart()
        wait_until(lambda: cloud.ingest.consumer.subscribed.is_set(), timeout=15, what="ingest to reconnect")
        p = Publisher(mosquitto.url)
        for _ in range(3):
            p.send(up(FAC, Stream.HEARTBEAT), make_envelope(FAC, "heartbeat", {}).to_bytes())
        p.close()
        wait_until(lambda: cloud.counters["stored"] == 4, what="messages after the broker restart")
    finally:
        cloud.stop()


@pytest.mark.parametrize("shared", [False, True], ids=["mqtt311", "mqtt5-shared"])
def test_messages_published_while_cloud_is_down_are_stored_once(mosquitto, publisher, tmp_path, shared):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    client_id = f"ingest-{uuid.uuid4().hex[:8]}"
    first = start_cloud(mosquitto.url, db, client_id=client_id, shared_subscription=shared)
    before = make_envelope(FAC, "heartbeat", {})
    publisher.send(up(FAC, Stream.HEARTBEAT), before.to_bytes())
    wait_until(lambda: first.counters["stored"] == 1)
    first.stop()

    sent = [make_envelope(FAC, "alarm.raised", alarm_body(uuid.uuid4()), seq=i) for i in range(20)]
    for env in sent:
        publisher.send(up(FAC, Stream.ALARM), env.to_bytes())
    publisher.send(up(FAC, Stream.ALARM), sent[0].to_bytes())  # a retry by the gateway
    publisher.send(up(FAC, Stream.HEARTBEAT), before.to_bytes())  # already stored before the stop

    second = start_cloud(mosquitto.url, db, client_id=client_id, shared_subscription=shared)
    try:
        wait_until(lambda: second.counters["stored"] + second.counters["duplicates"] == 22,
                   what="the messages queued at the broker")
        assert second.counters["stored"] == 20 and second.counters["duplicates"] == 2, second.counters
        assert count(second, alarms) == 20
        assert count(second, envelopes) == 21
    finally:
        second.stop()
