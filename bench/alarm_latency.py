"""Button press to the DC-09 ACK received by the gateway, on a loaded gateway.

Real parts, each in its own process as in production: two Mosquittos (the gateway's local broker
and the uplink), the police receiver (`careguard arc`, AES on), and the edge agent (`careguard
edge`, journal fsync on), loaded by 30 simulated sensors at 10 readings/s each. One-button alarms
are pressed one after another, each in its own panic zone (a panic latches).

- Press → ACK: from the press's publish (bench clock) to `delivered_at`, the time the gateway's
  DC-09 link took the receiver's ACK (the agent's clock: the same machine's; ms resolution, from
  its `alarm.delivered` envelope). Receiver-accept: to `received_at` in the receiver's store.
- Baseline, interleaved: after each press, one bare MQTT QoS 1 hop on the same local broker and one
  bare DC-09 round trip (an encrypted NULL and its ACK) to the same receiver, under the same load;
  the baseline of a sample is the sum of its pair, reported as the p99 of those sums.
- Lost: alarm ids pressed (derived from the press ids as the agent derives them) that no
  `alarm.delivered` acknowledged within the run.

Prints one JSON line; never passes or fails. `python bench/alarm_latency.py` is the README run."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from contracts import topics  # noqa: E402
from contracts.device import DeviceEvent, DeviceEventKind  # noqa: E402
from contracts.timefmt import utcnow  # noqa: E402
from edge.agent import ALARM_ID_NAMESPACE  # noqa: E402
from firmware_sim import SensorFleet  # noqa: E402
from testing.services import LOOPBACK, Mosquitto, free_port, wait_for_port  # noqa: E402
from wire import dc09  # noqa: E402
from wire.mqtt_client import make_client  # noqa: E402

N_PRESSES = int(os.environ.get("CG_BENCH_PRESSES", "300"))
N_SENSORS = 30
SENSOR_INTERVAL_S = 0.1  # 30 sensors x 10 readings/s = 300 messages/s into the gateway
TIMEOUT_S = 5.0
FACILITY = "BENCH"
ACCOUNT = "1234"


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else float("nan")


def summary(values: list[float]) -> dict:
    return {"p50_ms": round(statistics.median(values), 2) if values else None,
            "p99_ms": round(percentile(values, 99), 2), "max_ms": round(max(values), 2) if values else None}


class Receiver:
    """`careguard arc` in its own process, from an accounts file written here."""

    def __init__(self, work: Path, accounts: dict[str, str], limits: dict | None = None):
        self.port = free_port()
        self.db = work / "arc.sqlite3"
        lines = [f'[accounts.{acct}]\nkey = "{key}"\n' for acct, key in accounts.items()]
        if limits:
            lines.append("[limits]\n" + "".join(f"{k} = {v}\n" for k, v in limits.items()))
        (work / "accounts.toml").write_text("\n".join(lines))
        self.proc = subprocess.Popen([sys.executable, "-m", "careguard", "arc", "--listen", f"{LOOPBACK}:{self.port}",
                                     "--accounts", str(work / "accounts.toml"), "--db", str(self.db)], cwd=ROOT,
                                    stdout=open(work / "arc.log", "w"), stderr=subprocess.STDOUT)
        wait_for_port(self.port, proc=self.proc)

    def received_at(self) -> dict[str, datetime]:
        """alarm id -> when the receiver accepted it."""
        with sqlite3.connect(self.db) as db:
            rows = db.execute("SELECT alarm_id, received_at FROM arc_alarms WHERE alarm_id IS NOT NULL").fetchall()
        return {a: datetime.fromisoformat(t) for a, t in rows}

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Gateway:
    """Two Mosquittos, an edge agent process with `zones` panic buttons reporting to `receiver`, the
    sensor load, and a subscriber that learns each alarm's `delivered_at` from the uplink."""

    def __init__(self, work: Path, receiver: Receiver, key: str, zones: int):
        self.work = work
        (work / "local").mkdir()
        (work / "up").mkdir()
        self.local = Mosquitto(workdir=str(work / "local")).start()
        self.uplink = Mosquitto(workdir=str(work / "up")).start()
        self.delivered: dict[str, datetime] = {}
        self._arrived = threading.Condition()
        self._watch_uplink()
        cfg = work / "edge.toml"
        cfg.write_text(self._config(receiver.port, key, zones))
        self.agent = subprocess.Popen([sys.executable, "-m", "careguard", "edge", "--config", str(cfg),
                                       "--log-level", "ERROR"], cwd=ROOT, stdout=subprocess.DEVNULL,
                                      stderr=open(work / "agent.log", "w"))
        self.fleet = SensorFleet(self.local.url, [
            {"device_id": f"s{i}", "kind": ("temperature", "humidity", "co2")[i % 3],
             "interval_s": SENSOR_INTERVAL_S, "seed": i} for i in range(N_SENSORS)]).start()
        self.buttons, addr = make_client(self.local.url, "bench-buttons")
        self.buttons.connect(addr.host, addr.port)
        self.buttons.loop_start()
        time.sleep(3)  # the agent connects, subscribes and sees the load

    def _config(self, arc_port: int, key: str, zones: int) -> str:
        buttons = "".join(f'\n[[zones]]\nid = "z{i}"\nnumber = {i}\nkind = "panic"\ndevices = ["btn{i}"]\n'
                          for i in range(1, zones + 1))
        sensors = ", ".join(f'"s{i}"' for i in range(N_SENSORS))
        return f'''facility_id = "{FACILITY}"
local_broker = "{self.local.url}"
[uplink]
broker = "{self.uplink.url}"
[police]
account = "{ACCOUNT}"
key = "{key}"
receivers = [{{ host = "{LOOPBACK}", port = {arc_port} }}]
[outbox]
path = "{self.work / 'edge.sqlite3'}"
{buttons}
[[zones]]
id = "rooms"
number = 999
kind = "environment"
devices = [{sensors}]
'''

    def _watch_uplink(self) -> None:
        ready = threading.Event()
        self.watch, addr = make_client(self.uplink.url, "bench-watch")

        def on_message(c, u, msg):
            env = json.loads(msg.payload)
            if env["type"] == "alarm.delivered":
                with self._arrived:
                    self.delivered[env["body"]["alarm_id"]] = datetime.fromisoformat(env["body"]["delivered_at"])
                    self._arrived.notify_all()

        self.watch.on_message = on_message
        self.watch.on_connect = lambda c, u, f, rc, p: c.subscribe(topics.up(FACILITY, topics.Stream.ALARM), qos=1)
        self.watch.on_subscribe = lambda *a: ready.set()
        self.watch.connect(addr.host, addr.port)
        self.watch.loop_start()
        ready.wait(10)

    def press(self, zone: int) -> tuple[str, float]:
        """Press zone's button; (the alarm id the agent will give it, the press time on the wall clock)."""
        ev = DeviceEvent(id=uuid.uuid4(), device_id=f"btn{zone}", ts=utcnow(), event=DeviceEventKind.PRESS)
        alarm_id = str(uuid.uuid5(ALARM_ID_NAMESPACE, f"{FACILITY}/{ev.id}"))
        payload = ev.model_dump_json().encode()
        t0 = time.time()
        self.buttons.publish(topics.dev_event(f"btn{zone}"), payload, qos=1)
        return alarm_id, t0

    def wait_delivered(self, alarm_id: str, timeout: float = TIMEOUT_S) -> bool:
        with self._arrived:
            return self._arrived.wait_for(lambda: alarm_id in self.delivered, timeout)

    def close(self) -> None:
        self.fleet.stop()
        self.buttons.loop_stop()
        self.agent.terminate()
        try:
            self.agent.wait(15)
        except subprocess.TimeoutExpired:
            self.agent.kill()
        self.watch.loop_stop()
        self.local.close()
        self.uplink.close()


