"""The police API and page against a real Mosquitto, SQLite store and Chromium."""

from __future__ import annotations

import queue
import re
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from wire.mqtt_client import make_client
from cloud.config import CloudConfig, TokenEntry
from cloud.store.db import audit
from cloud.main import CloudService
from contracts.alarms import AlarmBody, AlarmKind, Severity
from contracts.envelope import make_envelope, parse_envelope
from contracts.topics import DownKind, Stream, down, up
from helpers import chromium, logged_in_page, sync_until

FAC = "F001"
POLICE = "police-token-0123456789"
HEALTH = "health-token-0123456789"
ADMIN = "admin-token-01234567890"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


class Mqtt:
    """A paho client on the test's Mosquitto: publishes uplink, collects downlink."""

    def __init__(self, url: str, subscribe: str | None = None):
        self.received: queue.Queue = queue.Queue()
        self._subscribed = threading.Event()
        self.client, addr = make_client(url)
        self.client.on_message = lambda _c, _u, msg: self.received.put((msg.topic, msg.payload))
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.connect(addr.host, addr.port)
        self.client.loop_start()
        if subscribe:
            self.client.subscribe(subscribe, qos=1)
            assert self._subscribed.wait(5), f"no SUBACK for {subscribe}"

    def send(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(5)
        assert info.is_published()

    def next_message(self, timeout: float = 10.0) -> tuple[str, bytes]:
        try:
            return self.received.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout}s") from None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def cloud(mosquitto, tmp_path):
    config = CloudConfig(broker_url=mosquitto.url, db_url=f"sqlite:///{tmp_path / 'cloud.db'}", port=0,
                         client_id=f"ingest-{uuid.uuid4().hex[:8]}",
                         tokens=[TokenEntry(token=POLICE, user="officer-li", role="police"),
                                 TokenEntry(token=HEALTH, user="inspector-wang", role="health"),
                                 TokenEntry(token=ADMIN, user="ops", role="admin")])
    service = CloudService(config).start()
    assert service.wait_ingest_ready()
    yield service
    service.stop()


@pytest.fixture
def ack_listener(mosquitto):
    m = Mqtt(mosquitto.url, subscribe=down(FAC, DownKind.ACK))
    yield m
    m.close()


def alarm_body(aid: uuid.UUID, kind: AlarmKind = AlarmKind.PANIC, **kw) -> AlarmBody:
    return AlarmBody(alarm_id=aid, kind=kind, severity=Severity.CRITICAL, source="btn-1", zone="room-2", **kw)


def send_up(mosquitto_url: str, type_: str, body: AlarmBody, ts: datetime | None = None) -> None:
    m = Mqtt(mosquitto_url)
    m.send(up(FAC, Stream.ALARM), make_envelope(FAC, type_, body, ts=ts).to_bytes())
    m.close()


def raise_alarm(mosquitto_url: str, kind: AlarmKind = AlarmKind.PANIC, ts: datetime | None = None) -> uuid.UUID:
    aid = uuid.uuid4()
    send_up(mosquitto_url, "alarm.raised", alarm_body(aid, kind), ts)
    return aid


def wait_stored(service: CloudService, n: int) -> None:
    sync_until(lambda: service.counters["stored"] >= n, 10)
    assert service.counters["stored"] >= n, service.counters


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_auth_errors(cloud):
    with httpx.Client(base_url=cloud.url) as http:
        assert http.get("/api/alarms").status_code == 401
        assert http.get("/api/alarms", headers=bearer("not-a-known-token-xyz")).status_code == 401
        assert http.get("/api/alarms", headers={"Authorization": "Basic abc"}).status_code == 401
        # No token ever rides in a URL: the event stream takes a single-use ticket instead.
        assert http.get("/api/alarms", params={"token": POLICE}).status_code == 401
        assert http.get("/api/alarms/stream").status_code == 401
        assert http.get("/api/alarms/stream", params={"token": POLICE}).status_code == 401
        r = http.get("/api/alarms", headers=bearer(HEALTH))
        assert r.status_code == 403 and "health" in r.json()["detail"]
        assert http.post(f"/api/alarms/{uuid.uuid4()}/ack", headers=bearer(HEALTH)).status_code == 403
        assert http.get("/api/ingest/stats", headers=bearer(POLICE)).status_code == 403
        stats = http.get("/api/ingest/stats", headers=bearer(ADMIN))
        assert stats.status_code == 200 and stats.json()["rejected"] == 0


