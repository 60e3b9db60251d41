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


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def register(service: CloudService) -> None:
    """F001 filed with a name, an address, a phone and a named zone, as the board shows them."""
    body = {"facility_id": FAC, "name": "阳光托育园", "uscc": "91370800000000001" + "X", "kind": "inclusive",
            "district": {"province": "山东省", "city": "济宁市", "district": "任城区", "street": "古槐街道"},
            "address": "古槐路1号", "contact": {"name": "王园长", "phone": "0537-1234567"}, "filing_status": "filed",
            "filing_number": "BA-1",
            "areas": [{"area_id": "room-2", "name": "托小班活动室", "children_area": True}],
            "devices": [{"device_id": "btn-1", "kind": "panic_button", "name": "一键报警按钮", "zone": "room-2",
                         "area_id": "room-2"}]}
    from cloud.registry.records import uscc_check_char
    body["uscc"] = body["uscc"][:17] + uscc_check_char(body["uscc"][:17])
    with httpx.Client(base_url=service.url, headers=bearer(ADMIN)) as http:
        r = http.post("/api/facilities", json=body)
        assert r.status_code == 201, r.text


def police_page(browser, cloud, width: int = 1400):
    page, errors = logged_in_page(browser, f"{cloud.url}/police", POLICE, viewport={"width": width, "height": 800})
    from playwright.sync_api import expect
    expect(page.locator("#link-state")).to_have_attribute("data-state", "live", timeout=10_000)
    return page, errors


def test_police_page_live_alarm_names_and_acknowledge(cloud, mosquitto, ack_listener, browser):
    from playwright.sync_api import expect
    register(cloud)
    page, errors = police_page(browser, cloud)
    now = datetime.now(timezone.utc)
    raised_at = now.replace(microsecond=now.microsecond // 1000 * 1000)  # envelopes carry ms
    aid = raise_alarm(mosquitto.url, ts=raised_at)
    row = page.locator(f'tr[data-alarm-id="{aid}"]')
    expect(row).to_be_visible(timeout=10_000)
    expect(row).to_have_class(re.compile(r"\bstep-raised\b"))
    # Names first, with what a dispatcher needs at a glance; ids only beside them.
    for text in ("一键报警", "阳光托育园", "托小班活动室", "济宁市 任城区 古槐街道", "古槐路1号", "0537-1234567"):
        expect(row).to_contain_text(text)
    expect(row).to_contain_text("报警中，待确认")

    # The DC-09 ACK report updates the same row in place, with the receiver's name.
    delivered = (raised_at + timedelta(milliseconds=183)).isoformat().replace("+00:00", "Z")
    send_up(mosquitto.url, "alarm.delivered", alarm_body(aid, delivered_at=delivered, receiver="市局110指挥中心"))
    expect(row.locator(".c-times")).to_contain_text("经 市局110指挥中心，183 ms", timeout=10_000)

    expect(row.locator("button.dispatch")).to_be_disabled()
    why = row.locator("button.dispatch").get_attribute("aria-describedby")
    expect(page.locator(f"#{why}")).to_have_text("须先确认报警，才能派警或结案")
    row.get_by_role("button", name=re.compile("^确认")).click()
    _, payload = ack_listener.next_message()
    env = parse_envelope(payload, expect_facility=FAC)
    assert env.type == "ack.alarm" and env.body["alarm_id"] == str(aid)
    expect(row).to_contain_text("已确认 · officer-li")
    expect(page.locator("#unacked-count")).to_have_text("0")
    expect(page.locator("#status-announcer")).to_contain_text("已确认：阳光托育园 托小班活动室 一键报警")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "police.png"), full_page=True)

    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Live alarms")).to_be_visible()
    expect(row).to_contain_text("Panic button")
    expect(row).to_contain_text("Acknowledged · officer-li")
    expect(page.locator("#load-error")).to_have_text("")
    page.get_by_role("button", name="中文").click()
    page.close()
    assert errors == []