class MqttHop:
    """A bare MQTT QoS 1 hop on a broker: publish, time until the subscriber has it."""

    def __init__(self, url: str):
        self._got: dict[int, float] = {}
        self._arrived = threading.Condition()
        ready = threading.Event()
        self.sub, addr = make_client(url, "bench-hop-sub")

        def on_message(c, u, msg):
            with self._arrived:
                self._got[int(msg.payload)] = time.perf_counter()
                self._arrived.notify_all()

        self.sub.on_message = on_message
        self.sub.on_connect = lambda c, u, f, rc, p: c.subscribe("bench/hop", qos=1)
        self.sub.on_subscribe = lambda *a: ready.set()
        self.sub.connect(addr.host, addr.port)
        self.sub.loop_start()
        ready.wait(10)
        self.pub, _ = make_client(url, "bench-hop-pub")
        self.pub.connect(addr.host, addr.port)
        self.pub.loop_start()
        self.n = 0

    def sample(self) -> float:
        self.n += 1
        n = self.n
        t0 = time.perf_counter()
        self.pub.publish("bench/hop", str(n).encode(), qos=1)
        with self._arrived:
            if not self._arrived.wait_for(lambda: n in self._got, TIMEOUT_S):
                return float("nan")
            return (self._got.pop(n) - t0) * 1000

    def close(self) -> None:
        for c in (self.pub, self.sub):
            c.loop_stop()
            c.disconnect()


