"""The supervision pages in Chromium against the cloud app on SQLite: an inspector records an
inspection with a photographed finding, the facility rectifies it with evidence, the inspector
accepts; the facility files (with its documents) and reports an incident, health sees the notice
arrive live and accepts the filing; the public page shows the record without a token; the annual
report prints and downloads as XLSX. Keyboard only where a form is filled."""

from __future__ import annotations

import io
import os
import socket
import threading
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import httpx
import openpyxl
import pytest
import uvicorn

from cloud.alarms.events_bus import EventBus
from cloud.api.app import create_app
from cloud.api.auth import TokenTable
from cloud.care.privacy import FieldCipher
from cloud.registry.records import register_facility
from cloud.store.db import create_schema, make_engine
from helpers import chromium, logged_in_page, sync_until
from supervision_data import JINING, JPEG, PDF, PRIVATE, RENCHENG, TOKENS, facility, grants

TODAY = datetime.now(timezone.utc).astimezone(ZoneInfo("Asia/Shanghai")).date()
DISTRICT = f"山东省/{JINING}/{RENCHENG}"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    """The app served by uvicorn on a free loopback port (no broker: these pages need none)."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('svp') / 'cloud.db'}")
    create_schema(engine)
    with engine.begin() as conn:
        register_facility(conn, facility("A", 1), datetime.now(timezone.utc))
    app = create_app(engine=engine, bus=EventBus(), tokens=TokenTable(grants()))
    app.state.data_cipher = FieldCipher(os.urandom(32))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    assert sync_until(lambda: server.started, 15)
    app.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    yield app
    app.state.notice_bus.close()
    server.should_exit = True
    thread.join(10)
    sock.close()
    engine.dispose()


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def files(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(JPEG)
    (tmp_path / "doc.pdf").write_bytes(PDF)
    return tmp_path


def open_page(browser, cloud, path: str, who: str):
    page, errors = logged_in_page(browser, f"{cloud.url}{path}", TOKENS[who][0], viewport={"width": 1400, "height": 1000},
                                  accept_downloads=True)
    return page, errors


def test_inspection_rectification_and_incident_notice(browser, cloud, files):
    inspector, errors = open_page(browser, cloud, "/inspections", "sup_rc")
    inspector.get_by_label("机构编号").fill("A")
    inspector.get_by_role("button", name="载入检查表").click()
    fire = inspector.get_by_label("消防 · 疏散通道、安全出口畅通，消防设施器材完好有效")
    fire.focus()
    inspector.keyboard.press("ArrowDown")   # 合格
    inspector.keyboard.press("ArrowDown")   # 不合格
    inspector.get_by_label("参加部门（逗号分隔）").fill("卫生健康，消防")
    inspector.get_by_role("button", name="保存检查").click()
    inspector.get_by_text("检查已保存").wait_for()
    inspector.get_by_label("检查项目").select_option("fire.passages")
    inspector.get_by_label("严重程度").select_option("major")
    inspector.get_by_label("说明", exact=True).fill(PRIVATE["finding"])
    inspector.get_by_label("整改期限").fill(TODAY.isoformat())
    inspector.get_by_label("照片").set_input_files(str(files / "photo.jpg"))
    inspector.get_by_label("说明", exact=True).press("Enter")   # submits the form from the keyboard
    inspector.get_by_text("问题已记录").wait_for()

    fac, fac_errors = open_page(browser, cloud, "/facility-supervision", "facA")
    fac.get_by_role("button", name="整改: 疏散通道、安全出口畅通，消防设施器材完好有效").click()
    fac.get_by_label("整改情况").fill("已清理通道")
    fac.get_by_label("整改材料（照片或 PDF）").set_input_files(str(files / "doc.pdf"))
    fac.get_by_role("button", name="提交整改").click()
    fac.locator("#my-findings-table").get_by_text("待审核").wait_for()

    health, health_errors = open_page(browser, cloud, "/inspections", "health")
    # Not wait_for_function: it evaluates a string, which the pages' CSP (no unsafe-eval) refuses.
    health.locator("#link-state[data-state='live']").wait_for()
    fac.get_by_label("类别", exact=True).nth(1).select_option("incident")
    fac.get_by_label("性质").select_option("injury")
    fac.get_by_label("时间", exact=True).fill(datetime.now().strftime("%Y-%m-%dT%H:%M"))
    fac.locator("#report-description").fill(PRIVATE["incident"])
    fac.get_by_label("涉及婴幼儿人数").fill("2")
    fac.get_by_label("已采取措施").fill("送医并通知家长")
    fac.locator("#report-submit").click()
    fac.get_by_text("已报告").wait_for()
    health.locator("#notices-table").get_by_text("安全事故").wait_for()   # pushed, no reload

    inspector.get_by_label("状态").select_option("submitted")
    accept = inspector.locator("#findings-table").get_by_role("button", name="通过: A fire.passages")
    accept.click()
    accept.wait_for(state="detached")
    inspector.get_by_label("状态").select_option("rectified")
    inspector.locator("#findings-table").get_by_text("已整改").wait_for()
    inspector.get_by_role("button", name="English").click()
    inspector.get_by_role("heading", name="Rectification review").wait_for()
    assert inspector.locator("#findings-table").get_by_text("Rectified").count() == 1
    assert errors == fac_errors == health_errors == []


def test_filing_from_the_facility_to_the_public_page(browser, cloud, files):
    fac, errors = open_page(browser, cloud, "/facility-supervision", "facA")
    fac.get_by_label("机构名称").fill("托育园一号")
    fac.get_by_label("地址").fill("古槐路1号")
    fac.locator("#svc-full_day").check()
    fac.get_by_label("乳儿班").fill("10")
    fac.get_by_label("托小班").fill("15")
    fac.get_by_label("提供餐饮服务").check()
    fac.get_by_label("食品经营许可 编号").fill("JY-001")
    fac.locator("#lic-food-until").fill(f"{TODAY.year + 2}-01-01")
    for doc in ("法人登记证明", "场地证明", "消防验收", "卫生评价报告", "食品经营许可证", "从业人员资格与健康证明"):
        fac.get_by_label(doc, exact=True).set_input_files(str(files / "doc.pdf"))
    fac.locator("#filing-submit").click()
    fac.get_by_text("已提交，等待审核").wait_for()

    health, health_errors = open_page(browser, cloud, "/inspections", "health")
    health.locator("#filings-table").get_by_role("button", name="通过: 托育园1").click()
    health.get_by_text("已登记未备案机构").wait_for()
    sync_until(lambda: health.locator("#filings-table tbody tr").count() == 0, 10)

    fac.reload()
    fac.locator("#my-filings-table").get_by_text("已通过").wait_for()
    receipt = fac.locator("#my-filings-table tbody tr td").nth(3).inner_text()
    assert receipt.startswith(f"TB-370800-{TODAY.year}-")

    public = browser.new_page()
    public_errors = []
    public.on("pageerror", lambda exc: public_errors.append(str(exc)))
    public.goto(f"{cloud.url}/public")
    public.locator("#public-table").get_by_text(receipt).wait_for()
    assert public.locator("#login").is_hidden()
    row = public.locator("#public-table tbody tr").first.inner_text()
    assert "托育园一号" in row and "已备案" in row and "全日托" in row and "乳儿班 10" in row
    assert PRIVATE["contact_name"] not in public.content() and PRIVATE["staff_name"] not in public.content()
    public.get_by_label("区县").fill("兖州区")
    public.get_by_label("区县").press("Enter")
    public.locator("#public-facilities .empty").wait_for(state="visible")
    public.get_by_role("button", name="English").click()
    assert public.get_by_role("heading", name="Filed facilities").is_visible()
    assert errors == health_errors == public_errors == []


def test_annual_report_prints_and_downloads(browser, cloud):
    page, errors = open_page(browser, cloud, f"/annual-report?district={DISTRICT}&year={TODAY.year}", "supervisor")
    page.locator("#figures-table").get_by_text("督导检查次数").wait_for()
    api = httpx.get(f"{cloud.url}/api/reports/annual", params={"district": DISTRICT, "year": TODAY.year},
                    headers={"Authorization": f"Bearer {TOKENS['supervisor'][0]}"}).json()
    shown = {r.locator("td").nth(0).inner_text(): r.locator("td").nth(1).inner_text()
             for r in page.locator("#figures-table tbody tr").all()}
    assert shown["督导检查次数"] == str(api["figures"]["inspections"]) and shown["安全事故数"] == str(api["figures"]["incidents"])
    page.emulate_media(media="print")
    assert page.locator("header.bar").is_hidden() and page.locator("#annual-form").is_hidden()
    assert page.locator("#figures-table").is_visible()
    page.emulate_media(media="screen")
    with page.expect_download() as download:
        page.get_by_role("button", name="下载 XLSX").click()
    wb = openpyxl.load_workbook(io.BytesIO(open(download.value.path(), "rb").read()))
    summary = {row[1]: row[2] for row in wb["汇总"].iter_rows(min_row=2, values_only=True)}
    assert summary["inspections"] == api["figures"]["inspections"] and summary["district"] == DISTRICT
    assert errors == []