def test_reload_with_kept_token_and_stream_reconnecting_while_lists_load(cloud, mosquitto, browser):
    """Overlapping list loads (start, stream open, resync) left the page's own error line
    saying `Cannot read properties of null`: reloading with the token kept, and a stream that
    reconnects while slow lists are on their way, must leave it empty and lose no alarm."""
    from playwright.sync_api import expect
    register(cloud)
    first = raise_alarm(mosquitto.url)
    wait_stored(cloud, 1)
    page, errors = police_page(browser, cloud)
    expect(page.locator(f'tr[data-alarm-id="{first}"]')).to_be_visible(timeout=10_000)

    def slow_list(route):
        threading.Event().wait(0.4)  # the list is slow: stream events land while it is on its way
        route.continue_()
    reconnects = []

    def flapping_stream(route):
        reconnects.append(1)
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"},
                      body="retry: 100\n\nevent: resync\ndata: {}\n\n")
    page.route(re.compile(r".*/api/alarms\?.*"), slow_list)
    page.route(re.compile(r".*/api/alarms/stream.*"), flapping_stream)
    page.reload()  # the token is kept for the session: no login form
    expect(page.locator(f'tr[data-alarm-id="{first}"]')).to_be_visible(timeout=10_000)
    assert sync_until(lambda: page.evaluate("1") and len(reconnects) >= 4, 15), reconnects
    page.unroute(re.compile(r".*/api/alarms/stream.*"))
    expect(page.locator("#link-state")).to_have_attribute("data-state", "live", timeout=10_000)
    second = raise_alarm(mosquitto.url)
    expect(page.locator(f'tr[data-alarm-id="{second}"]')).to_be_visible(timeout=10_000)
    page.unroute(re.compile(r".*/api/alarms\?.*"))
    expect(page.locator(f'tr[data-alarm-id="{first}"]')).to_be_visible()
    expect(page.locator("#login")).to_be_hidden()
    expect(page.locator("#load-error")).to_have_text("")
    page.close()
    assert errors == []


def test_live_updates_keep_the_chosen_outcome(cloud, mosquitto, browser):
    from playwright.sync_api import expect
    register(cloud)
    aid = raise_alarm(mosquitto.url)
    wait_stored(cloud, 1)
    page, errors = police_page(browser, cloud)
    row = page.locator(f'tr[data-alarm-id="{aid}"]')
    row.locator("button.ack").click()
    expect(row).to_contain_text("已确认")
    row.locator("select.outcome").select_option("false")
    row.locator("input.note-input").fill("派出所 2 号车")
    pushed = [raise_alarm(mosquitto.url, kind=k) for k in (AlarmKind.PANIC, AlarmKind.FIRE, AlarmKind.INTRUSION)]
    for other in pushed:
        expect(page.locator(f'tr[data-alarm-id="{other}"]')).to_be_visible(timeout=10_000)
    expect(row.locator("select.outcome")).to_have_value("false")
    expect(row.locator("input.note-input")).to_have_value("派出所 2 号车")
    row.locator("button.dispatch").click()
    expect(row).to_contain_text("派警说明: 派出所 2 号车")
    expect(row.locator("select.outcome")).to_have_value("false")
    row.locator("button.resolve").click()
    expect(row).to_contain_text("已结案 · 误报 · officer-li")
    with httpx.Client(base_url=cloud.url, headers=bearer(POLICE)) as http:
        stored = http.get(f"/api/alarms/{aid}").json()
    assert (stored["outcome"], stored["dispatch_note"], stored["resolved_by"]) == ("false", "派出所 2 号车", "officer-li")
    page.close()
    assert errors == []


