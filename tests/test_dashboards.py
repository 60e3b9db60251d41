"""The four dashboards (police, facility, supervision, health) and their two routers (commands,
dashboard) against a real Mosquitto, the cloud on SQLite and Chromium."""

from __future__ import annotations

import base64
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from cloud.config import CloudConfig, TokenEntry
from cloud.main import CloudService
from cloud.registry.records import uscc_check_char
from contracts.alarms import AlarmBody, AlarmKind, Severity
from contracts.envelope import make_envelope, parse_envelope
from contracts.topics import DownKind, Stream, down, up
from helpers import chromium, logged_in_page, sync_until
from tests.test_police_page import Mqtt, bearer, wait_stored

F1, F2 = "F001", "F002"
TOKENS = {"police": "police-token-0123456789", "health": "health-token-0123456789",
          "supervisor": "super-token-0123456789", "admin": "admin-token-01234567890",
          "facility": "facil-token-0123456789"}
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
# A 1x1 JPEG is enough for the snapshot path: the page only shows what the API returns.
JPEG = base64.b64encode(bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b0b0c1912130f141d1a1f1e1d"
    "1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e333432ffc0000b080001000101011100ffc4001f000001050101"
    "0101010100000000000000000102030405060708090a0bffc400b5100002010303020403050504040000017d01020300041105122131410613"
    "516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748494a535455565758"
    "595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6"
    "c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffda0008010100003f00fbd3ffd9")).decode()


def uscc(n: int) -> str:
    first17 = f"91370800{n:09d}"
    return first17 + uscc_check_char(first17)


def facility_body(fid: str, n: int, district: str = "任城区") -> dict:
    return {"facility_id": fid, "name": f"托育园{n}", "uscc": uscc(n), "kind": "inclusive",
            "district": {"province": "山东省", "city": "济宁市", "district": district, "street": "古槐街道"},
            "address": f"古槐路{n}号", "location": {"lat": 35.41, "lon": 116.59},
            "contact": {"name": "王园长", "phone": "0537-1234567"}, "filing_status": "filed", "filing_number": f"BA-{n}",
            "classes": [{"class_id": "c1", "name": "小一班", "class_type": "toddler", "places": 15, "enrolled": 12,
                         "carers": 3}],
            "areas": [{"area_id": "room-2", "name": "活动室", "children_area": True}],
            "cameras": [{"camera_id": "cam-1", "name": "活动室摄像机", "areas": ["room-2"]}],
            "devices": [{"device_id": "btn-1", "kind": "panic_button", "name": "一键报警", "zone": "room-2",
                         "area_id": "room-2"},
                        {"device_id": "co2-1", "kind": "co2", "name": "CO2", "zone": "room-2", "area_id": "room-2"}],
            "staff": [{"staff_id": "s1", "name": "赵保安", "role": "security"}]}


@pytest.fixture
def cloud(mosquitto, tmp_path):
    entries = [TokenEntry(token=tok, user=f"{role}-user", role=role, **({"facility_id": F1} if role == "facility" else {}))
               for role, tok in TOKENS.items()]
    config = CloudConfig(broker_url=mosquitto.url, db_url=f"sqlite:///{tmp_path / 'cloud.db'}", port=0,
                         client_id=f"ingest-{uuid.uuid4().hex[:8]}", tokens=entries)
    service = CloudService(config).start()
    assert service.wait_ingest_ready()
    with httpx.Client(base_url=service.url, headers=bearer(TOKENS["admin"])) as http:
        for n, fid in enumerate((F1, F2), start=1):
            r = http.post("/api/facilities", json=facility_body(fid, n, district="任城区" if n == 1 else "兖州区"))
            assert r.status_code == 201, r.text
    yield service
    service.stop()


@pytest.fixture
def mqtt(mosquitto):
    m = Mqtt(mosquitto.url)
    yield m
    m.close()


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def publish(mqtt: Mqtt, fid: str, type_: str, body, stream: Stream) -> None:
    mqtt.send(up(fid, stream), make_envelope(fid, type_, body).to_bytes())


def raise_alarm(mqtt: Mqtt, kind: AlarmKind, fid: str = F1) -> uuid.UUID:
    aid = uuid.uuid4()
    publish(mqtt, fid, "alarm.raised", AlarmBody(alarm_id=aid, kind=kind, severity=Severity.CRITICAL, source="btn-1",
                                                 zone="room-2"), Stream.ALARM)
    return aid


def open_page(browser, cloud, path: str, role: str):
    return logged_in_page(browser, f"{cloud.url}{path}", TOKENS[role], viewport={"width": 1400, "height": 900},
                          accept_downloads=True)


