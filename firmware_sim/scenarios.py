"""`careguard sim scenario NAME`: a story played against a running `make run`, through the same
doors a real device, camera, facility or fault would use: the facility brokers (with the device's
own login), the simulated cameras' fault URLs, the platform API, and the run's control endpoint
that takes a gateway or the police receiver off the air. Everything it needs is in the run's
state file (`var/run-state.json`); it imports nothing of the edge or the cloud.

Each scenario acts, waits (bounded) until the platform shows the result, and prints what to look
at on which page."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Optional

import httpx

from contracts.device import DeviceEventKind
from firmware_sim.button import Button
from firmware_sim.device_io import BrokerUnreachable, DeviceLink

STATE_FILE = "run-state.json"
POLL_S = 0.5


class ScenarioError(Exception):
    """The run is not there, or did not show what the scenario expected; the message says which."""


class Run:
    """A running `make run`, as its state file describes it."""

    def __init__(self, state: dict, state_path: Path):
        self.state = state
        self.path = state_path
        try:
            self.cloud = state["cloud"]
            self.tokens = state["tokens"]
            self.facilities = state["facilities"]
        except (KeyError, TypeError) as exc:
            raise ScenarioError(f"{state_path}: not a state file of `careguard run` (missing {exc})") from None
        self.http = httpx.Client(base_url=self.cloud, timeout=10)

    @classmethod
    def load(cls, var: Path) -> "Run":
        path = var / STATE_FILE
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ScenarioError(f"{path} not found: start the system first (`make run`), or give its --var") from None
        except (OSError, ValueError) as exc:
            raise ScenarioError(f"{path}: unreadable ({exc})") from None
        run = cls(state, path)
        try:
            run.http.get("/static/common.js").raise_for_status()
        except httpx.HTTPError as exc:
            raise ScenarioError(f"the run of {path} does not answer at {run.cloud} ({exc}): is `make run` still "
                                f"running?") from None
        return run

    def close(self) -> None:
        self.http.close()

    def page(self, name: str) -> str:
        return f"{self.cloud}/{name}"

    def api(self, method: str, path: str, role: str, **kw) -> httpx.Response:
        r = self.http.request(method, path, headers={"Authorization": f"Bearer {self.tokens[role]}"}, **kw)
        if r.status_code >= 400:
            raise ScenarioError(f"{method} {path} as {role}: {r.status_code} {r.text[:300]}")
        return r

    def control(self, path: str, seconds: float) -> dict:
        try:
            r = httpx.post(f"{self.state['control']}{path}", params={"seconds": seconds}, timeout=10,
                           headers={"Authorization": f"Bearer {self.state['control_token']}"})
        except (KeyError, httpx.HTTPError) as exc:
            raise ScenarioError(f"the run's control endpoint: {exc}") from None
        if r.status_code != 202:
            raise ScenarioError(f"control {path}: {r.status_code} {r.text[:200]}")
        return r.json()

    def device(self, facility: str, device_id: str) -> DeviceLink:
        """A link on the facility broker with the device's own login (not its fleet connection)."""
        fac = self.facilities[facility]
        try:
            users = json.loads(Path(fac["credentials"]).read_text(encoding="utf-8"))["users"]
            password = users[device_id]
        except (OSError, ValueError, KeyError) as exc:
            raise ScenarioError(f"{fac.get('credentials')}: no login for {device_id} ({exc})") from None
        try:
            return DeviceLink(fac["local_broker"], device_id, announce_status=False, username=device_id,
                              password=password).connect(5)
        except BrokerUnreachable as exc:
            raise ScenarioError(str(exc)) from None

    def new_alarm(self, since: datetime, wait_s: float, *, kind: str, facility: str,
                  device_id: Optional[str] = None, delivered: bool = False) -> Optional[dict]:
        """The first alarm of `kind` at `facility` raised at or after `since`, within `wait_s`."""
        def found():
            items = self.api("GET", "/api/alarms", "admin", params={"kind": kind, "facility": facility,
                                                                     "limit": 20}).json()["items"]
            for a in items:
                raised = datetime.fromisoformat((a["raised_at"] or a["sort_ts"]).replace("Z", "+00:00"))
                if raised >= since - timedelta(seconds=2) and (device_id is None or a["device_id"] == device_id) \
                        and (not delivered or a["delivered_at"]):
                    return a
            return None
        return poll(found, wait_s)


def poll(probe: Callable[[], object], wait_s: float):
    """`probe()` until it returns something truthy or `wait_s` passes (at least once)."""
    deadline = time.monotonic() + wait_s
    while True:
        value = probe()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(POLL_S)


