"""`careguard run` (what `make run` starts): on embedded defaults, a press reaches the police
receiver and the police API; each facility tells its story (cameras analysed and recorded, a
retention audit over a seeded history, care records, one compliant facility, one with warnings,
one non-compliant); `careguard sim scenario` plays every story against it through the run's
state file; and SIGTERM stops everything cleanly."""

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from firmware_sim.scenarios import SCENARIOS, Run, ScenarioError
from helpers import sync_until

ROOT = Path(__file__).resolve().parent.parent


def test_make_run_system_end_to_end(tmp_path):
    log = tmp_path / "run.log"
    var = tmp_path / "var"
    # Output to a file, not a pipe nobody drains (a full pipe would stall the system).
    proc = subprocess.Popen([sys.executable, "-m", "careguard", "run", "--http-port", "0", "--broker-port", "0",
                             "--arc-port", "0", "--var", str(var)], cwd=ROOT,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        assert sync_until(lambda: proc.poll() is not None or "Ctrl-C stops everything" in log.read_text(), 60, 0.1)
        assert proc.poll() is None, log.read_text()
        text = log.read_text()
        press_broker, credentials = re.search(r"sim press --broker (\S+) --credentials (\S+)", text).groups()
        token = re.search(r"^\s+police\s+(\S+)\s", text, re.M).group(1)
        url = re.search(r"dashboards\s+(http://127\.0\.0\.1:\d+)/police", text).group(1)
        http = httpx.Client(base_url=url, timeout=10)

        def get(path: str, role: str = "admin"):
            tok = token if role == "police" else re.search(rf"^\s+{role}\s+(\S+)\s", text, re.M).group(1)
            r = http.get(path, headers={"Authorization": f"Bearer {tok}"})
            assert r.status_code == 200, r.text
            return r.json()

        # The local broker takes logins only: without one the press is refused; with its own it goes through.
        anonymous = subprocess.run([sys.executable, "-m", "careguard", "sim", "press", "--broker", press_broker,
                                    "--device-id", "F001-btn-2"], cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert anonymous.returncode == 1 and "Not authorized" in anonymous.stderr
        out = subprocess.run([sys.executable, "-m", "careguard", "sim", "press", "--broker", press_broker,
                              "--credentials", credentials, "--device-id", "F001-btn-2"], cwd=ROOT,
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        pressed = json.loads(out.stdout)

        def delivered():
            items = get("/api/alarms?kind=panic", "police")["items"]
            return next((a for a in items if a["delivered_at"] and a["device_id"] == "F001-btn-2"), None)
        alarm = sync_until(delivered, 20) and delivered()
        assert alarm, text
        assert alarm["facility"] == "F001" and alarm["zone"] == "class-2"
        assert alarm["raised_at"][:19] == pressed["ts"][:19]
        assert alarm["receiver"] == "济宁市公安局110指挥中心"

        # Each facility's story, as the pages read it.
        def stories():
            return {fid: get(f"/api/compliance/{fid}") for fid in ("F001", "F002", "F003")}
        expected = {"F001": "compliant", "F002": "warning", "F003": "non_compliant"}
        assert sync_until(lambda: {k: r["status"] for k, r in stories().items()} == expected, 40, 0.5), \
            {k: [(f["key"], f["level"]) for f in r["findings"]] for k, r in stories().items()}
        found = stories()
        assert {f["key"] for f in found["F002"]["findings"]} == {"retention.building_up", "staff_health.expiring"}
        assert {f["key"] for f in found["F003"]["findings"]} >= {"retention.short", "monthly_drill.never"}
        for fid in ("F001", "F002", "F003"):
            status = get(f"/api/dashboard/facility/{fid}")
            cameras = status["cameras"]
            assert len(cameras) == 2 and all(c["online"] and c["achieved_days"] is not None for c in cameras), cameras
            # Networked with the (simulated) police video platform over GB/T 28181, both cameras as channels.
            assert status["video_platform"]["registered"] and len(status["video_platform"]["cameras"]) == 2, status
        days = {fid: [c["achieved_days"] for c in get(f"/api/dashboard/facility/{fid}")["cameras"]]
                for fid in ("F001", "F002", "F003")}
        assert min(days["F001"]) >= 30 and 11 < max(days["F002"]) < 30 and max(days["F003"]) < 10, days
        # 彩虹宝贝托育 runs on Zigbee devices behind a Zigbee2MQTT bridge: its air sensor's three readings arrive.
        assert sync_until(lambda: {"temperature", "humidity", "co2"} <= {
            r["metric"] for r in get("/api/environment/rooms", "health")["items"] if r["device_id"] == "F003-zb-air-1"},
            30, 0.5)
        places = get("/api/statistics/places", "supervisor")["items"]
        assert all(p["population"] and p["places_per_1000"] for p in places), places
        checks = get("/api/care/checks/summary", "health")["items"]
        assert len(checks) == 6 and sum(c["morning_done"] > 0 for c in checks) == 5, checks
        assert [c["count"] for c in get("/api/care/clusters", "health")["items"]] == [3]
        assert [c["staff_id"] for c in get("/api/care/certificates?within_days=30", "health")["items"]] == ["carer-4"]

        # Every story of `careguard sim scenario`: one through the command line, the rest in this
        # process; the police receiver goes dark last, as it holds up the others' deliveries.
        cli = subprocess.run([sys.executable, "-m", "careguard", "sim", "scenario", "drill", "--var", str(var)],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert cli.returncode == 0, cli.stderr
        assert "drill: F001 runs its monthly alarm drill. Look at:" in cli.stdout and f"{url}/police" in cli.stdout
        # 彩虹宝贝托育's cameras are RTSP (GStreamer, installed by `make test`), the others MJPEG.
        kinds = {fid: {c["kind"] for c in fac["cameras"].values()}
                 for fid, fac in json.loads((var / "run-state.json").read_text())["facilities"].items()}
        assert kinds == {"F001": {"mjpeg"}, "F002": {"mjpeg"}, "F003": {"rtsp"}}, kinds
        run = Run.load(var)
        try:
            for name in ("panic", "fire", "intrusion-at-night", "symptom-cluster", "camera-covered", "gateway-offline",
                         "police-path-down"):
                lines = SCENARIOS[name].play(run, SCENARIOS[name].wait_s)
                assert lines and all(url in line for line in lines), (name, lines)
            # The control endpoint takes its own token only.
            state = json.loads((var / "run-state.json").read_text())
            assert (var / "run-state.json").stat().st_mode & 0o077 == 0
            r = httpx.post(f"{state['control']}/offline/arc", params={"seconds": 5}, headers={"Authorization": "Bearer x"})
            assert r.status_code == 401
        finally:
            run.close()
        missing = subprocess.run([sys.executable, "-m", "careguard", "sim", "scenario", "panic", "--var",
                                  str(tmp_path / "nowhere")], cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert missing.returncode == 1 and "run-state.json not found" in missing.stderr
        http.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_scenario_refuses_what_is_not_a_run(tmp_path):
    (tmp_path / "run-state.json").write_text(json.dumps({"cloud": "http://127.0.0.1:1"}))
    try:
        Run.load(tmp_path)
    except ScenarioError as exc:
        assert "not a state file" in str(exc)
    else:
        raise AssertionError("a state file without tokens was taken")
