"""The four pages with data loaded, checked by axe-core (from npm, run by Playwright in the page)
at 390, 768 and 1400 px in both languages with their dialogs and drill-downs open, and the focus
ring measured against the background it is drawn on. One cloud and one browser for the module."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from cloud.config import CloudConfig, TokenEntry
from cloud.main import CloudService
from contracts.alarms import AlarmBody, AlarmKind, Severity
from contracts.envelope import make_envelope
from contracts.topics import Stream, up
from helpers import chromium, logged_in_page
from testing.services import Mosquitto
from tests.test_dashboards import F1, F2, JPEG, TOKENS, facility_body
from tests.test_police_page import Mqtt, bearer, wait_stored

AXE = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = (390, 768, 1400)
PAGES = {"police": "police", "health": "health", "supervision": "supervisor", "facility": "facility",
         "inspections": "supervisor", "facility-supervision": "facility", "annual-report": "supervisor", "public": None}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("a11y")
    (workdir / "mosq").mkdir()
    broker = Mosquitto(workdir=str(workdir / "mosq")).start()
    entries = [TokenEntry(token=tok, user=f"{role}-user", role=role, **({"facility_id": F1} if role == "facility" else {}))
               for role, tok in TOKENS.items()]
    service = CloudService(CloudConfig(broker_url=broker.url, db_url=f"sqlite:///{workdir / 'cloud.db'}", port=0,
                                       client_id=f"ingest-{uuid.uuid4().hex[:8]}", tokens=entries)).start()
    try:
        assert service.wait_ingest_ready()
        load_data(service, broker.url)
        yield service
    finally:
        service.stop()
        broker.close()


def load_data(service: CloudService, broker_url: str) -> None:
    """What each page shows when in use: facilities, alarms in each state, readings, checks, a
    certificate about to expire, a district population."""
    with httpx.Client(base_url=service.url) as http:
        for n, fid in enumerate((F1, F2), start=1):
            r = http.post("/api/facilities", headers=bearer(TOKENS["admin"]),
                          json=facility_body(fid, n, district="任城区" if n == 1 else "兖州区"))
            assert r.status_code == 201, r.text
        r = http.put("/api/statistics/districts/山东省/济宁市/任城区", headers=bearer(TOKENS["supervisor"]),
                     json={"population": 850_000, "year": 2025})
        assert r.status_code == 200, r.text
        fac = bearer(TOKENS["facility"])
        r = http.post("/api/care/classes/c1/roster", headers=fac, json={
            "children": [{"child_id": f"k{i}", "birth_month": "2024-03"} for i in range(4)], "carers_on_duty": ["s1"]})
        assert r.status_code == 200, r.text
        for i in range(3):
            r = http.post("/api/care/checks", headers=fac, json={"class_id": "c1", "child_id": f"k{i}", "kind": "morning",
                                                                "temperature_c": 36.6})
            assert r.status_code == 201, r.text
        r = http.post("/api/care/staff/s1/certificates", headers=fac, json={
            "facility": F1, "kind": "health_certificate", "issued_on": str(date.today() - timedelta(days=350)),
            "expires_on": str(date.today() + timedelta(days=12))})
        assert r.status_code == 201, r.text
    mqtt = Mqtt(broker_url)
    try:
        now = datetime.now(timezone.utc)
        def send(type_, body, stream, ts=None):
            mqtt.send(up(F1, stream), make_envelope(F1, type_, body, ts=ts).to_bytes())
        send("heartbeat", {"uptime_s": 5, "police_paths": {"市局110指挥中心": True, "备用接警中心": False},
                           "latched": {}}, Stream.HEARTBEAT)
        send("camera.health", {"cameras": [{"camera_id": "cam-1", "state": "streaming", "fault": None, "camera_fps": 2.0,
                                            "last_frame_age_s": 0.4, "connection_quality": 0.97}]}, Stream.CAMERA)
        send("retention.report", {"required_days": 30, "cameras": [{"camera_id": "cam-1", "achieved_days": 12.5,
                                                                     "compliant": False}]}, Stream.RETENTION)
        send("event.arming", {"zone": "room-2", "armed": True, "mode": "schedule", "by": "schedule"}, Stream.EVENT)
        send("telemetry.batch", {"points": [
            {"device_id": "co2-1", "metric": "co2", "value": v, "ts": (now - timedelta(minutes=30 - i)).isoformat()}
            for i, v in enumerate((820.0, 960.0, 1180.0, 1240.0))]}, Stream.TELEMETRY)
        ids = []
        for kind in (AlarmKind.FIRE, AlarmKind.TEST, AlarmKind.PANIC):
            aid = uuid.uuid4()
            send("alarm.raised", AlarmBody(alarm_id=aid, kind=kind, severity=Severity.CRITICAL, source="btn-1",
                                           zone="room-2", device_id="btn-1"), Stream.ALARM)
            ids.append(aid)
        for aid in ids:  # whichever row comes first has its picture
            send("camera.snapshot", {"camera_id": "cam-1", "alarm_id": str(aid), "jpeg_b64": JPEG}, Stream.CAMERA)
        wait_stored(service, 11)
    finally:
        mqtt.close()
    with httpx.Client(base_url=service.url, headers=bearer(TOKENS["police"])) as http:
        assert http.post(f"/api/alarms/{ids[0]}/ack").status_code == 200
        assert http.post(f"/api/alarms/{ids[0]}/dispatch", json={"note": "城区派出所 1 号车"}).status_code == 200


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def open_dialogs(page, name: str) -> None:
    """Open what the page opens on demand, so axe sees it too."""
    from playwright.sync_api import expect
    if name == "police":
        page.locator("#alarm-rows tr").first.locator("button.details").click()
        expect(page.locator("#card-fields")).not_to_be_empty(timeout=10_000)
    elif name == "supervision":
        page.locator("#districts-table button.link").first.click()
        page.locator("#district-facilities-table button.link").first.click()
        expect(page.locator("#findings-table tbody tr").first).to_be_visible(timeout=10_000)
    elif name == "health":
        page.locator("#rooms-table tbody tr").first.get_by_role("button").click()
        expect(page.locator("#chart svg")).to_be_visible(timeout=10_000)


def open_ready(browser, cloud, name: str, width: int = 1400):
    """The page past its login (the public page has none), with what it loads on arrival shown."""
    from playwright.sync_api import expect
    role = PAGES[name]
    if role is None:
        page = browser.new_page(viewport={"width": width, "height": 900})
        errors: list[str] = []
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{cloud.url}/{name}")
    else:
        page, errors = logged_in_page(browser, f"{cloud.url}/{name}", TOKENS[role], viewport={"width": width, "height": 900})
    expect(page.locator("#app")).to_be_visible(timeout=10_000)
    if name == "annual-report":
        page.locator("#annual-district").fill("山东省/济宁市/任城区")
        page.locator("#annual-year").fill(str(date.today().year))
        page.locator("#annual-form button[type=submit]").click()
        expect(page.locator("#report")).to_be_visible(timeout=10_000)
    elif name in ("police", "health", "supervision", "facility"):
        expect(page.locator("table tbody tr").first).to_be_visible(timeout=10_000)
    else:
        expect(page.locator("table").first).to_be_attached(timeout=10_000)
    return page, errors


def axe_violations(page) -> list[dict]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # Served from the page's own origin: the CSP allows no inline script, and stays on for the check.
        page.route("**/__test__/axe.min.js", lambda route: route.fulfill(path=str(AXE),
                                                                         content_type="application/javascript"))
        page.add_script_tag(url="/__test__/axe.min.js")
    return page.evaluate("""async () => (await axe.run(document, { resultTypes: ["violations"] })).violations
        .map((v) => ({ id: v.id, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }))""")


@pytest.mark.parametrize("name", list(PAGES))
def test_no_axe_violations_at_every_width_in_both_languages(cloud, browser, name):
    from playwright.sync_api import expect
    assert AXE.is_file(), "axe-core is missing: `make test` installs it with npm (package.json)"
    page, errors = open_ready(browser, cloud, name)
    # The harness finds what it should: a picture without a text alternative is reported.
    page.evaluate("document.querySelector('main').append(Object.assign(document.createElement('img'), "
                  "{id: 'axe-probe', src: 'data:,'}))")
    assert "image-alt" in {v["id"] for v in axe_violations(page)}
    page.evaluate("document.getElementById('axe-probe').remove()")
    found = {}
    for lang in ("zh", "en"):
        if lang == "en":
            if page.evaluate("document.querySelector('dialog[open]') !== null"):
                page.keyboard.press("Escape")
            page.get_by_role("button", name="English").click()
            expect(page.locator("html")).to_have_attribute("lang", "en")
        open_dialogs(page, name)
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            violations = axe_violations(page)
            if violations:
                found[(lang, width)] = violations
    page.evaluate("localStorage.removeItem('careguard.lang')")
    page.close()
    assert found == {}
    assert errors == []


# The contrast of the focus ring against the nearest opaque background behind the control.
CONTRAST = """(node) => {
  const rgb = (c) => { const m = c.match(/[\\d.]+/g).map(Number); return m.length > 3 && m[3] === 0 ? null : m.slice(0, 3); };
  const lum = (c) => { const [r, g, b] = c.map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const style = getComputedStyle(node);
  if (style.outlineStyle === "none" || parseFloat(style.outlineWidth) < 2) return { ring: false };
  const ring = rgb(style.outlineColor);
  let bg = null;
  for (let n = node.parentElement; n && !bg; n = n.parentElement) bg = rgb(getComputedStyle(n).backgroundColor);
  bg = bg || [255, 255, 255];
  const [a, b] = [lum(ring), lum(bg)].sort((x, y) => y - x);
  return { ring: true, ratio: (a + 0.05) / (b + 0.05), what: node.outerHTML.slice(0, 80) };
}"""


@pytest.mark.parametrize("name", list(PAGES))
def test_focus_ring_stands_out_on_every_background(cloud, browser, name):
    from playwright.sync_api import expect
    page, errors = open_ready(browser, cloud, name)
    page.locator("body").click(position={"x": 1, "y": 1})
    seen, weak = 0, []
    for _ in range(60):
        page.keyboard.press("Tab")
        if not page.evaluate("document.activeElement !== document.body && document.activeElement.matches(':focus')"):
            continue  # past the last control, focus is in the browser's own UI for a step
        result = page.evaluate(CONTRAST.join(("(", ")(document.activeElement)")))
        assert result["ring"], page.evaluate("(() => { const e = document.activeElement, s = getComputedStyle(e); "
                                             "return [e.outerHTML.slice(0, 120), s.outlineStyle, s.outlineWidth]; })()")
        seen += 1
        if result["ratio"] < 3:
            weak.append(result)
    page.close()
    assert seen >= 20 and weak == []
    assert errors == []