def now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    play: Callable[[Run, float], list[str]]   # returns what to look at, line by line
    wait_s: float                             # how long the platform may take to show it


def _need(value, what: str):
    if not value:
        raise ScenarioError(f"not seen within the wait: {what}")
    return value


def _fac(run: Run, fid: str) -> str:
    return run.facilities[fid]["name"]


def panic(run: Run, wait_s: float) -> list[str]:
    start = now()
    link = run.device("F001", "F001-btn-1")
    try:
        Button(link).press(timeout=5)
    finally:
        link.close()
    a = _need(run.new_alarm(start, wait_s, kind="panic", facility="F001", device_id="F001-btn-1", delivered=True),
              "the panic alarm at the police")
    return [f"police  {run.page('police')}: a red row at the top, {_fac(run, 'F001')} 托小班活动室 一键报警, "
            f"delivered in {a['delivery_ms']} ms; acknowledge, dispatch (with a note), resolve; 详情 opens the "
            f"card with the zone's pictures and clip",
            f"facility {run.page('facility')} (facility token): the alarm in 本机构报警"]


def fire(run: Run, wait_s: float) -> list[str]:
    start = now()
    link = run.device("F002", "F002-smoke-1")
    try:
        link.send_event(DeviceEventKind.SMOKE, start)[1].wait_for_publish(5)
        link.send_event(DeviceEventKind.SMOKE_CLEAR, now())[1].wait_for_publish(5)
    finally:
        link.close()
    _need(run.new_alarm(start, wait_s, kind="fire", facility="F002", delivered=True), "the fire alarm at the police")
    return [f"police  {run.page('police')}: 火警 at {_fac(run, 'F002')} 厨房, a 24-hour zone: it stays latched "
            f"until reset from the facility side",
            f"supervision {run.page('supervision')}: the fire in 最新报警"]


def intrusion_at_night(run: Run, wait_s: float) -> list[str]:
    start = now()
    # Night is when the gate is armed by its schedule (18:00-07:00); by day the facility arms it now.
    run.api("POST", "/api/facilities/F001/zones/gate/arm", "facility")
    link = run.device("F001", "F001-door-1")
    try:
        def opened():
            link.send_event(DeviceEventKind.DOOR_OPEN, now())[1].wait_for_publish(5)
            link.send_event(DeviceEventKind.DOOR_CLOSE, now())[1].wait_for_publish(5)
            return run.new_alarm(start, 2, kind="intrusion", facility="F001")
        _need(poll(opened, wait_s), "the intrusion alarm (the gate armed, the door opened)")
    finally:
        link.close()
        run.api("POST", "/api/facilities/F001/zones/gate/schedule", "facility")
    return [f"police  {run.page('police')}: 入侵 at {_fac(run, 'F001')} 大门",
            f"facility {run.page('facility')}: 布撤防记录 shows the gate armed by the facility, then back on its "
            f"schedule"]


def camera_covered(run: Run, wait_s: float) -> list[str]:
    start = now()
    cam = run.facilities["F001"]["cameras"]["F001-cam-2"]
    try:
        r = httpx.post(cam["fault"], params={"kind": "covered", "duration": 180}, timeout=5)
    except httpx.HTTPError as exc:
        raise ScenarioError(f"camera F001-cam-2 at {cam['fault']}: {exc}") from None
    if r.status_code >= 400:
        raise ScenarioError(f"camera F001-cam-2 refused the fault: {r.status_code} {r.text[:200]}")
    _need(run.new_alarm(start, wait_s, kind="camera_fault", facility="F001"), "the camera_fault alarm")
    return [f"facility {run.page('facility')}: 托大班摄像机 shows 遮挡 (covered) for 3 minutes",
            f"police  {run.page('police')}: 摄像机故障 at {_fac(run, 'F001')}",
            f"supervision {run.page('supervision')}: cameras online drops, and {_fac(run, 'F001')}'s findings name "
            f"托大班活动室 as a children's area no camera covers (recomputed within a minute)"]


def gateway_offline(run: Run, wait_s: float) -> list[str]:
    start = now()
    run.control("/offline/gateway/F002", 90)
    _need(run.new_alarm(start, wait_s, kind="gateway_offline", facility="F002"), "the gateway_offline alarm")
    return [f"police  {run.page('police')}: 网关离线 at {_fac(run, 'F002')}; its alarms still reach the police "
            f"directly while the cloud link is down, and the outbox delivers the rest when it is back (90 s)",
            f"supervision {run.page('supervision')}: the alarm in 最新报警"]