def video_platform(registered: bool) -> dict:
    """A heartbeat's gb28181 section (contracts/video_platform.py)."""
    return {"registered": registered, "platform": "10.0.0.5:5060", "platform_id": "34020000002000000001",
            "device_id": "34020000001180000001", "transport": "udp", "since": "2026-06-15T00:00:00Z",
            "reason": "registered" if registered else "3 keepalives unanswered", "cameras": ["cam-1"], "streams": 0}


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_command_and_dashboard_roles(cloud, mosquitto):
    listener = Mqtt(mosquitto.url, subscribe=down(F1, DownKind.ARM))
    try:
        with httpx.Client(base_url=cloud.url) as http:
            def post(path, role, **kw):
                return http.post(path, headers=bearer(TOKENS[role]), **kw)
            r = post(f"/api/facilities/{F2}/drill", "facility", json={"zone": "room-2"})
            assert r.status_code == 403 and F2 in r.json()["detail"]
            assert post(f"/api/facilities/{F1}/drill", "police", json={"zone": "room-2"}).status_code == 403
            assert post(f"/api/facilities/{F1}/zones/room-2/reset", "facility").status_code == 403
            assert post(f"/api/facilities/{F1}/zones/room-2/arm", "police").status_code == 403
            assert post("/api/facilities/NOPE/drill", "admin", json={"zone": "room-2"}).status_code == 404
            r = post(f"/api/facilities/{F1}/drill", "facility", json={"zone": "bad/zone"})
            assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "zone"
            r = post(f"/api/facilities/{F1}/zones/room-2/reset", "police")
            assert r.status_code == 202 and r.json()["published"], r.text
            topic, payload = listener.next_message()
            env = parse_envelope(payload, expect_facility=F1)
            assert topic == down(F1, DownKind.ARM) and env.type == "arm.set" and env.source == "cloud"
            assert env.body == {"action": "reset", "zone": "room-2", "by": "police-user"}

            def get(path, role):
                return http.get(path, headers=bearer(TOKENS[role]))
            assert get(f"/api/dashboard/facility/{F2}", "facility").status_code == 403
            assert get(f"/api/dashboard/facility/{F1}", "police").status_code == 403
            assert get("/api/dashboard/police-paths", "health").status_code == 403
            assert get("/api/dashboard/supervision", "facility").status_code == 403
            assert get(f"/api/dashboard/police-card/{F1}", "supervisor").status_code == 403
            card = get(f"/api/dashboard/police-card/{F1}?zone=room-2", "police").json()
            assert card["guards"] == ["赵保安"] and card["zone_cameras"] == ["cam-1"]
            audit = get("/api/audit?action=zone.reset", "admin").json()["items"]
            assert [(a["actor"], a["target"]) for a in audit] == [("police-user", f"{F1}/room-2")]
    finally:
        listener.close()


def test_police_page_dispatch_resolve_drill_and_paths(cloud, mqtt, browser):
    from playwright.sync_api import expect
    publish(mqtt, F1, "heartbeat", {"uptime_s": 1, "police_paths": {"127.0.0.1:9000": True, "127.0.0.1:9001": False},
                                    "latched": {}, "gb28181": video_platform(False)}, Stream.HEARTBEAT)
    page, errors = open_page(browser, cloud, "/police", "police")
    expect(page.locator("#link-state")).to_have_attribute("data-state", "live", timeout=10_000)
    paths_row = page.locator("#paths-table tbody tr").filter(has_text=F1)
    expect(paths_row).to_contain_text("127.0.0.1:9001 中断", timeout=10_000)
    expect(paths_row).to_contain_text("10.0.0.5:5060 未注册: 3 keepalives unanswered")

    aid = raise_alarm(mqtt, AlarmKind.PANIC)
    wait_stored(cloud, 2)
    publish(mqtt, F1, "camera.snapshot", {"camera_id": "cam-1", "alarm_id": str(aid), "jpeg_b64": JPEG}, Stream.CAMERA)
    row = page.locator(f'tr[data-alarm-id="{aid}"]')
    expect(row).to_be_visible(timeout=10_000)  # live, without reload
    expect(row.locator("button.dispatch")).to_be_disabled()
    row.locator("button.ack").click()
    expect(row).to_contain_text("已确认 · police-user")
    row.locator("button.dispatch").click()
    expect(row).to_contain_text("已派警 · police-user")
    row.locator("select.outcome").select_option("real")
    row.locator("button.resolve").click()
    expect(row).to_contain_text("已结案 · 真实警情")

    drill = raise_alarm(mqtt, AlarmKind.TEST)
    drill_row = page.locator(f'tr[data-alarm-id="{drill}"]')
    expect(drill_row).to_contain_text("演练", timeout=10_000)
    expect(drill_row.locator("button.dispatch")).to_have_count(0)

    wait_stored(cloud, 4)
    row.get_by_role("button", name="详情").click()
    expect(page.locator("#card-fields")).to_contain_text("赵保安")
    expect(page.locator("#card-fields")).to_contain_text("35.41, 116.59")
    expect(page.locator("#card-snapshots img")).to_have_count(1)
    # The zone camera's live-view button follows a language switch while the card stays open (the
    # card is modal, so the page's language switch is clicked by script rather than the pointer).
    live = page.locator("#card-live-buttons button")
    expect(live).to_have_text("查看实时画面 · 活动室摄像机")
    page.locator("#lang-toggle").dispatch_event("click")
    expect(live).to_have_text("Open live view · 活动室摄像机")
    page.locator("#lang-toggle").dispatch_event("click")
    expect(live).to_have_text("查看实时画面 · 活动室摄像机")
    shot(page, "police")
    page.close()
    assert errors == []