def test_dispatcher_keyboard_path(cloud, mosquitto, browser):
    """Acknowledge → dispatch → resolve → card → back, with the keyboard alone: after each step
    focus is on the next one and the step is announced."""
    from playwright.sync_api import expect
    register(cloud)
    aid = raise_alarm(mosquitto.url)
    wait_stored(cloud, 1)
    page, errors = police_page(browser, cloud)
    row = page.locator(f'tr[data-alarm-id="{aid}"]')
    expect(row).to_be_visible(timeout=10_000)
    focused = lambda: page.evaluate(  # noqa: E731
        "() => { const e = document.activeElement; const r = e.closest('tr'); "
        "return [r ? r.dataset.alarmId : null, e.dataset.action || e.id]; }")
    row.locator("button.ack").focus()
    page.keyboard.press("Enter")
    expect(row).to_contain_text("已确认 · officer-li")
    assert sync_until(lambda: focused() == [str(aid), "note"], 5), focused()
    expect(page.locator("#status-announcer")).to_contain_text("已确认")
    page.keyboard.type("城区派出所")
    page.keyboard.press("Enter")
    expect(row).to_contain_text("已派警 · officer-li")
    assert sync_until(lambda: focused() == [str(aid), "outcome"], 5), focused()
    expect(page.locator("#status-announcer")).to_contain_text("已派警")
    page.keyboard.press("Tab")
    assert focused() == [str(aid), "resolve"]
    page.keyboard.press("Enter")
    expect(row).to_contain_text("已结案 · 真实警情")
    assert sync_until(lambda: focused() == [str(aid), "details"], 5), focused()
    expect(page.locator("#status-announcer")).to_contain_text("已结案（真实警情）")
    page.keyboard.press("Enter")
    expect(page.locator("#card")).to_be_visible()
    assert focused() == [None, "card-title"]
    expect(page.locator("#card-fields")).to_contain_text("古槐路1号", timeout=10_000)
    expect(page.locator("#status-announcer")).to_contain_text("机构信息：阳光托育园")
    page.keyboard.press("Escape")
    expect(page.locator("#card")).to_be_hidden()
    assert focused() == [str(aid), "details"]
    expect(page.locator("#status-announcer")).to_contain_text("已关闭机构信息")
    page.close()
    assert errors == []


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_action_of_the_newest_alarm_in_reach(cloud, mosquitto, browser, lang):
    """At 390, 768 and 1400 px every control of the newest alarm is on screen without sideways
    scrolling; at 1000 px and below the alarms are cards with their actions first."""
    from playwright.sync_api import expect
    register(cloud)
    now = datetime.now(timezone.utc)
    raise_alarm(mosquitto.url, kind=AlarmKind.FIRE, ts=now - timedelta(seconds=1))
    newest = raise_alarm(mosquitto.url, kind=AlarmKind.PANIC, ts=now)  # raised later: the top row
    wait_stored(cloud, 2)
    page, errors = police_page(browser, cloud)
    if lang == "en":
        page.get_by_role("button", name="English").click()
    row = page.locator(f'tr[data-alarm-id="{newest}"]')
    expect(row).to_be_visible(timeout=10_000)
    assert page.locator("#alarm-rows tr").first.get_attribute("data-alarm-id") == str(newest)
    for width in (390, 768, 1400):
        page.set_viewport_size({"width": width, "height": 800})
        controls = row.locator("button, select, input")
        assert controls.count() == 6  # acknowledge, note, dispatch, outcome, resolve, details
        for i in range(controls.count()):
            controls.nth(i).scroll_into_view_if_needed()
            box = controls.nth(i).bounding_box()
            assert box is not None and box["width"] > 0, (width, i)
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, (width, lang, i, box)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, (width, lang, overflow)
        first_cell = row.evaluate("tr => [...tr.children].sort((a, b) => a.getBoundingClientRect().top - "
                                  "b.getBoundingClientRect().top)[0].className")
        assert (first_cell == "c-actions") == (width <= 1000), (width, first_cell)
        page.screenshot(path=str(ARTIFACTS / f"police-{width}-{lang}.png"), full_page=True)
    page.get_by_role("button", name=re.compile("^(中文|English)$")).click() if lang == "en" else None
    page.close()
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