def police_path_down(run: Run, wait_s: float) -> list[str]:
    start = now()
    run.control("/offline/arc", 60)
    _need(run.new_alarm(start, wait_s, kind="police_link_down", facility="F001"), "the police_link_down alarm")
    return [f"police  {run.page('police')}: 公安联网链路状态 shows {run.state['arc']['label']} 中断 for every "
            f"facility, and 公安链路中断 alarms; the receiver is back after 60 s and the paths turn 正常",
            f"facility {run.page('facility')}: the police link tile"]


def symptom_cluster(run: Run, wait_s: float) -> list[str]:
    children = run.facilities["F001"]["classes"]["c2"][:3]
    for child in children:
        run.api("POST", "/api/care/checks", "facility", json={"class_id": "c2", "child_id": child, "kind": "noon",
                                                             "temperature_c": 36.8, "symptoms": ["cough"]})

    def cluster():
        items = run.api("GET", "/api/care/clusters", "health").json()["items"]
        return next((c for c in items if c["facility"] == "F001" and c["class_id"] == "c2"
                     and c["symptom"] == "cough"), None)
    found = _need(poll(cluster, wait_s), "the cough cluster in F001's 托大班")
    return [f"health  {run.page('health')}: 症状聚集 lists {_fac(run, 'F001')} 托大班 咳嗽, {found['count']} children "
            f"within 48 h; the health rules raise a symptom_cluster alarm to the health role within a minute"]


def drill(run: Run, wait_s: float) -> list[str]:
    start = now()
    run.api("POST", "/api/facilities/F001/drill", "facility", json={"zone": "class-1"})
    _need(run.new_alarm(start, wait_s, kind="test", facility="F001", delivered=True), "the drill at the police")
    return [f"police  {run.page('police')}: a 测试 row marked 演练: it is never dispatched, resolve it as 演练",
            f"facility {run.page('facility')}: the drill in 本机构报警; supervision counts it for the monthly drill"]


SCENARIOS = {s.name: s for s in [
    Scenario("panic", "a teacher presses F001's one-button alarm", panic, 20),
    Scenario("fire", "F002's kitchen smoke detector goes off", fire, 20),
    Scenario("intrusion-at-night", "F001's gate opens while it is armed", intrusion_at_night, 20),
    Scenario("camera-covered", "a cloth over F001's 托大班 camera for 3 minutes", camera_covered, 60),
    Scenario("gateway-offline", "F002's gateway loses the cloud for 90 s", gateway_offline, 60),
    Scenario("police-path-down", "the police receiver goes dark for 60 s", police_path_down, 45),
    Scenario("symptom-cluster", "three children of F001's 托大班 cough at the noon check", symptom_cluster, 20),
    Scenario("drill", "F001 runs its monthly alarm drill", drill, 20),
]}


def add_scenario_command(subparsers) -> None:
    p = subparsers.add_parser("scenario", help="play a story against a running `make run` (--list for the stories)")
    p.add_argument("name", nargs="?", choices=sorted(SCENARIOS), metavar="NAME",
                   help=f"one of {', '.join(SCENARIOS)}")
    p.add_argument("--list", action="store_true", help="the stories and what each shows")
    p.add_argument("--var", default="var", help="the run's state folder (default var, as `make run` uses)")
    p.add_argument("--wait", type=float, help="seconds to wait for the platform to show the result (default per story)")


def run_scenario(args: argparse.Namespace) -> int:
    if args.list or not args.name:
        for s in SCENARIOS.values():
            print(f"  {s.name:20} {s.summary}")
        return 0 if args.list else 2
    scenario = SCENARIOS[args.name]
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its request lines would bury what to look at
    wait_s = scenario.wait_s if args.wait is None else args.wait
    if not 0 <= wait_s <= 600:
        print(f"careguard sim scenario: --wait must be 0-600 s, got {wait_s}", file=sys.stderr)
        return 2
    try:
        run = Run.load(Path(args.var))
    except ScenarioError as exc:
        print(f"careguard sim scenario: {exc}", file=sys.stderr)
        return 1
    try:
        lines = scenario.play(run, wait_s)
    except ScenarioError as exc:
        print(f"careguard sim scenario {scenario.name}: {exc}", file=sys.stderr)
        return 1
    finally:
        run.close()
    print(f"{scenario.name}: {scenario.summary}. Look at:")
    for line in lines:
        print(f"  {line}")
    return 0