def test_facility_page_live_health_and_drill(cloud, mqtt, mosquitto, browser):
    from playwright.sync_api import expect
    listener = Mqtt(mosquitto.url, subscribe=down(F1, DownKind.ARM))
    try:
        page, errors = open_page(browser, cloud, "/facility?refresh=1", "facility")
        expect(page.locator("#fac-id")).to_have_text(F1, timeout=10_000)
        cam_row = page.locator("#cameras-table tbody tr").filter(has_text="cam-1")
        expect(cam_row).to_be_visible()
        publish(mqtt, F1, "camera.health", {"cameras": [{"camera_id": "cam-1", "state": "streaming", "fault": None,
                                                         "camera_fps": 12.5, "last_frame_age_s": 0.2,
                                                         "connection_quality": 0.98}]}, Stream.CAMERA)
        publish(mqtt, F1, "event.arming", {"zone": "room-2", "armed": True, "by": "schedule"}, Stream.EVENT)
        publish(mqtt, F1, "heartbeat", {"uptime_s": 2, "police_paths": {}, "latched": {},
                                        "gb28181": video_platform(True)}, Stream.HEARTBEAT)
        expect(cam_row).to_contain_text("12.5", timeout=10_000)  # polled, without reload
        expect(page.locator("#video-platform")).to_have_text("10.0.0.5:5060 已注册", timeout=10_000)
        expect(page.locator("#events-table tbody tr")).to_have_count(1, timeout=10_000)
        # A refusal as the gateway sends it (edge/agent.py): the key and its values, worded in the page's language.
        publish(mqtt, F1, "event.arming", {"zone": "room-2", "action": "disarm", "by": "officer-7",
                                           "refused": "zone 'room-2' is a 24-hour panic zone: it cannot be disarmed",
                                           "refused_key": "arming.cannot_disarm",
                                           "refused_params": {"zone": "room-2", "zone_kind": "panic"}}, Stream.EVENT)
        refusal = page.locator("#events-table tbody tr").filter(has_text="officer-7")
        expect(refusal).to_contain_text("防区“活动室”为24小时一键报警防区，不能撤防", timeout=10_000)
        live = page.locator("#camera-live-buttons button")
        expect(live).to_have_text("查看实时画面 · 活动室摄像机")
        page.get_by_role("button", name="English").click()
        expect(refusal).to_contain_text("Zone “活动室” is a 24-hour panic zone: it cannot be disarmed")
        expect(live).to_have_text("Open live view · 活动室摄像机")
        live.click()  # an open view, too, follows the switch back
        expect(live).to_have_text("Stop live view · 活动室摄像机")
        page.get_by_role("button", name="中文").click()
        expect(refusal).to_contain_text("不能撤防")
        expect(live).to_have_text("停止实时画面 · 活动室摄像机")
        expect(page.locator("#camera-live figcaption")).to_have_text("实时画面 · 活动室摄像机")
        live.click()
        expect(live).to_have_text("查看实时画面 · 活动室摄像机")

        page.locator("#drill-zone").select_option("room-2")
        page.get_by_role("button", name="发起演练").click()
        topic, payload = listener.next_message()
        env = parse_envelope(payload, expect_facility=F1)
        assert topic == down(F1, DownKind.ARM)
        assert env.type == "arm.set" and env.body == {"action": "test", "zone": "room-2", "by": "facility-user"}
        expect(page.locator("#drill-result")).to_contain_text("演练指令已发送")
        shot(page, "facility")
        page.close()
        assert errors == []
    finally:
        listener.close()


