"""`careguard run` (what `make run` starts): on embedded defaults, a press reaches the police
receiver and the police API, and SIGTERM stops everything cleanly."""

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_make_run_system_end_to_end(tmp_path):
    log = tmp_path / "run.log"
    # Output to a file, not a pipe nobody drains (a full pipe would stall the system).
    proc = subprocess.Popen([sys.executable, "-m", "careguard", "run", "--http-port", "0", "--broker-port", "0",
                             "--arc-port", "0", "--var", str(tmp_path / "var")], cwd=ROOT,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "Ctrl-C stops everything" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        text = log.read_text()
        press_broker, credentials = re.search(r"sim press --broker (\S+) --credentials (\S+)", text).groups()
        token = re.search(r"^\s+police\s+(\S+)$", text, re.M).group(1)
        url = re.search(r"dashboards\s+(http://127\.0\.0\.1:\d+)/police", text).group(1)
        # The local broker takes logins only: without one the press is refused; with its own it goes through.
        anonymous = subprocess.run([sys.executable, "-m", "careguard", "sim", "press", "--broker", press_broker,
                                    "--device-id", "F001-btn-2"], cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert anonymous.returncode == 1 and "Not authorized" in anonymous.stderr
        out = subprocess.run([sys.executable, "-m", "careguard", "sim", "press", "--broker", press_broker,
                              "--credentials", credentials, "--device-id", "F001-btn-2"], cwd=ROOT,
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        pressed = json.loads(out.stdout)
        alarm = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and alarm is None:
            req = urllib.request.Request(f"{url}/api/alarms?kind=panic", headers={"Authorization": f"Bearer {token}"})
            items = json.loads(urllib.request.urlopen(req, timeout=5).read())["items"]
            alarm = next((a for a in items if a["delivered_at"] and a["device_id"] == "F001-btn-2"), None)
            time.sleep(0.1)
        assert alarm is not None, text
        assert alarm["facility"] == "F001" and alarm["zone"] == "class-2"
        assert alarm["raised_at"][:19] == pressed["ts"][:19]
        # The registry is filed, so the other pages have facilities to show.
        supervisor = re.search(r"^\s+supervisor\s+(\S+)$", text, re.M).group(1)
        req = urllib.request.Request(f"{url}/api/facilities", headers={"Authorization": f"Bearer {supervisor}"})
        facilities = json.loads(urllib.request.urlopen(req, timeout=5).read())["items"]
        assert {f["facility_id"] for f in facilities} == {"F001", "F002", "F003"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
