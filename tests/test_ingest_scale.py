"""Ingest split over worker processes by an MQTT v5 shared subscription, into PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from cloud.config import CloudConfig
from cloud.store.db import create_schema, envelopes, gateways, make_engine, telemetry
from cloud.ingest.counters import IngestCounters
from cloud.ingest.validate import validate_message
from cloud.ingest.writer import IngestWriter
from cloud.main import CloudService
from contracts.envelope import TYPE_STREAM, make_envelope
from contracts.errors import ContractError
from contracts.topics import Stream, up
from helpers import fresh_pg_database
from tests.test_cloud_ingest import Publisher, count, db_url, wait_until  # noqa: F401 (db_url: a fixture)


@pytest.fixture
def pg_db(pg_url):
    with fresh_pg_database(pg_url, "t") as url:
        yield url


# Yesterday: origin times must lie within the contracts' bounds of the time they are received.
DAY = (datetime.now(timezone.utc) - timedelta(days=1)).date()


def points(n: int, second: int) -> dict:
    return {"points": [{"device_id": f"th-{k}", "metric": "temp_c", "value": 20 + k,
                        "ts": f"{DAY}T10:00:{second:02d}Z"} for k in range(n)]}


def test_two_workers_split_the_load_and_store_everything_once(mosquitto, pg_db):
    config = CloudConfig(broker_url=mosquitto.url, db_url=pg_db, port=0, shared_subscription=True,
                         ingest_workers=2, client_id=f"ingest-{uuid.uuid4().hex[:8]}")
    cloud = CloudService(config).start()
    try:
        assert cloud.wait_ingest_ready(30), "the worker processes never subscribed"
        pub = Publisher(mosquitto.url)
        sent = [make_envelope(f"F{i % 7}", "telemetry.batch", points(3, i % 60)) for i in range(300)]
        for env in sent:
            pub.send(up(env.facility, Stream.TELEMETRY), env.to_bytes())
        for env in sent[:30]:  # retries: land on either worker, possibly while the first copy is in flight
            pub.send(up(env.facility, Stream.TELEMETRY), env.to_bytes())
        pub.send(up("F0", Stream.TELEMETRY), b'{"v": 1, "id": ')
        pub.close()
        wait_until(lambda: cloud.counters["stored"] + cloud.counters["duplicates"] == 330
                   and cloud.counters["rejected"] == 1, timeout=30, what="every message accounted for")

        assert cloud.counters["stored"] == 300 and cloud.counters["duplicates"] == 30, cloud.counters
        assert cloud.counters["rejected_by_reason"] == {"malformed_json": 1}
        per_worker = cloud.workers.per_worker()
        assert sorted(per_worker) == [0, 1]
        assert all(w["stored"] > 0 for w in per_worker.values()), f"one worker took everything: {per_worker}"
        assert count(cloud, envelopes) == 300
        assert count(cloud, telemetry) == 300 * 3, "each point once, retries included"
    finally:
        cloud.stop()


def test_plain_point_check_agrees_with_the_contract_model():
    received = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)

    def verdict(body: dict):
        env = make_envelope("F1", "telemetry.batch", {"points": [{"device_id": "d", "metric": "m", "value": 1,
                                                                    "ts": "2026-01-01T00:00:00Z"}]}, ts=received)
        raw = env.model_dump(mode="json") | {"body": body}
        try:
            item = validate_message(up("F1", Stream.TELEMETRY), json.dumps(raw).encode(), received)
        except ContractError as exc:
            return exc.reason
        return [(p.device_id, p.metric, p.value, p.ts.isoformat()) for p in item.points]

    good = {"device_id": "th-1", "metric": "temp_c", "value": 21.5, "ts": "2026-11-23T10:00:00.250+08:00"}
    assert verdict({"points": [good]}) == [("th-1", "temp_c", 21.5, "2026-11-23T10:00:00.250000+08:00")]
    # Shapes the plain check does not take go to the model, which coerces or names the fault.
    assert verdict({"points": [good | {"value": "21.5"}]})[0][2] == 21.5
    for bad, field in [(good | {"metric": "Temp"}, "metric"), (good | {"ts": "2026-11-23T10:00:00"}, "ts"),
                       (good | {"value": None}, "value"), (good | {"extra": 1}, "extra"),
                       (good | {"device_id": "a b"}, "device_id")]:
        reason = verdict({"points": [bad]})
        assert isinstance(reason, str) and "invalid telemetry.batch body" in reason and field in reason, reason
    assert "points" in verdict({"points": []})


def _accepted(env):
    return validate_message(up(env.facility, TYPE_STREAM[env.type]), env.to_bytes(), env.ts + timedelta(seconds=1))


def _write(engine, envs) -> IngestCounters:
    """One writer, one batch: everything is submitted before the writer starts."""
    counters = IngestCounters()
    writer = IngestWriter(engine, counters)
    for env in envs:
        writer.submit(_accepted(env))
    writer.start()
    writer.stop()
    return counters


def test_driver_level_writes_read_back_as_sqlalchemy_types_and_stay_idempotent(db_url):
    engine = make_engine(db_url)
    create_schema(engine)
    origin = datetime(DAY.year, DAY.month, DAY.day, 18, 0, 0, 250000, tzinfo=timezone(timedelta(hours=8)))
    beat = make_envelope("F1", "heartbeat", {"note": 'quote " backslash \\ tab \t 温度', "n": [1, 2.5, None]},
                         ts=origin, seq=7)
    tele = make_envelope("F1", "telemetry.batch", points(3, 1), ts=origin - timedelta(seconds=5))
    status = make_envelope("F2", "status.gateway", {"police_link": "up"}, ts=origin)
    first = _write(engine, [beat, beat, tele, status])
    assert (first.snapshot()["stored"], first.snapshot()["duplicates"]) == (3, 1)
    assert first.snapshot()["telemetry_points"] == 3
    # Later: the same heartbeat again, the same points under a new id, and an older buffered envelope.
    late = make_envelope("F1", "event.device", {"device_id": "door-1"}, ts=origin - timedelta(minutes=1))
    resent = make_envelope("F1", "telemetry.batch", points(3, 1), ts=origin)
    second = _write(engine, [beat, resent, late]).snapshot()
    assert (second["stored"], second["duplicates"], second["telemetry_points"]) == (2, 1, 0), second
    with engine.connect() as conn:
        row = conn.execute(sa.select(envelopes).where(envelopes.c.id == str(beat.id))).one()
        gws = {g.facility: g for g in conn.execute(sa.select(gateways))}
        n_points = conn.execute(sa.select(sa.func.count()).select_from(telemetry)).scalar_one()
        ts = conn.execute(sa.select(telemetry.c.ts).limit(1)).scalar_one()
    engine.dispose()
    assert (row.facility, row.type, row.source, row.seq) == ("F1", "heartbeat", "edge", 7)
    assert row.body == beat.body and row.ts == origin and row.received_at.tzinfo is not None
    assert n_points == 3 and ts == datetime(DAY.year, DAY.month, DAY.day, 10, 0, 1, tzinfo=timezone.utc)
    assert gws["F1"].last_seen_at == origin and gws["F1"].last_type == "heartbeat", "the late envelope moved it back"
    assert gws["F2"].status == {"police_link": "up"}


def test_non_standard_json_is_refused():
    env = make_envelope("F1", "telemetry.batch", points(1, 0))
    payload = env.to_bytes().replace(b'"value":20', b'"value":NaN')
    assert b"NaN" in payload
    with pytest.raises(ContractError, match="malformed JSON"):
        validate_message(up("F1", Stream.TELEMETRY), payload, env.ts)