def test_supervision_page_drill_down_csv_and_live(cloud, mqtt, browser):
    from playwright.sync_api import expect
    page, errors = open_page(browser, cloud, "/supervision", "supervisor")
    expect(page.locator("#link-state")).to_have_attribute("data-state", "live", timeout=10_000)
    district_row = page.locator("#districts-table tbody tr").filter(has_text="任城区")
    expect(district_row).to_be_visible(timeout=10_000)

    aid = raise_alarm(mqtt, AlarmKind.FIRE)
    expect(page.locator(f'#recent-table tr[data-alarm-id="{aid}"]')).to_contain_text("火警", timeout=10_000)

    district_row.get_by_role("button", name="区县: 济宁市 任城区").click()
    fac_row = page.locator("#district-facilities-table tbody tr").filter(has_text=F1)
    expect(fac_row).to_be_visible(timeout=10_000)
    fac_row.get_by_role("button").click()
    findings = page.locator("#findings-table tbody tr")
    expect(findings.first).to_be_visible(timeout=10_000)
    expect(page.locator("#findings-title")).to_contain_text("托育园1")
    # Findings are rendered from their key in the page's language: no English left in the Chinese page.
    expect(page.locator("#findings-table")).to_contain_text("尚无报警演练送达公安")
    messages = page.locator("#findings-table tbody td:nth-child(3)").all_text_contents()
    assert messages and not any(re.search(r"[A-Za-z]{4,}", m) for m in messages), messages

    with page.expect_download() as dl:
        page.locator("#findings").locator("xpath=..").get_by_role("button", name="导出 CSV").click()
    text = Path(dl.value.path()).read_text(encoding="utf-8-sig")
    assert text.splitlines()[0] == "规则,级别,说明,依据"
    assert len(text.splitlines()) == 1 + findings.count()
    shot(page, "supervision")
    page.get_by_role("button", name="English").click()
    expect(page.locator("#findings-table")).to_contain_text("No alarm drill has reached the police yet")
    expect(page.locator("#findings-title")).to_contain_text("Facility findings")
    page.get_by_role("button", name="中文").click()
    page.close()
    assert errors == []


def test_wrong_role_gets_the_login_form_with_a_friendly_message(cloud, browser):
    from playwright.sync_api import expect
    page, errors = open_page(browser, cloud, "/health", "police")
    expect(page.locator("#login")).to_be_visible(timeout=10_000)
    expect(page.locator("#login-error")).to_have_text("此令牌无权查看本页，请输入本页角色的令牌（如公安、卫健、监管或机构令牌）")
    expect(page.locator("#app")).to_be_hidden()
    expect(page.locator("#token-input")).to_be_focused()
    page.close()


def test_health_page_rooms_live(cloud, mqtt, browser):
    from playwright.sync_api import expect
    page, errors = open_page(browser, cloud, "/health?refresh=1", "health")
    rooms = page.locator("#rooms")
    now = datetime.now(timezone.utc)
    publish(mqtt, F1, "telemetry.batch", {"zone": "room-2", "points": [
        {"device_id": "co2-1", "metric": "co2", "value": 1234.0, "ts": now.isoformat()}]}, Stream.TELEMETRY)
    row = rooms.locator('tr[data-device="co2-1"]')
    expect(row).to_contain_text("1234", timeout=10_000)  # over the CO2 limit of 1000 ppm
    expect(page.locator("#link-state")).to_have_attribute("data-state", "polling")
    shot(page, "health")
    page.close()
    assert errors == []


def test_supervision_page_counts_dead_letters_per_facility(cloud, mqtt, browser):
    from playwright.sync_api import expect
    mqtt.send(up(F2, Stream.HEARTBEAT), b'{"v": 1, "id": ')  # poison from one gateway
    mqtt.send(up(F2, Stream.HEARTBEAT), make_envelope(F2, "heartbeat", {}).to_bytes())
    assert sync_until(lambda: cloud.counters["dead_lettered"] == 1 and cloud.counters["stored"] == 1)
    page, errors = open_page(browser, cloud, "/supervision", "supervisor")
    row = page.locator("#dead-letters-table tbody tr").filter(has_text=F2)
    expect(row).to_contain_text("1", timeout=10_000)
    expect(page.locator("#dead-letters-table tbody tr")).to_have_count(1)
    page.close()
    assert errors == []
