"""Button press to DC-09 ACK at the police receiver, on a loaded gateway.

Starts two Mosquittos (the gateway's local broker and the uplink), the ARC receiver, an
edge agent (its own process, as in production) and a fleet of simulated sensors loading
the gateway; then presses one-button alarms one after another (each in its own panic
zone, since a panic latches) and times each press from the device's publish to the
receiver's ACK. The baseline, measured in the same run under the same load, is a bare
MQTT QoS 1 hop on the same broker plus a bare TCP request and reply.

Prints one JSON line: {"n", "lost", "p50_ms", "p99_ms", "max_ms", "baseline_p99_ms",
"ratio_p99", ...}. Never passes or fails."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wire.mqtt_client import make_client  # noqa: E402
from testing.services import LOOPBACK, Mosquitto  # noqa: E402
from arc.receiver import ArcAccount, ArcReceiver  # noqa: E402
from contracts import topics  # noqa: E402
from contracts.device import DeviceEvent, DeviceEventKind  # noqa: E402
from contracts.timefmt import utcnow  # noqa: E402
from firmware_sim import SensorFleet  # noqa: E402

N_PRESSES = int(os.environ.get("CG_BENCH_PRESSES", "300"))
N_SENSORS = 30
SENSOR_INTERVAL_S = 0.1  # 30 sensors x 10 readings/s = 300 messages/s into the gateway
TIMEOUT_S = 5.0


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def write_config(path: Path, local: str, uplink: str, arc_port: int, db: Path) -> None:
    zones = "".join(f'\n[[zones]]\nid = "z{i}"\nnumber = {i}\nkind = "panic"\ndevices = ["btn{i}"]\n'
                    for i in range(1, N_PRESSES + 1))
    sensors = ", ".join(f'"s{i}"' for i in range(N_SENSORS))
    path.write_text(f'''facility_id = "BENCH"
local_broker = "{local}"
[uplink]
broker = "{uplink}"
[police]
account = "1234"
receivers = [{{ host = "{LOOPBACK}", port = {arc_port} }}]
[outbox]
path = "{db}"
{zones}
[[zones]]
id = "rooms"
number = 999
kind = "environment"
devices = [{sensors}]
''')


class Arc:
    """The ARC receiver on a loop of its own thread; records when each zone's alarm arrived."""

    def __init__(self):
        self.arrived: dict[int, float] = {}
        self.events: dict[int, threading.Event] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.receiver = ArcReceiver({"1234": ArcAccount()}, on_alarm=self._on_alarm)

    def _on_alarm(self, alarm) -> None:
        t = time.perf_counter()
        if alarm.code == "PA" and alarm.zone not in self.arrived:
            self.arrived[alarm.zone] = t
            self.events.setdefault(alarm.zone, threading.Event()).set()

    def start(self) -> int:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.receiver.start(), self.loop).result(10)
        return self.receiver.port

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.receiver.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def measure_presses(local_url: str, arc: Arc) -> tuple[list[float], int]:
    pub, addr = make_client(local_url, "bench-buttons")
    pub.connect(addr.host, addr.port)
    pub.loop_start()
    latencies, lost = [], 0
    for i in range(1, N_PRESSES + 1):
        done = arc.events.setdefault(i, threading.Event())
        ev = DeviceEvent(id=uuid.uuid4(), device_id=f"btn{i}", ts=utcnow(), event=DeviceEventKind.PRESS)
        payload = ev.model_dump_json().encode()
        t0 = time.perf_counter()
        pub.publish(topics.dev_event(f"btn{i}"), payload, qos=1)
        if done.wait(TIMEOUT_S):
            latencies.append((arc.arrived[i] - t0) * 1000)
        else:
            lost += 1
        time.sleep(0.01)
    pub.loop_stop()
    pub.disconnect()
    return latencies, lost


def measure_mqtt_hop(url: str, n: int) -> list[float]:
    got: dict[int, float] = {}
    ready = threading.Event()
    arrived = threading.Event()
    sub, addr = make_client(url, "bench-hop-sub")

    def on_message(c, u, msg):
        got[int(msg.payload)] = time.perf_counter()
        arrived.set()

    sub.on_message = on_message
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe("bench/hop", qos=1)
    sub.on_subscribe = lambda *a: ready.set()
    sub.connect(addr.host, addr.port)
    sub.loop_start()
    ready.wait(5)
    pub, _ = make_client(url, "bench-hop-pub")
    pub.connect(addr.host, addr.port)
    pub.loop_start()
    time.sleep(0.2)
    out = []
    for i in range(n):
        arrived.clear()
        t0 = time.perf_counter()
        pub.publish("bench/hop", str(i).encode(), qos=1)
        if arrived.wait(TIMEOUT_S) and i in got:
            out.append((got[i] - t0) * 1000)
        time.sleep(0.005)
    for c in (pub, sub):
        c.loop_stop()
        c.disconnect()
    return out


def measure_tcp_rtt(n: int) -> list[float]:
    srv = socket.socket()
    srv.bind((LOOPBACK, 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def echo():
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    threading.Thread(target=echo, daemon=True).start()
    cli = socket.create_connection((LOOPBACK, port))
    cli.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    frame = b"\n" + b"x" * 80 + b"\r"  # about a DC-09 frame
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        cli.sendall(frame)
        got = 0
        while got < len(frame):
            got += len(cli.recv(4096))
        out.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.002)
    cli.close()
    srv.close()
    return out


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="cg-bench-alarm-"))
    (work / "local").mkdir()
    (work / "up").mkdir()
    local = Mosquitto(workdir=str(work / "local")).start()
    uplink = Mosquitto(workdir=str(work / "up")).start()
    arc = Arc()
    arc_port = arc.start()
    cfg = work / "edge.toml"
    write_config(cfg, local.url, uplink.url, arc_port, work / "edge.sqlite3")
    agent = subprocess.Popen([sys.executable, "-m", "careguard", "edge", "--config", str(cfg), "--log-level", "ERROR"],
                             cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(work / "agent.log", "w"))
    fleet = None
    try:
        fleet = SensorFleet(local.url, [{"device_id": f"s{i}", "kind": ("temperature", "humidity", "co2")[i % 3],
                                         "interval_s": SENSOR_INTERVAL_S, "seed": i} for i in range(N_SENSORS)]).start()
        time.sleep(3)  # the agent connects, subscribes and sees the load
        latencies, lost = measure_presses(local.url, arc)
        hop = measure_mqtt_hop(local.url, N_PRESSES)
        rtt = measure_tcp_rtt(N_PRESSES)
    finally:
        if fleet is not None:
            fleet.stop()
        agent.terminate()
        try:
            agent.wait(15)
        except subprocess.TimeoutExpired:
            agent.kill()
        arc.stop()
        local.close()
        uplink.close()
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    p99 = percentile(latencies, 99) if latencies else float("nan")
    baseline = percentile(hop, 99) + percentile(rtt, 99)
    print(json.dumps({
        "n": N_PRESSES, "lost": lost,
        "p50_ms": round(statistics.median(latencies), 2), "p99_ms": round(p99, 2), "max_ms": round(max(latencies), 2),
        "baseline_p99_ms": round(baseline, 2), "ratio_p99": round(p99 / baseline, 2),
        "baseline_mqtt_hop_p99_ms": round(percentile(hop, 99), 2), "baseline_tcp_rtt_p99_ms": round(percentile(rtt, 99), 2),
        "load_sensor_msgs_per_s": round(N_SENSORS / SENSOR_INTERVAL_S), "journal_fsync": True,
    }))


if __name__ == "__main__":
    main()
