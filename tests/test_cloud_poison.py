"""One bad or flooding gateway never hurts the others (issue 10): poison is dead-lettered and
acknowledged, a flood is throttled while alarms pass, and a report dated ahead pins no state."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import orjson
import pytest
import sqlalchemy as sa

from cloud.config import CloudConfig
from cloud.ingest.consumer import IngestConsumer
from cloud.ingest.counters import IngestCounters
from cloud.ingest.dead_letters import dead_letters
from cloud.ingest.throttle import FacilityBuckets
from cloud.ingest.workers import facility_buckets
from cloud.ingest.validate import validate_message
from cloud.ingest.writer import IngestWriter
from cloud.registry.records import register_facility
from cloud.status.reports import latest_bodies
from cloud.store.db import alarms, create_schema, envelopes, make_engine
from contracts.envelope import make_envelope
from contracts.topics import Stream, up
from helpers import store_url
from tests.test_cloud_ingest import alarm_body, count, start_cloud, wait_until
from tests.test_compliance_snapshot import registration
from wire.mqtt_client import make_client

GOOD_FACILITIES = 100
GOOD_PER_FACILITY = 50
POISON_PER_KIND = 250
BAD = "FBAD"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    with store_url(request, tmp_path, "poison") as url:
        yield url


class Burst:
    """A paho publisher that queues everything at QoS 1, then waits for every PUBACK."""

    def __init__(self, url: str):
        self.client, addr = make_client(url)
        self.client.max_inflight_messages_set(200)
        self.client.connect(addr.host, addr.port)
        self.client.loop_start()
        self.infos = []

    def send(self, topic: str, payload: bytes) -> None:
        self.infos.append(self.client.publish(topic, payload, qos=1))

    def confirm(self) -> None:
        for info in self.infos:
            info.wait_for_publish(30)
        assert all(i.is_published() for i in self.infos), "the broker did not take every message"
        self.infos = []

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _poison(now: datetime, owned_alarm: uuid.UUID) -> list[tuple[str, bytes, str]]:
    """(topic, payload, expected reason key) for each kind of poison, POISON_PER_KIND of each."""
    out = []
    for i in range(POISON_PER_KIND):
        big_seq = make_envelope(BAD, "heartbeat", {"n": i}).model_dump(mode="json") | {"seq": 2**63 + i}
        out.append((up(BAD, Stream.HEARTBEAT), _json(big_seq), "invalid_envelope"))
        year_9999 = make_envelope(BAD, "heartbeat", {"n": i}).model_dump(mode="json") | {
            "ts": f"9999-12-31T23:59:{i % 60:02d}.{i:03d}Z"}
        out.append((up(BAD, Stream.HEARTBEAT), _json(year_9999), "ts_ahead"))
        day_ahead = make_envelope(BAD, "camera.health", {"cameras": []}, ts=now + timedelta(days=1, seconds=i))
        out.append((up(BAD, Stream.CAMERA), day_ahead.to_bytes(), "ts_ahead"))
        # Valid by every contract, refused by the store: an alarm id another facility owns.
        conflict = make_envelope(BAD, "alarm.cleared", alarm_body(owned_alarm), ts=now)
        out.append((up(BAD, Stream.ALARM), conflict.to_bytes(), "alarm_facility_conflict"))
    return out


def _json(raw: dict) -> bytes:
    return orjson.dumps(raw)


def test_poison_from_one_facility_is_dead_lettered_once_and_never_blocks_the_others(mosquitto, db_url, caplog):
    client_id = f"ingest-{uuid.uuid4().hex[:8]}"
    cloud = start_cloud(mosquitto.url, db_url, client_id=client_id, shared_subscription=True, batch_max=500)
    pub = Burst(mosquitto.url)
    try:
        now = datetime.now(timezone.utc)
        owned = uuid.uuid4()
        first = make_envelope("G000", "alarm.raised", alarm_body(owned))
        pub.send(up("G000", Stream.ALARM), first.to_bytes())
        pub.confirm()
        wait_until(lambda: cloud.counters["stored"] == 1, what="the owned alarm")

        poison = _poison(now, owned)
        good = []
        for i in range(GOOD_FACILITIES * GOOD_PER_FACILITY):
            fac = f"G{i % GOOD_FACILITIES:03d}"
            if i % 2:
                env = make_envelope(fac, "telemetry.batch", {"points": [
                    {"device_id": "th-1", "metric": "temp_c", "value": 20 + i % 7,
                     "ts": (now - timedelta(seconds=i)).isoformat()}]}, seq=i)
                good.append((up(fac, Stream.TELEMETRY), env))
            else:
                good.append((up(fac, Stream.EVENT), make_envelope(fac, "event.device", {"device_id": "door-1"},
                                                                   seq=i)))
        # One poison message after every five good ones, in one stream through the broker.
        for k, (topic, env) in enumerate(good):
            pub.send(topic, env.to_bytes())
            if k % 5 == 4:
                topic, payload, _ = poison[k // 5]
                pub.send(topic, payload)
        pub.confirm()

        wait_until(lambda: cloud.counters["stored"] == 1 + len(good)
                   and cloud.counters["dead_lettered"] == len(poison), timeout=120,
                   what=f"every good one stored and every poison one dead-lettered: {cloud.counters}")
        assert cloud.counters["store_errors"] == 0, cloud.counters
        with cloud.engine.connect() as conn:
            stored_ids = set(conn.execute(sa.select(envelopes.c.id).where(envelopes.c.facility != BAD)).scalars())
            kept = conn.execute(sa.select(dead_letters.c.facility, dead_letters.c.reason_key, sa.func.count())
                                .group_by(dead_letters.c.facility, dead_letters.c.reason_key)).all()
            owner = conn.execute(sa.select(alarms.c.facility, alarms.c.state)
                                 .where(alarms.c.alarm_id == str(owned))).one()
        assert stored_ids == {str(env.id) for _, env in good} | {str(first.id)}
        assert count(cloud, envelopes, envelopes.c.facility == BAD) == 0
        expected: dict[tuple, int] = {}
        for _, _, key in poison:
            expected[(BAD, key)] = expected.get((BAD, key), 0) + 1
        assert {(f, k): n for f, k, n in kept} == expected
        assert cloud.counters["dead_lettered_by_facility"] == {BAD: len(poison)}
        assert tuple(owner) == ("G000", "active"), "the poison must not have touched the owner's alarm"
        # Counted in full above; logged a line per kind of reject per interval, not a line each.
        lines = [r for r in caplog.records if r.getMessage().startswith("rejected message on")]
        assert 0 < len(lines) <= 4 * len(expected), f"{len(lines)} log lines for {len(poison)} poison messages"
    finally:
        pub.close()
        cloud.stop()

    # Everything was acknowledged: a new session on the same client id gets nothing again.
    again = start_cloud(mosquitto.url, db_url, client_id=client_id, shared_subscription=True)
    pub = Burst(mosquitto.url)
    try:
        sentinel = make_envelope("G001", "heartbeat", {})
        pub.send(up("G001", Stream.HEARTBEAT), sentinel.to_bytes())
        pub.confirm()
        wait_until(lambda: again.counters["stored"] == 1, what="the sentinel after the restart")
        assert again.counters["received"] == 1, f"redelivered after the restart: {again.counters}"
        assert count(again, dead_letters) == len(poison)
    finally:
        pub.close()
        again.stop()


def test_a_flooding_gateway_is_throttled_while_alarms_from_it_and_others_are_stored(mosquitto, tmp_path):
    # A bucket far below the defaults (an hour of a gateway's batches at once), so a short flood outlasts it.
    cloud = start_cloud(mosquitto.url, f"sqlite:///{tmp_path / 'c.db'}", facility_rate_per_s=5.0, facility_burst=20)
    pub = Burst(mosquitto.url)
    try:
        now = datetime.now(timezone.utc)
        flood = [make_envelope("FLOOD", "telemetry.batch", {"points": [
            {"device_id": "th-1", "metric": "temp_c", "value": 1.0,
             "ts": (now - timedelta(milliseconds=i)).isoformat()}]})
            for i in range(2000)]
        calm = [make_envelope("CALM", "telemetry.batch", {"points": [
            {"device_id": "th-1", "metric": "temp_c", "value": 1.0, "ts": (now - timedelta(seconds=i)).isoformat()}]})
            for i in range(10)]
        raised = [make_envelope(f, "alarm.raised", alarm_body(uuid.uuid4())) for f in ("FLOOD", "CALM") * 5]
        for i, env in enumerate(flood):
            pub.send(up("FLOOD", Stream.TELEMETRY), env.to_bytes())
            if i % 200 == 199:  # alarms and a calm neighbour's telemetry in the middle of the flood
                pub.send(up(raised[i // 200].facility, Stream.ALARM), raised[i // 200].to_bytes())
                pub.send(up("CALM", Stream.TELEMETRY), calm[i // 200].to_bytes())
        pub.confirm()
        total = len(flood) + len(calm) + len(raised)
        wait_until(lambda: cloud.counters["stored"] + cloud.counters["throttled"] == total, timeout=60,
                   what=f"every message stored or throttled: {cloud.counters}")

        with cloud.engine.connect() as conn:
            stored_alarms = set(conn.execute(sa.select(alarms.c.alarm_id)).scalars())
            calm_stored = conn.execute(sa.select(sa.func.count()).select_from(envelopes)
                                       .where(envelopes.c.facility == "CALM", envelopes.c.type == "telemetry.batch")
                                       ).scalar_one()
        assert stored_alarms == {env.body["alarm_id"] for env in raised}, "an alarm was throttled"
        assert calm_stored == len(calm), "the calm facility paid for the flood"
        assert cloud.counters["throttled_by_facility"].keys() == {"FLOOD"}
        # The burst and what the rate refilled meanwhile got through; most of the flood did not.
        assert cloud.counters["throttled"] > len(flood) // 2, cloud.counters
    finally:
        pub.close()
        cloud.stop()


def test_throttled_messages_are_acknowledged_in_turn_not_ahead(tmp_path):
    """Mosquitto walks its in-flight list from the oldest for every PUBACK: a throttled message
    acknowledged at once, ahead of older ones still waiting for their commit, cost the broker
    six times a stored message. It is acknowledged with its batch, in the order of arrival."""
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    create_schema(engine)
    counters = IngestCounters()
    writer = IngestWriter(engine, counters)
    consumer = IngestConsumer("mqtt://127.0.0.1:1", writer, counters, client_id="t",
                              buckets=FacilityBuckets(rate_per_s=0.001, burst=1))
    now = datetime.now(timezone.utc).isoformat()
    for mid, fac in ((1, "F1"), (2, "F1"), (3, "F2")):  # the second from F1 is over its burst
        env = make_envelope(fac, "telemetry.batch", {"points": [{"device_id": "th-1", "metric": "temp_c",
                                                                 "value": 20.0, "ts": now}]})
        consumer._on_message(up(fac, Stream.TELEMETRY), env.to_bytes(), mid, 1)
    session = consumer._session
    assert session._acks == [], "acknowledged before the messages ahead of it were stored"
    writer.start()
    writer.stop()
    assert session._acks == [1, 2, 3]
    seen = counters.snapshot()
    assert (seen["stored"], seen["throttled"], seen["duplicates"]) == (2, 1, 0), seen
    session.stop()
    engine.dispose()


def test_ingest_workers_share_each_facility_bucket():
    """The settings are per facility for the whole cloud: N workers, each dealt about 1/N of a
    facility's messages, hold 1/N of the rate and burst each (not N times the setting together)."""
    one = facility_buckets(CloudConfig(facility_rate_per_s=10.0, facility_burst=600))
    assert (one.rate, one.burst) == (10.0, 600.0)
    four = facility_buckets(CloudConfig(facility_rate_per_s=10.0, facility_burst=600, ingest_workers=4,
                                        shared_subscription=True))
    assert (four.rate, four.burst) == (2.5, 150.0)
    assert facility_buckets(CloudConfig(facility_burst=3, ingest_workers=4, shared_subscription=True)).burst == 1.0