def test_list_validation_and_pagination(cloud, mosquitto):
    ids = [raise_alarm(mosquitto.url, kind=k) for k in (AlarmKind.PANIC, AlarmKind.FIRE, AlarmKind.PANIC)]
    wait_stored(cloud, 3)
    with httpx.Client(base_url=cloud.url, headers=bearer(POLICE)) as http:
        for params, field in (({"limit": 0}, "limit"), ({"kind": "meteor"}, "kind"), ({"state": "x"}, "state"),
                              ({"facility": "bad/id"}, "facility"), ({"before": "garbage"}, "before")):
            r = http.get("/api/alarms", params=params)
            assert r.status_code == 422, params
            assert any(err["loc"][-1] == field for err in r.json()["detail"]), r.json()
        r = http.post("/api/alarms/not-a-uuid/ack")
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "alarm_id"
        assert http.post(f"/api/alarms/{uuid.uuid4()}/ack").status_code == 404

        first = http.get("/api/alarms", params={"limit": 2}).json()
        assert [a["alarm_id"] for a in first["items"]] == [str(ids[2]), str(ids[1])], "newest first"
        second = http.get("/api/alarms", params={"limit": 2, "before": first["next_before"]}).json()
        assert [a["alarm_id"] for a in second["items"]] == [str(ids[0])] and second["next_before"] is None
        panics = http.get("/api/alarms", params={"kind": "panic", "facility": FAC, "state": "active"}).json()
        assert {a["alarm_id"] for a in panics["items"]} == {str(ids[0]), str(ids[2])}
        row = panics["items"][0]
        assert row["facility"] == FAC and row["zone"] == "room-2" and row["severity"] == "critical"
        assert row["raised_at"].endswith("Z") and row["delivered_at"] is None and row["acked_at"] is None


def test_ack_publishes_down_envelope_and_keeps_first(cloud, mosquitto, ack_listener):
    aid = raise_alarm(mosquitto.url)
    wait_stored(cloud, 1)
    with httpx.Client(base_url=cloud.url, headers=bearer(POLICE)) as http:
        r = http.post(f"/api/alarms/{aid}/ack")
        assert r.status_code == 200, r.text
        first = r.json()
        assert first["first_ack"] and first["published"] and first["acked_by"] == "officer-li"

        topic, payload = ack_listener.next_message()
        env = parse_envelope(payload, expect_facility=FAC)
        assert topic == down(FAC, DownKind.ACK)
        assert (env.type, env.source) == ("ack.alarm", "cloud")
        assert env.body == {"alarm_id": str(aid), "acked_by": "officer-li", "acked_at": first["acked_at"]}

        again = http.post(f"/api/alarms/{aid}/ack").json()
        assert not again["first_ack"] and again["acked_at"] == first["acked_at"]
        listed = http.get("/api/alarms").json()["items"][0]
        assert listed["acked_at"] == first["acked_at"] and listed["acked_by"] == "officer-li"
    with cloud.engine.connect() as conn:
        actions = conn.execute(sa.select(audit.c.actor, audit.c.action).order_by(audit.c.id)).all()
    assert actions == [("officer-li", "alarm.ack"), ("officer-li", "alarm.ack_repeated")]


def test_police_page_live_alarm_and_acknowledge(cloud, mosquitto, ack_listener):
    from playwright.sync_api import expect

    with chromium() as browser:
        page, errors = logged_in_page(browser, f"{cloud.url}/police", POLICE,
                                      viewport={"width": 1400, "height": 700})
        expect(page.locator("#link-state")).to_have_attribute("data-state", "live", timeout=10_000)

        now = datetime.now(timezone.utc)
        raised_at = now.replace(microsecond=now.microsecond // 1000 * 1000)  # envelopes carry ms
        aid = raise_alarm(mosquitto.url, ts=raised_at)
        row = page.locator(f'tr[data-alarm-id="{aid}"]')
        expect(row).to_be_visible(timeout=10_000)
        expect(row).to_have_class(re.compile(r"\bkind-panic\b"))
        expect(row).to_contain_text("一键报警")
        expect(row).to_contain_text(FAC)

        # The DC-09 ACK report updates the same row in place.
        delivered = (raised_at + timedelta(milliseconds=183)).isoformat().replace("+00:00", "Z")
        send_up(mosquitto.url, "alarm.delivered",
                alarm_body(aid, delivered_at=delivered, receiver="127.0.0.1:9000"))
        expect(row.locator("td.num")).to_have_text("183", timeout=10_000)

        row.get_by_role("button", name=re.compile("^确认")).click()
        _, payload = ack_listener.next_message()
        env = parse_envelope(payload, expect_facility=FAC)
        assert env.type == "ack.alarm" and env.body["alarm_id"] == str(aid)
        expect(row).to_contain_text("已确认 · officer-li")
        expect(page.locator("#unacked-count")).to_have_text("0")

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "police.png"), full_page=True)

        page.get_by_role("button", name="English").click()
        expect(page.get_by_role("heading", name="Live alarms")).to_be_visible()
        expect(row).to_contain_text("Panic button")
        expect(row).to_contain_text("Acknowledged · officer-li")
    assert errors == []


def test_police_board_leaves_health_alarms_to_the_health_side(cloud, mosquitto):
    panic = raise_alarm(mosquitto.url)
    climate = raise_alarm(mosquitto.url, kind=AlarmKind.SENSOR_RANGE)
    wait_stored(cloud, 2)
    with httpx.Client(base_url=cloud.url) as http:
        police = http.get("/api/alarms", headers={"Authorization": f"Bearer {POLICE}"}).json()["items"]
        admin = http.get("/api/alarms", headers={"Authorization": f"Bearer {ADMIN}"}).json()["items"]
    assert [a["alarm_id"] for a in police] == [str(panic)]
    assert {a["alarm_id"] for a in admin} == {str(panic), str(climate)}