class Dc09RoundTrip:
    """A bare DC-09 exchange with the receiver: an encrypted NULL out, its ACK back (decoded)."""

    def __init__(self, port: int, account: str, key: str):
        self.sock = socket.create_connection((LOOPBACK, port), timeout=TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.account, self.key, self.seq = account, bytes.fromhex(key), 0

    def sample(self) -> float:
        self.seq = dc09.next_seq(self.seq)
        t0 = time.perf_counter()
        self.sock.sendall(dc09.encode_null(account=self.account, seq=self.seq, now=utcnow(), key=self.key))
        buf = b""
        while not buf.endswith(b"\r"):
            buf += self.sock.recv(4096)
        dc09.decode_response(buf, key=self.key)
        return (time.perf_counter() - t0) * 1000

    def close(self) -> None:
        self.sock.close()


def run_presses(gw: Gateway, zones: range, baseline: list[float], hop: MqttHop, rtt: Dc09RoundTrip,
                before_each=None) -> dict[str, float]:
    """Press each zone, wait for its ACK, then take one interleaved baseline pair; alarm id -> press time."""
    pressed = {}
    for zone in zones:
        if before_each is not None:
            before_each(zone)
        alarm_id, t0 = gw.press(zone)
        pressed[alarm_id] = t0
        gw.wait_delivered(alarm_id)
        baseline.append(hop.sample() + rtt.sample())
        time.sleep(0.01)
    return pressed


def latencies(pressed: dict[str, float], at: dict[str, datetime]) -> list[float]:
    return [(at[a].timestamp() - t0) * 1000 for a, t0 in pressed.items() if a in at]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="cg-bench-alarm-"))
    key = secrets.token_hex(16)
    receiver = Receiver(work, {ACCOUNT: key})
    gw = hop = rtt = None
    try:
        gw = Gateway(work, receiver, key, N_PRESSES)
        hop, rtt = MqttHop(gw.local.url), Dc09RoundTrip(receiver.port, ACCOUNT, key)
        baseline: list[float] = []
        pressed = run_presses(gw, range(1, N_PRESSES + 1), baseline, hop, rtt)
        deadline = time.monotonic() + 10  # stragglers
        while time.monotonic() < deadline and not set(pressed) <= set(gw.delivered):
            time.sleep(0.1)
        ack = latencies(pressed, gw.delivered)
        accept = latencies(pressed, receiver.received_at())
    finally:
        for part in (hop, rtt, gw, receiver):
            if part is not None:
                part.close()
        shutil.rmtree(work, ignore_errors=True)
    clean = [b for b in baseline if b == b]
    press_p99, base_p99 = percentile(ack, 99), percentile(clean, 99)
    print(json.dumps({
        "n": N_PRESSES, "lost": len(set(pressed) - set(gw.delivered)),
        "press_to_ack": summary(ack), "press_to_receiver_accept": summary(accept),
        "baseline_p99_ms": round(base_p99, 2), "baseline_p50_ms": round(statistics.median(clean), 2),
        "ratio_p99": round(press_p99 / base_p99, 2),
        "baseline": "per sample: bare MQTT QoS 1 hop + bare DC-09 NULL/ACK round trip (AES), interleaved",
        "load_sensor_msgs_per_s": round(N_SENSORS / SENSOR_INTERVAL_S), "journal_fsync": True, "aes": True,
        "receiver": "careguard arc, own process",
    }))


if __name__ == "__main__":
    main()