def test_token_bucket_refills_at_its_rate_and_never_holds_alarms():
    t = [0.0]
    buckets = FacilityBuckets(rate_per_s=2.0, burst=3, clock=lambda: t[0])
    assert [buckets.allow("F1", "telemetry") for _ in range(4)] == [True, True, True, False]
    assert buckets.allow("F2", "telemetry"), "another facility has its own bucket"
    assert all(buckets.allow("F1", s) for s in ("alarm", "event", "camera", "retention", "heartbeat", "status")
               for _ in range(100)), "only telemetry is throttled"
    t[0] = 1.0  # two tokens back
    assert [buckets.allow("F1", "telemetry") for _ in range(3)] == [True, True, False]
    t[0] = 100.0  # never more than the burst
    assert sum(buckets.allow("F1", "telemetry") for _ in range(10)) == 3


def test_a_report_dated_ahead_does_not_decide_the_shown_state(tmp_path):
    """Chosen by receive time: a report whose gateway clock runs ahead (within the bounds ingest
    admits) is replaced by the next one received; one beyond the bounds never gets in (above)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    create_schema(engine)
    t0 = datetime.now(timezone.utc).replace(microsecond=0)
    with engine.begin() as conn:  # the pages read the reports of registered facilities
        register_facility(conn, registration("F1", 1), t0)
    ahead = make_envelope("F1", "camera.health", {"cameras": [{"camera_id": "cam-1", "state": "streaming"}]},
                          ts=t0 + timedelta(minutes=4))
    later = make_envelope("F1", "camera.health", {"cameras": [{"camera_id": "cam-1", "state": "stalled",
                                                               "fault": "offline"}]}, ts=t0)
    for env, received in ((ahead, t0), (later, t0 + timedelta(seconds=30))):
        writer = IngestWriter(engine, IngestCounters())
        writer.submit(validate_message(up("F1", Stream.CAMERA), env.to_bytes(), received))
        writer.start()
        writer.stop()
    with engine.connect() as conn:
        ts, body = latest_bodies(conn, "camera.health", ["F1"])["F1"]
    engine.dispose()
    assert body["cameras"][0]["fault"] == "offline", "the report dated ahead still decides"
    assert ts == later.ts, "the time shown is the report's own time of origin"


def test_an_envelope_the_database_refuses_is_isolated_from_its_batch(mosquitto, pg_url):
    """A constraint the contracts do not know of (here one the test adds to PostgreSQL): the
    batch is halved down to the refused envelopes, which are dead-lettered; the rest are stored."""
    from helpers import fresh_pg_database
    with fresh_pg_database(pg_url, "refuse") as url:
        engine = make_engine(url)
        create_schema(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE envelopes ADD CONSTRAINT seq_below_a_million CHECK (seq < 1000000)")
        engine.dispose()
        good = [make_envelope("F1", "heartbeat", {}, seq=i) for i in range(60)]
        refused = [make_envelope("F1", "heartbeat", {}, seq=1_000_000 + i) for i in range(3)]
        cloud = start_cloud(mosquitto.url, url, batch_max=500)
        # Everything queued before the writer looks again: one batch holding both kinds.
        cloud.ingest.writer.stop()
        pub = Burst(mosquitto.url)
        try:
            for i, env in enumerate(good):
                pub.send(up("F1", Stream.HEARTBEAT), env.to_bytes())
                if i % 20 == 10:
                    pub.send(up("F1", Stream.HEARTBEAT), refused[i // 20].to_bytes())
            pub.confirm()
            wait_until(lambda: cloud.counters["received"] == len(good) + len(refused), what="all received")
            cloud.ingest.writer.start()
            wait_until(lambda: cloud.counters["stored"] == len(good) and cloud.counters["dead_lettered"] == 3,
                       what=f"the good stored, the refused dead-lettered: {cloud.counters}")
            with cloud.engine.connect() as conn:
                keys = conn.execute(sa.select(dead_letters.c.reason_key, dead_letters.c.reason)).all()
            assert [k for k, _ in keys] == ["store_refused"] * 3 and all("seq_below_a_million" in r for _, r in keys)
            assert cloud.counters["store_errors"] == 0
        finally:
            pub.close()
            cloud.stop()
